"""Visible examples in a HumanEval-style prompt, turned into executable checks.

A prompt's docstring usually shows what the function should return for a few inputs. The cascade
router runs a small model's code against those examples only (never the hidden tests) to decide
whether to accept its answer. Forms found in the 164 HumanEval prompts:

    >>> f(1, 2)                      doctest: the call, then the expected output on the next line(s)
    3                                (no output line means None)
    >>> f(1, 2) == 3                 a doctest line that is itself a comparison
    f(x) == y    f(x) ➞ y    f(x) => y    f(x) ==> y    f(x) -> y    f(x) = y
    f(x) should return y     f(x) returns y     f(x)  # returns y     f(x) # => y
    * f(x) -> y      for f(x) == y      assert f(x) => y          (list markers and prefixes)
    f(x) -> 19 - 5 - 6 = 8                                          (worked answer: the last `= y`)
    For lst = [1,2,3] the output should be 14                      (also "the result should be")
    Example 1:  Input: arr = [4,2,3], k = 2   Output: [2, 1]       (input may span lines)

Expected values must be literals (or arithmetic on literals); `true`/`false` are read as
True/False, and a bare word argument (`is_happy(abcd)`) as a string. A call naming a function that
the prompt does not define (`grade_equation(...)` in a prompt for `numerical_letter_grade`) is read
as a call of the entry point: the prompt misnamed it.

`build_check_program(code, examples)` writes a program that runs every example against `code`,
compares with float tolerance, prints one JSON line per run (`ROUTERLLM_EXAMPLES {...}`) and exits
non-zero naming the failed examples, so a `Sandbox` verdict says which ones failed.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import json
import logging
import re
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

# Tolerance for float comparison of results with expected values: docstrings print rounded
# values (`6.00`, `-0.5`), so a relative/absolute 1e-6 accepts what a reader would accept.
REL_TOL = 1e-6
ABS_TOL = 1e-6

RESULT_MARKER = "ROUTERLLM_EXAMPLES"

# Separators between a call and its expected value in free-form examples, longest first.
_SEPARATORS = [
    r"should\s+return",
    r"should\s+be",
    r"#\s*returns?",
    r"#\s*=+>",
    r"returns?",
    r"==>",
    r"=>",
    r"==",
    r"➞",
    r"→",
    r"->",
    r"=",
    r":",
]
_SEP_RE = re.compile(r"^\s*(?:" + "|".join(_SEPARATORS) + r")\s*")
_LINE_PREFIX_RE = re.compile(r"^\s*(?:>>>\s*|[*\-•]\s+|for\s+|assert\s+)*", re.IGNORECASE)
_IDENT_CALL_RE = re.compile(r"([A-Za-z_]\w*)\s*\(")
_FOR_RE = re.compile(r"\bFor\s+(?=[A-Za-z_]\w*\s*=)", re.IGNORECASE)
_SHOULD_BE_RE = re.compile(r"the\s+(?:output|result|answer)\s+should\s+be\s*:?\s*", re.IGNORECASE)
_INPUT_RE = re.compile(r"^\s*Input\s*:\s*(.*)$", re.IGNORECASE)
_OUTPUT_RE = re.compile(r"^\s*Output\s*:\s*(.*)$", re.IGNORECASE)
_ASSIGN_MARK_RE = re.compile(r"(?:^|,|\n)\s*([A-Za-z_]\w*)\s*[=:](?!=)\s*")
_LONE_EQ_RE = re.compile(r"(?<![=<>!])=(?![=>])")
_WORDS = {"true": True, "false": False, "none": None, "null": None}


@dataclass(frozen=True)
class Example:
    """One visible example: `call_src` evaluates to the function's result, `expected_src` to the
    expected value (a literal). `raw` is the prompt text it was read from."""

    call_src: str
    expected_src: str
    raw: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# --- parsing helpers ----------------------------------------------------------------------------


def _parses(src: str) -> ast.Expression | None:
    try:
        return ast.parse(src.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None


_LITERAL_NODES = (
    ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
    ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Load,
)


def _literal_value(src: str) -> tuple[bool, object]:
    """(ok, value) for a literal or arithmetic on literals; `true`/`false`/`None` words allowed."""
    src = src.strip()
    if src.lower() in _WORDS:
        return True, _WORDS[src.lower()]
    tree = _parses(src)
    if tree is None:
        return False, None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
            continue
        if not isinstance(node, _LITERAL_NODES) and not isinstance(node, ast.Name):
            return False, None
        if isinstance(node, ast.Name):
            return False, None
    try:
        value = eval(compile(tree, "<example>", "eval"), {"__builtins__": {}}, {})  # noqa: S307 - literals only
    except Exception:
        return False, None
    return True, value


def _remainder_ok(rest: str) -> bool:
    """What may follow an expected value: nothing, punctuation, or a space then an explanation."""
    if not rest.strip():
        return True
    if rest[0].isspace():
        return True
    return bool(re.fullmatch(r"[.,;:!]+(\s.*)?", rest, flags=re.DOTALL))


def _leading_literal(text: str) -> tuple[str, object] | None:
    """The longest leading literal of `text` (an expected value followed by prose or a comment)."""
    text = text.strip()
    if not text:
        return None
    if text.endswith(".") and not text.endswith(".."):  # a sentence's full stop: `should return 16.`
        ok, value = _literal_value(text[:-1])
        if ok:
            return text[:-1], value
    ok, value = _literal_value(text)
    if ok:
        return text, value
    # a worked answer: `19 - 5 - 6 = 8`, `1 + 9 + 0 + 0 = 10`: the value after the last lone '='
    pieces = _LONE_EQ_RE.split(text)
    if len(pieces) > 1:
        found = _leading_literal(pieces[-1])
        if found is not None:
            return found
    for end in range(len(text) - 1, 0, -1):
        head, rest = text[:end], text[end:]
        if not _remainder_ok(rest):
            continue
        ok, value = _literal_value(head)
        if ok:
            return head.strip(), value
    return None


def _matching_paren(text: str, open_at: int) -> int | None:
    """Index of the ')' closing the '(' at `open_at`, skipping brackets inside string literals."""
    depth = 0
    quote: str | None = None
    i = open_at
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i if ch == ")" else None
        i += 1
    return None


def _quote_bare_words(call: ast.Call, params: list[str]) -> ast.Call | None:
    """`is_happy(abcd)`: a bare word that is not a parameter name is a string the prompt left
    unquoted. Returns None when an argument is neither a literal nor such a word."""
    args = []
    for arg in call.args:
        if isinstance(arg, ast.Name) and arg.id not in params and arg.id not in ("True", "False", "None"):
            args.append(ast.Constant(arg.id))
            continue
        ok, _ = _literal_value(ast.unparse(arg))
        if not ok:
            return None
        args.append(arg)
    keywords = []
    for kw in call.keywords:
        ok, _ = _literal_value(ast.unparse(kw.value))
        if not ok or kw.arg is None:
            return None
        keywords.append(kw)
    return ast.Call(func=call.func, args=args, keywords=keywords)


@dataclass
class _PromptInfo:
    entry_point: str
    params: list[str]
    defined: set[str]
    body: str  # the text after `def entry_point(`: its docstring and anything after


def _prompt_info(prompt: str, entry_point: str) -> _PromptInfo:
    defined = set(re.findall(r"^\s*(?:def|class)\s+([A-Za-z_]\w*)", prompt, flags=re.MULTILINE))
    params: list[str] = []
    match = None
    for match in re.finditer(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", prompt, flags=re.MULTILINE):
        pass
    body = prompt
    if match is not None:
        close = _matching_paren(prompt, match.end() - 1)
        if close is not None:
            try:
                fn = ast.parse(f"def _f({prompt[match.end():close]}): pass").body[0]
                params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]  # type: ignore[attr-defined]
            except SyntaxError:
                params = []
            body = prompt[close:]
    return _PromptInfo(entry_point, params, defined, body)


def _call_target(name: str, info: _PromptInfo) -> bool:
    """Is `name(...)` at the start of an example line a call of the function under test?"""
    if name == info.entry_point:
        return True
    # a misnamed entry point: not defined by the prompt, not a builtin, not a keyword-like word
    return name not in info.defined and not hasattr(builtins, name) and name.lower() not in {
        "for", "if", "example", "examples", "input", "output", "note", "return", "returns", "print",
    }


def _normalize_call(call_src: str, info: _PromptInfo, *, literal_args: bool) -> str | None:
    tree = _parses(call_src)
    if tree is None or not isinstance(tree.body, ast.Call) or not isinstance(tree.body.func, ast.Name):
        return None
    call = tree.body
    if literal_args:
        fixed = _quote_bare_words(call, info.params)
        if fixed is None:
            return None
        call = fixed
    call.func = ast.Name(info.entry_point, ast.Load())
    return ast.unparse(ast.fix_missing_locations(call))


# --- the forms ------------------------------------------------------------------------------------


def _doctests(info: _PromptInfo) -> list[Example]:
    """`>>> expr` followed by its output (or by nothing: None)."""
    out: list[Example] = []
    lines = info.body.splitlines()
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped.startswith(">>>"):
            i += 1
            continue
        source = stripped[3:].strip()
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith("..."):
            source += "\n" + lines[j].strip()[3:].strip()
            j += 1
        expected_lines: list[str] = []
        while j < len(lines):
            s = lines[j].strip()
            if not s or s.startswith(">>>") or s.startswith('"""') or s.startswith("'''"):
                break
            expected_lines.append(s)
            j += 1
        raw = "\n".join(lines[i:j])
        i = j
        if not re.search(rf"\b{re.escape(info.entry_point)}\s*\(", source):
            continue
        tree = _parses(source)
        if tree is None:  # a statement (`x = f(1)`) or a comparison handled as a free-form line
            continue
        if isinstance(tree.body, ast.Compare) and not expected_lines:
            continue  # `>>> f(x) == y`: read by the free-form pass
        if not expected_lines:
            if isinstance(tree.body, ast.Call):  # doctest prints nothing for None
                out.append(Example(source, "None", raw))
            continue
        expected = " ".join(expected_lines)
        ok, value = _literal_value(expected)
        if not ok:
            found = _leading_literal(expected_lines[0])
            if found is None:
                continue
            value = found[1]
        out.append(Example(ast.unparse(tree.body), repr(value), raw))
    return out


_STRONG_SEP_RE = re.compile(r"^\s*(?:should\s+return|==>|=>|==|➞|→|returns?)\s*")


def _line_calls(info: _PromptInfo) -> list[Example]:
    """`f(x) <separator> y` in the docstring: the call may span lines, the value may sit on the
    next line (`f("14.5") should\\n return 15`), and a call in the middle of a sentence counts when
    it names the entry point and a strong separator follows (`should return`, `==`, `=>`, `➞`)."""
    out: list[Example] = []
    text = info.body
    line_starts = {m.start(): m.group(0) for m in re.finditer(r"^[^\n]*", text, flags=re.MULTILINE)}
    candidates: list[tuple[int, bool, bool]] = []  # (call start, at line start, doctest line)
    for line_start, line in line_starts.items():
        prefix = _LINE_PREFIX_RE.match(line)
        candidates.append((line_start + (prefix.end() if prefix else 0), True, line.lstrip().startswith(">>>")))
    for m in re.finditer(rf"(?<![\w.]){re.escape(info.entry_point)}\s*\(", text):
        if all(m.start() != c[0] for c in candidates):
            candidates.append((m.start(), False, False))
    for start, at_line_start, doctest_line in sorted(candidates):
        call_match = _IDENT_CALL_RE.match(text, start)
        if call_match is None or not _call_target(call_match.group(1), info):
            continue
        if not at_line_start and call_match.group(1) != info.entry_point:
            continue
        close = _matching_paren(text, call_match.end() - 1)
        if close is None:
            continue
        call_src = text[call_match.start() : close + 1]
        line_end = text.find("\n", close)
        line_end = len(text) if line_end == -1 else line_end
        rest = text[close + 1 : line_end]
        next_end = text.find("\n", line_end + 1)
        next_line = text[line_end + 1 : len(text) if next_end == -1 else next_end].strip()
        found = _value_after_call(rest, at_line_start=at_line_start, doctest_line=doctest_line)
        if found is None and next_line and not next_line.startswith(">>>") and not _IDENT_CALL_RE.match(next_line):
            # the sentence goes on: `should` / `should return` at the end of the line
            if re.fullmatch(r"\s*(?:should(?:\s+return)?|returns?|==>?|=>|➞|->)?\s*", rest):
                found = _value_after_call(rest + " " + next_line, at_line_start=at_line_start, doctest_line=False)
        if found is None:
            continue
        call = _normalize_call(call_src, info, literal_args=True)
        if call is None:
            continue
        raw = text[call_match.start() : line_end].strip()
        out.append(Example(call, repr(found[1]), raw))
    return out


def _value_after_call(rest: str, *, at_line_start: bool, doctest_line: bool) -> tuple[str, object] | None:
    sep = (_SEP_RE if at_line_start else _STRONG_SEP_RE).match(rest)
    if sep is None or not sep.group(0).strip():
        if not doctest_line:
            return None
        sep_end = 0  # `>>> f(x) [0, 1]`: a doctest with its output on the same line
    else:
        sep_end = sep.end()
    if sep is not None and sep.group(0).strip() == ":" and not rest[sep_end:].strip():
        return None
    return _leading_literal(rest[sep_end:])


def _assignments(text: str) -> list[str] | None:
    """`arr = [1, 2], k = 3` or `grid : [[0,1]]\\n capacity : 1` -> the values, in order."""
    marks = list(_ASSIGN_MARK_RE.finditer(text))
    if not marks or marks[0].start() > 0 and text[: marks[0].start()].strip():
        return None
    values = []
    for idx, mark in enumerate(marks):
        end = marks[idx + 1].start() if idx + 1 < len(marks) else len(text)
        value = text[mark.end() : end].strip().rstrip(",").strip()
        if not value:
            return None
        values.append(value)
    # a value may itself contain `name =`-looking text only inside literals; check each parses
    return values if all(_literal_value(v)[0] for v in values) else None


def _for_sentences(info: _PromptInfo) -> list[Example]:
    """`For lst = [1,2,3] the output should be 14` / `For s = "ab", c = "a", the result should be ...`."""
    out: list[Example] = []
    for line in info.body.splitlines():
        m = _FOR_RE.search(line)
        s = _SHOULD_BE_RE.search(line)
        if m is None or s is None or s.start() < m.end():
            continue
        head = line[m.end() : s.start()]
        args = _leading_assignments(head)
        if not args:
            continue
        found = _leading_literal(line[s.end() :])
        if found is None:
            continue
        call = f"{info.entry_point}({', '.join(args)})"
        out.append(Example(call, repr(found[1]), line.strip()))
    return out


def _leading_assignments(head: str) -> list[str]:
    """Values of `a = X, b = Y` at the start of `head`, stopping at the first non-assignment."""
    values: list[str] = []
    pos = 0
    while True:
        m = re.match(r"\s*,?\s*([A-Za-z_]\w*)\s*=(?!=)\s*", head[pos:])
        if m is None:
            break
        rest = head[pos + m.end() :]
        found = None
        for end in range(len(rest), 0, -1):
            piece = rest[:end]
            after = rest[end:]
            if after and not (after[0] in ", " or after[0].isspace()):
                continue
            if piece.rstrip().endswith(","):  # `1000,` would read as a tuple
                continue
            ok, _ = _literal_value(piece)
            if ok:
                found = piece.strip()
                break
        if found is None:
            break
        values.append(found)
        pos += m.end() + rest.find(found) + len(found)
        while pos < len(head) and head[pos] in ", ":
            pos += 1
    return values


def _input_output_blocks(info: _PromptInfo) -> list[Example]:
    """`Input: ...` (one or more lines) followed by `Output: ...`."""
    out: list[Example] = []
    lines = info.body.splitlines()
    i = 0
    while i < len(lines):
        m = _INPUT_RE.match(lines[i])
        if m is None:
            i += 1
            continue
        block = [m.group(1)]
        j = i + 1
        while j < len(lines) and _OUTPUT_RE.match(lines[j]) is None and j - i < 12:
            if _INPUT_RE.match(lines[j]):
                break
            block.append(lines[j].strip())
            j += 1
        if j >= len(lines) or _OUTPUT_RE.match(lines[j]) is None:
            i = j
            continue
        output = _OUTPUT_RE.match(lines[j]).group(1)  # type: ignore[union-attr]
        raw = "\n".join(line.strip() for line in lines[i : j + 1])
        i = j + 1
        text = "\n".join(b for b in block if b).strip()
        ok, _ = _literal_value(text)
        args = [text] if ok else _assignments(text)
        found = _leading_literal(output)
        if not args or found is None:
            continue
        out.append(Example(f"{info.entry_point}({', '.join(args)})", repr(found[1]), raw))
    return out


def extract_examples(prompt: str, entry_point: str | None = None) -> list[Example]:
    """Every visible example of the function `entry_point` in `prompt` (deduplicated, in order).
    With `entry_point=None` the function is the last `def` in the prompt."""
    entry_point = entry_point or detect_entry_point(prompt)
    if not entry_point:
        return []
    info = _prompt_info(prompt, entry_point)
    found: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for form in (_doctests, _line_calls, _for_sentences, _input_output_blocks):
        for example in form(info):
            key = (example.call_src, example.expected_src)
            if key not in seen:
                seen.add(key)
                found.append(example)
    return found


def detect_entry_point(prompt: str) -> str | None:
    """The function a free-form prompt asks for: the last top-level-looking `def name(`."""
    names = re.findall(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", prompt, flags=re.MULTILINE)
    return names[-1] if names else None


# --- programs ---------------------------------------------------------------------------------------


def prompt_context(prompt: str, entry_point: str) -> str:
    """The prompt without the entry point's stub: its imports and helper functions, which a
    completion written as a whole program may rely on without repeating them."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        lines = [ln for ln in prompt.splitlines() if re.match(r"^(import|from)\s", ln)]
        return "\n".join(lines)
    kept = [
        ast.get_source_segment(prompt, node) or ""
        for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
    ]
    return "\n\n".join(k for k in kept if k)


def candidate_code(prompt: str, completion: str, entry_point: str) -> str:
    """The code a completion stands for: a whole program when it defines `entry_point` itself
    (chat models, recorded answers), else a continuation of the prompt (base models). Either way
    the prompt's imports and helpers come first."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", completion, flags=re.MULTILINE):
        context = prompt_context(prompt, entry_point)
        return f"{context}\n\n{completion}\n" if context else f"{completion}\n"
    return prompt + completion + "\n"


# --- probes: inputs near the visible ones -----------------------------------------------------------

# Probes compare several candidate answers with each other (never with an expected value): two
# answers that pass every visible example but disagree on an input next to them cannot both be
# right. Mutations stay small so that probes remain in the task's domain and run fast.
MAX_PROBES = 48
PROBE_TIMEOUT_S = 0.5  # per probe call; a correct answer to a HumanEval task takes microseconds


def _mutations(value: object) -> list[object]:
    """Small changes of one argument, edge cases first (empty, one element, zero, one): wrong
    answers that still pass the visible examples most often differ from right ones there."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        out = [value + 1, value - 1, 0, 1]
        if 0 < abs(value) < 100:
            out.append(value * 2)
        return out
    if isinstance(value, float):
        return [value + 0.5, value * 2, -value, 0.0]
    if isinstance(value, str):
        return ["", value[:1], value[::-1], value.swapcase(), value[:-1], value + value[:1], value + value]
    if isinstance(value, list):
        out: list[object] = [[], value[:1], value[::-1], value[:-1], value + value[:1], value[1:] + value[:1], value + value]
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            out += [[v + 1 for v in value], [v - 1 for v in value]]
        return out
    if isinstance(value, tuple):
        return [tuple(m) for m in _mutations(list(value)) if isinstance(m, list)]
    return []


def probe_calls(examples: list[Example], limit: int = MAX_PROBES) -> list[str]:
    """Calls on inputs next to the visible examples' inputs: each literal argument mutated once
    (numbers +-1 and doubled, strings and lists reversed, shortened, extended, rotated)."""
    per_example: list[list[str]] = []
    seen = {e.call_src for e in examples}
    for example in examples:
        calls: list[str] = []
        per_example.append(calls)
        tree = _parses(example.call_src)
        if tree is None or not isinstance(tree.body, ast.Call) or tree.body.keywords:
            continue
        try:
            args = [ast.literal_eval(a) for a in tree.body.args]
        except (ValueError, SyntaxError):
            continue
        func = ast.unparse(tree.body.func)
        for i, arg in enumerate(args):
            for mutated in _mutations(arg):
                call = f"{func}({', '.join(repr(a) for a in [*args[:i], mutated, *args[i + 1:]])})"
                if call not in seen:
                    seen.add(call)
                    calls.append(call)
    # round robin over the examples, so that every example contributes before the limit
    ordered = [c for group in itertools.zip_longest(*per_example) for c in group if c is not None]
    return ordered[:limit]


_CHECK_TEMPLATE = """

# ---- routerllm: visible examples from the prompt -------------------------------------------
def __routerllm_close(got, want):
    import math as _m
    if isinstance(want, bool) or isinstance(got, bool):
        return got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return _m.isclose(got, want, rel_tol={rel_tol!r}, abs_tol={abs_tol!r})
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(
            __routerllm_close(g, w) for g, w in zip(got, want))
    return got == want


def __routerllm_run_examples():
    import hashlib as _h, json as _json, signal as _sig, sys as _sys
    examples = {examples!r}
    probes = {probes!r}
    failed = []
    for index, (call_src, expected_src) in enumerate(examples):
        try:
            got = eval(call_src)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            failed.append({{"index": index, "call": call_src, "expected": expected_src,
                            "error": type(exc).__name__ + ": " + str(exc)[:200]}})
            continue
        want = eval(expected_src)
        if not __routerllm_close(got, want):
            failed.append({{"index": index, "call": call_src, "expected": expected_src,
                            "got": repr(got)[:200]}})
    record = {{"total": len(examples), "failed": failed}}
    if probes and not failed:
        class _Slow(BaseException):
            pass
        def _alarm(*_):
            raise _Slow()
        _sig.signal(_sig.SIGALRM, _alarm)
        def _canon(value, depth=0):
            # floats to 9 significant digits: two right answers may differ in the last bits
            if isinstance(value, float):
                return float("%.9g" % value)
            if depth < 4 and isinstance(value, (list, tuple)):
                return type(value)(_canon(v, depth + 1) for v in value)
            if depth < 4 and isinstance(value, dict):
                return {{k: _canon(v, depth + 1) for k, v in value.items()}}
            return value

        outputs = []
        timeouts = 0
        for call_src in probes:
            _sig.setitimer(_sig.ITIMER_REAL, {probe_timeout_s!r})
            try:
                value = eval(call_src)
                # None is how Python code says "no value": like an exception, not a disagreement
                out = "<no result>" if value is None else repr(_canon(value))
            except _Slow:
                # an input outside the task's domain may make a right answer loop or raise: no
                # result either way (which exception, or a timeout, is not a disagreement)
                out = "<no result>"
                timeouts += 1
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                out = "<no result>"
            finally:
                _sig.setitimer(_sig.ITIMER_REAL, 0)
            outputs.append(out)
        record["probes"] = len(probes)
        record["probe_timeouts"] = timeouts
        record["fingerprint"] = _h.sha256(_json.dumps(outputs).encode()).hexdigest()[:16]
    _sys.stdout = _sys.__stdout__
    print({marker!r}, _json.dumps(record), flush=True)
    if failed:
        first = failed[0]
        detail = first.get("error") or ("got " + first["got"])
        raise AssertionError(
            "%d of %d visible examples failed; first: %s should be %s, %s"
            % (len(failed), len(examples), first["call"], first["expected"], detail))


__routerllm_run_examples()
"""

_SILENCE = """import sys as __routerllm_sys


class __RouterllmSink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass


__routerllm_sys.stdout = __RouterllmSink()  # the candidate's own prints are not needed
"""


def build_check_program(code: str, examples: list[Example], probes: list[str] | None = None,
                        probe_timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """`code` followed by a check of every example; exits non-zero (AssertionError naming the
    first failure) when any fails, and prints `ROUTERLLM_EXAMPLES {"total", "failed", ...}`.
    With `probes` (and every example passed) it also runs those calls and adds a `fingerprint`
    of their results, to compare candidates with each other."""
    pairs = [(e.call_src, e.expected_src) for e in examples]
    future = [ln for ln in code.splitlines() if ln.startswith("from __future__ import")]
    if future:  # must stay the first statements of the program
        code = "\n".join(ln for ln in code.splitlines() if not ln.startswith("from __future__ import"))
    return "\n".join(future) + "\n" + _SILENCE + "\n" + code + _CHECK_TEMPLATE.format(
        examples=pairs, probes=list(probes or []), rel_tol=REL_TOL, abs_tol=ABS_TOL,
        marker=RESULT_MARKER, probe_timeout_s=probe_timeout_s,
    )


def parse_check_output(stdout: str) -> dict | None:
    """The `{"total", "failed"}` record a check program printed, or None if it never got there."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            try:
                return json.loads(line[len(RESULT_MARKER) :].strip())
            except json.JSONDecodeError:
                return None
    return None

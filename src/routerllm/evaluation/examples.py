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

`Example.plain()` gives an example as plain data (the arguments, the expected value), which is
how routing runs it (routing/execution.py calls the function in the jail; routing/checker.py
compares the result here). `probe_inputs(examples)` gives argument tuples next to the visible ones,
to compare several answers with each other.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import logging
import re
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

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

    def plain(self) -> "PlainExample | None":
        """The example as plain data: the entry point's arguments, the expected value, and the
        builtin the prompt wraps the call in (`round(find_zero([1, 2]), 2)`), or None when an
        argument is not a literal."""
        tree = _parses(self.call_src)
        ok, expected = _literal_value(self.expected_src)
        if tree is None or not ok or not isinstance(tree.body, ast.Call):
            return None
        call, wrapper = tree.body, None
        if isinstance(call.func, ast.Name) and call.func.id in SAFE_WRAPPERS and call.args \
                and isinstance(call.args[0], ast.Call):
            inner = call.args[0]
            rest = [_literal_value(ast.unparse(a)) for a in call.args[1:]]
            if call.keywords or not all(ok for ok, _ in rest):
                return None
            wrapper = (call.func.id, tuple(v for _, v in rest))
            call = inner
        if call.keywords or not isinstance(call.func, ast.Name):
            return None
        args = []
        for arg in call.args:
            ok, value = _literal_value(ast.unparse(arg))
            if not ok:
                return None
            args.append(value)
        return PlainExample(call.func.id, tuple(args), expected, wrapper)


# Builtins a prompt may wrap the call of its function in (`round(f(x), 2)`), applied to the plain
# result in the routing process.
SAFE_WRAPPERS = {"round": round, "abs": abs, "len": len, "sorted": sorted, "list": list, "tuple": tuple,
                 "set": set, "sum": sum, "min": min, "max": max, "int": int, "float": float, "str": str}


@dataclass(frozen=True)
class PlainExample:
    """A visible example as plain data: call `function(*args)`, apply `wrapper` (a builtin's name
    and its extra arguments) to the result, compare with `expected`."""

    function: str
    args: tuple
    expected: object
    wrapper: tuple[str, tuple] | None = None

    def unwrap(self, result: object) -> object:
        """The result as the example shows it (raises whatever the builtin raises on bad input)."""
        if self.wrapper is None:
            return result
        name, extra = self.wrapper
        return SAFE_WRAPPERS[name](result, *extra)


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
        if isinstance(node, ast.BinOp) and not all(_numeric(side) for side in (node.left, node.right)):
            # `[0] * 10**12`, `"a" * 10**9`: a prompt (hostile through `serve`) must not make this
            # process build a huge value; arithmetic is for numbers only (`19 - 5 - 6`)
            return False, None
        if not isinstance(node, _LITERAL_NODES) and not isinstance(node, ast.Name):
            return False, None
        if isinstance(node, ast.Name):
            return False, None
    try:
        value = eval(compile(tree, "<example>", "eval"), {"__builtins__": {}}, {})  # noqa: S307 - literals only
    except Exception:
        return False, None
    return True, value


def _numeric(node: ast.AST) -> bool:
    """A number, or arithmetic on numbers only (no strings or containers)."""
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float, complex)
    if isinstance(node, ast.UnaryOp):
        return _numeric(node.operand)
    if isinstance(node, ast.BinOp):
        return _numeric(node.left) and _numeric(node.right)
    return False


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
    if entry_point is not None:
        from routerllm.evaluation.programs import check_entry_point

        check_entry_point(entry_point)  # a name, never text spliced into anything
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


def parse_asserts(text: str, entry_point: str, limit: int = 32) -> list[PlainExample]:
    """`assert f(args) == value` lines a model wrote as tests of `entry_point` (inside or outside a
    code fence), as plain-data examples; lines that are not a call of the function with literal
    arguments compared to a literal are skipped."""
    out: list[PlainExample] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("assert "):
            continue
        tree = _parses(line[len("assert "):].split("#")[0].rstrip(", "))
        if tree is None or not isinstance(tree.body, ast.Compare) or len(tree.body.ops) != 1 \
                or not isinstance(tree.body.ops[0], ast.Eq):
            continue
        call, expected = tree.body.left, tree.body.comparators[0]
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == entry_point):
            continue
        example = Example(ast.unparse(call), ast.unparse(expected), line).plain()
        if example is not None and repr(example.args) not in seen:
            seen.add(repr(example.args))
            out.append(example)
        if len(out) >= limit:
            break
    return out


def detect_entry_point(prompt: str) -> str | None:
    """The function a free-form prompt asks for: the last top-level-looking `def name(`."""
    names = re.findall(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", prompt, flags=re.MULTILINE)
    return names[-1] if names else None


# --- probes: inputs near the visible ones -----------------------------------------------------------

# Probes compare several candidate answers with each other (never with an expected value): two
# answers that pass every visible example but disagree on an input next to them cannot both be
# right. A probe is `near` when it keeps what the visible inputs show of the task's domain: the
# sign of every number, a non-empty string or list stays non-empty, the case of letters is kept.
# Other probes are `edge` cases (empty, zero, a flipped sign, swapped case): right answers often
# differ there, because the prompt does not say what they should do.
MAX_PROBES = 48


@dataclass(frozen=True)
class Probe:
    args: tuple
    near: bool


def _sign(value: object) -> int:
    return (value > 0) - (value < 0)  # type: ignore[operator]


def _mutations(value: object) -> list[tuple[object, bool]]:
    """Small changes of one argument, each with whether it stays `near` (see above)."""
    if isinstance(value, bool):
        return [(not value, True)]
    if isinstance(value, int):
        out = [value + 1, value - 1, 1, 0] + ([value * 2] if 0 < abs(value) < 100 else [])
        return [(v, _sign(v) == _sign(value)) for v in out]
    if isinstance(value, float):
        out = [value + 0.5, value - 0.5, value * 2, -value, 0.0]
        return [(v, _sign(v) == _sign(value)) for v in out]
    if isinstance(value, str):
        near = [value[::-1], value[1:] + value[:1], value + value[:1], value + value] + (
            [value[:-1], value[:1]] if len(value) > 1 else [])
        return [(v, bool(value)) for v in near] + [("", not value), (value.swapcase(), value.swapcase() == value)]
    if isinstance(value, (list, tuple)):
        kind = type(value)
        items = list(value)
        near = [items[::-1], items[1:] + items[:1], items + items[:1], items + items] + (
            [items[:-1], items[:1]] if len(items) > 1 else [])
        if items and all(type(v) is int for v in items):
            for delta in (1, -1):
                shifted = [v + delta for v in items]
                near.append(shifted) if all(_sign(a) == _sign(b) for a, b in zip(shifted, items)) else None
        out = [(kind(v), bool(items)) for v in near] + [(kind([]), not items)]
        return out
    return []


def _permutations(args: tuple) -> list[tuple]:
    """The call with two arguments of the same type swapped (`(3, 4, 5)` -> `(5, 4, 3)`): a
    function symmetric in them by the task's statement must not care, one that is not must."""
    out = []
    for i in range(len(args)):
        for j in range(i + 1, len(args)):
            if type(args[i]) is type(args[j]) and args[i] != args[j]:
                swapped = list(args)
                swapped[i], swapped[j] = swapped[j], swapped[i]
                out.append(tuple(swapped))
    return out


def probe_inputs(examples: list[Example], limit: int = MAX_PROBES) -> list[Probe]:
    """Argument tuples next to the visible examples' inputs: each literal argument mutated once
    (numbers +-1 and doubled, strings and lists reversed, rotated, shortened, extended) and pairs of
    same-typed arguments swapped. Near probes first, round robin over the examples so that every
    example contributes before `limit`, then edge probes."""
    seen: set[str] = set()
    plain = [e.plain() for e in examples]
    for p in plain:
        if p is not None:
            seen.add(repr(p.args))
    near: list[list[tuple]] = []
    edge: list[list[tuple]] = []
    for p in plain:
        near.append([])
        edge.append([])
        if p is None or p.wrapper is not None:
            continue
        candidates = [(args, True) for args in _permutations(p.args)]
        for i, arg in enumerate(p.args):
            for mutated, is_near in _mutations(arg):
                candidates.append(((*p.args[:i], mutated, *p.args[i + 1:]), is_near))
        for args, is_near in candidates:
            key = repr(args)
            if key not in seen:
                seen.add(key)
                (near if is_near else edge)[-1].append(args)

    def round_robin(groups: list[list[tuple]]) -> list[tuple]:
        return [c for group in itertools.zip_longest(*groups) for c in group if c is not None]

    ordered = [Probe(a, True) for a in round_robin(near)] + [Probe(a, False) for a in round_robin(edge)]
    return ordered[:limit]

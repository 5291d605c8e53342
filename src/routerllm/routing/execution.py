"""The one place routing executes a candidate answer: call its function on plain-data arguments.

    runs = call_many(sandbox, [Job(code, "add", [(1, 2), (0, 0)]), ...], call_timeout_s=1.0)
    runs[0].calls[0]      # CallOutcome(kind="value", value=3) | kind "error" (TypeError) | "timeout" | ...

Every routing check (the prompt's visible examples, probe inputs next to them, type and shape
checks, agreement between answers) is a list of calls of the entry point. Calls cross into the
sandbox as plain data and results come back as plain data; what a result MEANS (does it equal the
expected value, does it agree with another answer) is judged in this process (routing/checker.py),
never by code that runs next to the candidate.

The program sent to the sandbox (`_program`) execs the candidate in a fresh namespace (as
`__main__`, like the hidden-test scorer runs it), then calls the entry point once per argument
tuple with a per-call time limit, and prints one tagged-JSON line per call as it finishes, so a
program killed half-way still reports the calls it finished. Values are encoded by `_encode`:
exact builtin types only (a subclass of int with its own `__eq__` comes back as "opaque", so it
cannot pass for a right answer), floats keep full precision, containers are tagged
(`{"$": "tuple", "v": [...]}`), and a value whose encoding exceeds `MAX_VALUE_CHARS` comes back as
a digest of its canonical form (floats to 9 significant digits), enough for equality.

At the merge with the sandbox rewrite (issue 9: a jail that runs the candidate, a trusted process
that evaluates, `call_many(code, entry_point, calls, timeout_s)`), the body of `call_many` is the
only thing that changes; the plain-data shapes here are the ones that design passes.

This is not a security boundary: code running in the same interpreter as the encoder could forge
its output lines. The sandbox bounds what it can do to the machine; the jail/trusted-process split
of issue 9 removes the forgery.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from routerllm.evaluation.sandbox import Sandbox

MARKER = "ROUTERLLM_CALL"
# Characters of one encoded result sent back as a value; a longer one comes back as a digest.
# 16 KiB of stdout is kept per program (evaluation/_sandbox_worker.py CAPTURE_BYTES): ~50 calls
# of 300 characters fit, and a right answer to a HumanEval-sized call is a few dozen characters.
MAX_VALUE_CHARS = 300
# Per-call time limit, s: a right answer to a HumanEval task takes microseconds to milliseconds.
CALL_TIMEOUT_S = 1.0
# Nodes and nesting depth encoded per value (beyond: a digest); bounds the work of decoding here.
MAX_NODES = 20_000
MAX_DEPTH = 40
SIG_DIGITS = 9  # floats are compared to 9 significant digits when answers are compared

Call = tuple  # positional arguments of one call of the entry point, plain data
Kind = Literal["value", "error", "timeout", "opaque", "lost"]


# --------------------------------------------------------------------------------------------------
# the plain-data codec (its source is also embedded in the program sent to the sandbox)
# --------------------------------------------------------------------------------------------------

def _encode(value, canonical=False, budget=None, depth=0):  # type: ignore[no-untyped-def]
    """Plain builtin data -> JSON-able, tagged; anything else -> {"$": "opaque", "type": name}.
    `canonical` rounds floats (for comparing answers with each other). Raises OverflowError when
    the value is larger than the budget (the caller digests it instead)."""
    if budget is None:
        budget = [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise OverflowError("value too large")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        if abs(value) > 1 << 63:
            return {"$": "int", "v": str(value)}
        return value
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            return {"$": "float", "v": repr(value)}
        return float("%.*g" % (SIG_DIGITS, value)) if canonical else value
    if t is list:
        return [_encode(v, canonical, budget, depth + 1) for v in value]
    if t is tuple:
        return {"$": "tuple", "v": [_encode(v, canonical, budget, depth + 1) for v in value]}
    if t is dict:
        pairs = [[_encode(k, canonical, budget, depth + 1), _encode(v, canonical, budget, depth + 1)]
                 for k, v in value.items()]
        if canonical:
            pairs.sort(key=lambda p: json.dumps(p, sort_keys=True))
        return {"$": "dict", "v": pairs}
    if t is set or t is frozenset:
        items = [_encode(v, canonical, budget, depth + 1) for v in value]
        items.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return {"$": t.__name__, "v": items}
    return {"$": "opaque", "type": t.__name__}


def _digest(value):  # type: ignore[no-untyped-def]
    """Digest of a value's canonical encoding (equal values, floats to 9 digits, give equal digests)."""
    try:
        blob = json.dumps(_encode(value, True), sort_keys=True)
    except (OverflowError, RecursionError, ValueError):
        blob = "<too large>" + repr(type(value))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _decode(obj):  # type: ignore[no-untyped-def]
    """Tagged JSON (from `_encode`) -> the Python value; opaque values stay an `Opaque`."""
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag, v = obj.get("$"), obj.get("v")
    if tag == "tuple":
        return tuple(_decode(x) for x in v)
    if tag == "dict":
        out = {}
        for k, x in v:
            key = _decode(k)
            try:
                out[key] = _decode(x)
            except TypeError:  # an unhashable key (a list) cannot be rebuilt: opaque
                return Opaque("dict")
        return out
    if tag in ("set", "frozenset"):
        try:
            items = {_decode(x) for x in v}
        except TypeError:
            return Opaque(tag)
        return items if tag == "set" else frozenset(items)
    if tag == "int":
        return int(v)
    if tag == "float":
        return float(v)
    return Opaque(str(obj.get("type", "?")))


@dataclass(frozen=True)
class Opaque:
    """A result that is not plain builtin data (an instance of the candidate's own class, a
    generator, a subclass of a builtin type): never equal to an expected value."""

    type_name: str


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CallOutcome:
    """One call's result, as plain data.

    kind: "value" (returned `value`), "error" (raised; `detail` is the exception type name),
    "timeout" (over the per-call limit), "opaque" (returned something that is not plain data;
    `detail` is its type name), "lost" (never reported: the program died or was killed first).
    A value too large to send comes back as `digest` only (value None)."""

    kind: Kind
    value: Any = None
    detail: str = ""
    digest: str | None = None

    @property
    def returned(self) -> bool:
        return self.kind == "value"

    def fingerprint(self) -> str:
        """What two answers must share to agree on this call: the canonical value, or the kind of
        failure (an exception's type name is not compared: two right answers may raise different
        ones outside the task's domain)."""
        if self.kind == "value":
            return self.digest or _digest(self.value)
        return f"<{self.kind}>"


@dataclass
class Execution:
    """What running one answer on a list of calls gave. `load_error` names why the calls could not
    run at all (the code raised while loading, or does not define the entry point)."""

    calls: list[CallOutcome]
    load_error: str | None = None
    status: str = "passed"  # the sandbox verdict of the whole program ("timed out", ...)
    duration_s: float = 0.0

    @property
    def loaded(self) -> bool:
        return self.load_error is None


@dataclass
class Job:
    code: str
    entry_point: str
    calls: list[Call] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# the program and its run
# --------------------------------------------------------------------------------------------------

_RUNNER = r'''
import json as __rl_json, os as __rl_os, signal as __rl_signal, sys as __rl_sys, hashlib as __rl_hashlib

MAX_NODES = {max_nodes!r}
MAX_DEPTH = {max_depth!r}
SIG_DIGITS = {sig_digits!r}
json = __rl_json
hashlib = __rl_hashlib
{codec}

def __rl_main():
    out_fd = __rl_os.dup(1)
    devnull = __rl_os.open(__rl_os.devnull, __rl_os.O_WRONLY)
    __rl_os.dup2(devnull, 1)  # the candidate's own prints go nowhere

    def emit(record):
        __rl_os.write(out_fd, ({marker!r} + " " + __rl_json.dumps(record) + "\n").encode())

    namespace = {{"__name__": "__main__", "__builtins__": __builtins__}}
    try:
        exec(compile({code!r}, "<candidate>", "exec"), namespace)
    except BaseException as exc:
        emit({{"load": type(exc).__name__}})
        return
    fn = namespace.get({entry_point!r})
    if not callable(fn):
        emit({{"load": "entry point not defined"}})
        return
    emit({{"load": None}})

    class Slow(BaseException):
        pass

    def alarm(*_):
        raise Slow()

    __rl_signal.signal(__rl_signal.SIGALRM, alarm)
    for index, args in enumerate(__rl_json.loads({calls!r})):
        args = _decode_args(args)
        record = {{"i": index}}
        __rl_signal.setitimer(__rl_signal.ITIMER_REAL, {call_timeout_s!r})
        try:
            value = fn(*args)
            __rl_signal.setitimer(__rl_signal.ITIMER_REAL, 0)
            try:
                text = __rl_json.dumps(_encode(value))
                if len(text) > {max_value_chars!r}:
                    raise OverflowError("value too large to send")
                record["v"] = text
            except (OverflowError, RecursionError, ValueError):
                record["d"] = _digest(value)
                record["type"] = type(value).__name__
        except Slow:
            record["t"] = 1
        except BaseException as exc:
            __rl_signal.setitimer(__rl_signal.ITIMER_REAL, 0)
            record["e"] = type(exc).__name__
        emit(record)


class Opaque:
    def __init__(self, type_name):
        self.type_name = type_name


def _decode_args(obj):
    return tuple(_decode(a) for a in obj)


__rl_main()
'''


@functools.lru_cache(maxsize=1)
def _codec_source() -> str:
    """The codec, embedded in the program: one definition serves both sides."""
    return "\n\n".join(inspect.getsource(f) for f in (_encode, _digest, _decode))


def _program(job: Job, call_timeout_s: float) -> str:
    codec = _codec_source()
    calls = json.dumps([[_encode(a) for a in args] for args in job.calls])
    return _RUNNER.format(
        codec=codec, code=job.code, entry_point=job.entry_point, calls=calls, marker=MARKER,
        call_timeout_s=float(call_timeout_s), max_value_chars=MAX_VALUE_CHARS, max_nodes=MAX_NODES,
        max_depth=MAX_DEPTH, sig_digits=SIG_DIGITS,
    )


def _parse(stdout: str, job: Job, status: str, duration_s: float) -> Execution:
    outcomes: list[CallOutcome | None] = [None] * len(job.calls)
    load_error: str | None = "no report (the program died before loading the candidate)"
    for line in stdout.splitlines():
        if not line.startswith(MARKER + " "):
            continue
        try:
            record = json.loads(line[len(MARKER) + 1:])
        except json.JSONDecodeError:
            continue  # a line cut by the capture limit
        if not isinstance(record, dict):
            continue
        if "load" in record:
            load_error = record["load"] if record["load"] is None or isinstance(record["load"], str) else "?"
            continue
        index = record.get("i")
        if not isinstance(index, int) or not 0 <= index < len(outcomes):
            continue
        if "v" in record:
            try:
                value = _decode(json.loads(record["v"]))
            except (json.JSONDecodeError, TypeError, ValueError, RecursionError):
                outcomes[index] = CallOutcome("opaque", detail="undecodable")
                continue
            if isinstance(value, Opaque):
                outcomes[index] = CallOutcome("opaque", detail=value.type_name)
            else:
                outcomes[index] = CallOutcome("value", value=value)
        elif "d" in record:
            outcomes[index] = CallOutcome("value", digest=str(record["d"]), detail=str(record.get("type", "")))
        elif "t" in record:
            outcomes[index] = CallOutcome("timeout")
        else:
            outcomes[index] = CallOutcome("error", detail=str(record.get("e", "?"))[:60])
    calls = [o if o is not None else CallOutcome("lost", detail=status) for o in outcomes]
    return Execution(calls=calls, load_error=load_error, status=status, duration_s=duration_s)


def call_many(sandbox: "Sandbox", jobs: list[Job], *, call_timeout_s: float = CALL_TIMEOUT_S,
              timeout_s: float | None = None) -> list[Execution]:
    """Run each job (one answer, its calls) in the sandbox, in parallel on its workers; results
    in order. `timeout_s` bounds a whole program (default: the sandbox's own limit)."""
    if not jobs:
        return []
    programs = [_program(job, call_timeout_s) for job in jobs]
    verdicts = sandbox.run_many(programs, timeout_s=timeout_s)
    return [_parse(v.stdout, job, v.status, v.duration_s) for job, v in zip(jobs, verdicts)]


def is_close(got: Any, want: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-6) -> bool:
    """Does a returned plain value match an expected one, as the hidden tests' `==` would see it?
    Numbers with float tolerance (docstrings print rounded values), `1 == True` as in Python, but a
    list is not a tuple."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got == want
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if isinstance(want, float) or isinstance(got, float):
            if math.isnan(float(want)) or math.isnan(float(got)):
                return False
            return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
        return got == want
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)):
        return type(got) is type(want) and len(got) == len(want) and all(
            is_close(g, w, rel_tol, abs_tol) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(is_close(got[k], want[k], rel_tol, abs_tol) for k in want)
    return got == want  # plain data only (an opaque result never gets here): no custom __eq__

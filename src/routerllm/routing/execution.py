"""The one place routing executes a candidate answer: call its function on plain-data arguments.

    runs = call_many(judge, [Job(code, "add", [(1, 2), (0, 0)]), ...], call_timeout_s=1.0)
    runs[0].calls[0]      # CallOutcome(kind="value", value=3) | kind "error" (TypeError) | "timeout" | ...

Every routing check (the prompt's visible examples, probe inputs next to them, type and shape
checks, agreement between answers) is a list of calls of the entry point.

Where each part runs (issue 9.1):
* the candidate (model code) runs in a fresh jail session of the Judge (evaluation/jail.py), one per
  answer: loaded once, then called once per argument tuple, each call bounded by `call_timeout_s`;
* the example expressions come from the prompt (dataset or API client text, never model output).
  They are NOT executed anywhere: evaluation/examples.py reads them on this trusted side as literals
  (ast, no names, bounded arithmetic), so what crosses into the jail is plain data and an example
  cannot run code on either side;
* what a result MEANS (does it equal the expected value, does it agree with another answer) is
  judged in this process (routing/checker.py) on values decoded from plain data (evaluation/wire.py:
  exact builtin types only). An always-equal object, an int subclass, a generator come back as
  "opaque" with their type name; a patched builtin or a tracer in the jail never reaches the
  comparison; nothing the program prints is read. So the cascade's accept-or-escalate verdict cannot
  be forged by the model's code, and `serve`'s reason (checker.py) carries figures and builtin type
  names, never program output.
A value whose canonical encoding exceeds `MAX_VALUE_CHARS` is kept as a digest (floats to 9
significant digits), enough for equality between answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from routerllm.evaluation.jail import CallResult
    from routerllm.evaluation.judge import Judge

# Characters of one result's canonical encoding kept as a value; a longer one is kept as a digest
# (a right answer to a HumanEval-sized call is a few dozen characters; records stay small).
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
# canonical encoding of plain values (fingerprints and digests, on this side only)
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
    status: str = "passed"  # how the whole run went: "passed" (ran), "timed out", "failed" (died), "error"
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
# the run: one jail session per answer
# --------------------------------------------------------------------------------------------------

def _outcome(result: "CallResult") -> CallOutcome:
    """A call's plain result (decoded on this side) as a CallOutcome."""
    if result.ok:
        try:
            text = json.dumps(_encode(result.value))
        except (OverflowError, RecursionError, ValueError):
            text = None
        if text is None or len(text) > MAX_VALUE_CHARS:
            return CallOutcome("value", digest=_digest(result.value), detail=type(result.value).__name__)
        return CallOutcome("value", value=result.value)
    error = result.error or "error"
    if error.startswith("timeout"):
        return CallOutcome("timeout")
    if error.startswith("not plain data: "):
        what = error[len("not plain data: "):]
        return CallOutcome("opaque", detail=what if what.isidentifier() else "too large")
    return CallOutcome("error", detail=error.split(":")[0][:60])


def _run(judge: "Judge", job: Job, call_timeout_s: float, timeout_s: float | None) -> Execution:
    start = time.monotonic()
    calls: list[CallOutcome] = []
    status, load_error = "passed", None
    try:
        with judge.jail.session(job.code, timeout_s=timeout_s) as session:
            if not session.load.ok:
                error = session.load.error or "error"
                status = "timed out" if error.startswith("timeout") else "failed"
                load_error = "timeout" if error.startswith("timeout") else error.split(":")[0][:60]
            elif not session.defines(job.entry_point):
                load_error = "entry point not defined"
            else:
                for args in job.calls:
                    result = session.call(job.entry_point, tuple(args), timeout_s=call_timeout_s)
                    ended = session.ended
                    if ended is not None and not ended.startswith("timeout:"):
                        # this side ended the session (the program's limit, its death, a forged
                        # reply): the call in flight and the rest were never answered
                        status = "timed out" if ended.startswith("timeout") else "failed"
                        break
                    calls.append(_outcome(result))
                    if ended is not None:  # a call that defeated its own timer: nothing more runs
                        status = "timed out"
                        break
    except Exception as exc:  # noqa: BLE001 - the jail could not start: no call was answered
        status, load_error = "error", f"jail failure ({type(exc).__name__})"
    calls += [CallOutcome("lost", detail=status)] * (len(job.calls) - len(calls))
    return Execution(calls=calls, load_error=load_error, status=status, duration_s=time.monotonic() - start)


def call_many(judge: "Judge", jobs: list[Job], *, call_timeout_s: float = CALL_TIMEOUT_S,
              timeout_s: float | None = None) -> list[Execution]:
    """Run each job (one answer, its calls) in a jail session of `judge`, in parallel on its
    workers; results in order. `timeout_s` bounds a whole answer (default: the judge's own limit)."""
    if not jobs:
        return []
    return judge.map(lambda job: _run(judge, job, call_timeout_s, timeout_s), list(jobs))


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

"""Judging answers with what the prompt gives, from plain-data results (routing/execution.py runs them).

    checks = task_checks(prompt, entry_point)     # visible examples + near probe inputs, as plain data
    job = checks.job(code)                        # the calls to run (Execute it in the jail)
    result, vector = judge(checks, execution)     # CheckResult (figures) + the answer's probe results
    conflict(vector_a, vector_b)                  # two answers that cannot both be right

Three checks, none of them the hidden tests:

* visible examples: each call's result must equal the example's expected value as the hidden tests'
  `==` would see it (float tolerance; a list is not a tuple);
* type and shape: on the near probes (inputs next to the visible ones, evaluation/examples.py) the
  result's type must be one of the visible expected values' types (an `int` task that returns a
  `str` or a `list` next to its examples is wrong there);
* agreement: two answers that pass every visible example conflict when they return different
  values on a near probe (or on the inputs of tests the tier wrote itself, routing/self_tests.py).
  "No result" (None, an exception, a time-out) is not compared: right answers differ in how they
  fail outside the task's domain.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from routerllm.evaluation.examples import PlainExample, Probe, detect_entry_point, extract_examples, probe_inputs
from routerllm.records import CheckResult
from routerllm.routing.execution import CallOutcome, Execution, Job, _digest, is_close

Vector = list[str | None]  # per near probe: the result's fingerprint, or None (no result)


@dataclass
class TaskChecks:
    """What the prompt gives to check answers to one task with."""

    entry_point: str | None
    examples: list[PlainExample]
    probes: list[Probe]  # near probes only
    self_tests: list[PlainExample] = field(default_factory=list)  # written by the tier (routing/self_tests.py)

    @property
    def checkable(self) -> bool:
        return bool(self.entry_point and self.examples)

    @property
    def expected_types(self) -> set[str]:
        names = {type(e.expected).__name__ for e in self.examples if e.wrapper is None}
        if names <= {"NoneType"}:
            return set()  # nothing to compare a result's type with
        if {"int", "float", "bool"} & names:
            names |= {"int", "float", "bool"}  # docstrings write 6 for 6.0; the tests' == takes 1 for True
        return names

    def job(self, code: str) -> Job:
        assert self.entry_point is not None
        return Job(code, self.entry_point, [e.args for e in self.examples] + [p.args for p in self.probes]
                   + [t.args for t in self.self_tests])

    def with_self_tests(self, tests: list[PlainExample]) -> "TaskChecks":
        known = {repr(e.args) for e in self.examples} | {repr(p.args) for p in self.probes}
        return dataclasses.replace(self, self_tests=[t for t in tests if repr(t.args) not in known])


def task_checks(prompt: str, entry_point: str | None = None) -> TaskChecks:
    entry_point = entry_point or detect_entry_point(prompt)
    if not entry_point:
        return TaskChecks(None, [], [])
    examples = extract_examples(prompt, entry_point)
    plain = [p for p in (e.plain() for e in examples) if p is not None]
    probes = [p for p in probe_inputs(examples) if p.near]
    return TaskChecks(entry_point, plain, probes)


def _type_word(name: str | None) -> str:
    """A type or exception name the program reported, shown only when it is a builtin's (the program
    chooses any other name, `type("<a secret>", (Exception,), {})`, so it is program output)."""
    if name in _BUILTIN_NAMES or (name or "").startswith(("entry point not defined", "no report")):
        return str(name)
    return "non-builtin type"


_BUILTIN_NAMES = frozenset(n for n in dir(builtins) if isinstance(getattr(builtins, n), type)) | {"NoneType"}


def _describe(example: PlainExample, outcome: CallOutcome) -> str:
    """The failed example's call and expected value (prompt text) and what KIND of result came
    back (a type name, an exception's type name, a time-out): no program output."""
    call = f"{example.function}({', '.join(repr(a) for a in example.args)})"
    if example.wrapper is not None:
        call = f"{example.wrapper[0]}({call}{''.join(', ' + repr(a) for a in example.wrapper[1])})"
    if outcome.kind == "value":
        # never the returned value itself: this text reaches the repair prompt, whose answer a
        # `serve` client reads (issue 9: serve returns no program output)
        kind = outcome.detail if outcome.digest is not None else type(outcome.value).__name__
        got = f"got a different value (a {_type_word(kind)})"
    elif outcome.kind == "error":
        got = f"raised {_type_word(outcome.detail)}"
    elif outcome.kind == "opaque":
        got = f"returned a {_type_word(outcome.detail)} (not plain data)"
    else:
        got = outcome.kind if outcome.kind == "timeout" else "did not finish"
    return f"{call} should be {example.expected!r}"[:300] + f", {got}"


def _example_passed(example: PlainExample, outcome: CallOutcome) -> bool:
    if outcome.kind != "value":
        return False
    if outcome.digest is not None:  # too large to send: only exact equality can hold
        return example.wrapper is None and outcome.digest == _digest(example.expected)
    try:
        return is_close(example.unwrap(outcome.value), example.expected)
    except Exception:  # noqa: BLE001 - the wrapper (round, len, ...) rejects the result's type
        return False


def judge(checks: TaskChecks, run: Execution) -> tuple[CheckResult, Vector]:
    """One answer's CheckResult and its near-probe vector (see module docstring)."""
    n = len(checks.examples)
    result = CheckResult(examples_total=n, examples_passed=0, near_probes=len(checks.probes),
                         load_error=run.load_error, check_s=run.duration_s)
    if run.load_error is not None:
        result.failure = f"the code could not be called ({_type_word(run.load_error)})"
        return result, [None] * len(checks.probes)
    for index, (example, outcome) in enumerate(zip(checks.examples, run.calls[:n])):
        if _example_passed(example, outcome):
            result.examples_passed += 1
        else:
            result.failed_examples.append(index)
            if result.failure is None:
                result.failure = _describe(example, outcome)
    vector: Vector = []
    allowed = checks.expected_types
    probes_end = n + len(checks.probes)
    for outcome in run.calls[n:probes_end]:
        returned = outcome.kind == "value" and (outcome.value is not None or outcome.digest is not None)
        vector.append(outcome.fingerprint() if returned else None)
        if returned and allowed:
            kind = outcome.detail if outcome.digest is not None else type(outcome.value).__name__
            if kind not in allowed:
                result.shape_mismatches += 1
    # the tier's own tests: their inputs are compared between answers like the probes' (their
    # expected values, written by the same model, are only counted)
    result.self_tests = len(checks.self_tests)
    for test, outcome in zip(checks.self_tests, run.calls[probes_end:]):
        returned = outcome.kind == "value" and (outcome.value is not None or outcome.digest is not None)
        vector.append(outcome.fingerprint() if returned else None)
        result.self_tests_passed += _example_passed(test, outcome)
    result.fingerprint = hashlib.sha256(json.dumps(vector).encode()).hexdigest()[:16]
    return result, vector


def conflict(a: Vector, b: Vector) -> bool:
    """Two answers return different values on some near probe where both return one."""
    return any(x is not None and y is not None and x != y for x, y in zip(a, b))

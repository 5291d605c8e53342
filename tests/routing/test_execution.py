"""Running answers on plain-data calls in the real jail (routing/execution.py) and judging the
plain results in this process (routing/checker.py)."""

from __future__ import annotations

import math

import pytest

from routerllm.routing.checker import conflict, judge, task_checks
from routerllm.routing.execution import Job, _digest, call_many, is_close

PLAIN = [
    None, True, 0, -7, 2 ** 80, 1.5, "héllo", [1, [2, "x"]], (1, (2, 3)), {"a": (1, 2), (1, 2): [3]},
    {1, 2, 3}, frozenset({"a"}), [], (), {}, float("inf"), float("-inf"),
]


def test_plain_data_round_trips_through_the_jail(code_judge) -> None:
    code = f"VALUES = {PLAIN!r}\ndef f(i, echo):\n    return VALUES[i] if echo is None else echo\n".replace("inf", "float('inf')")
    calls = [(i, None) for i in range(len(PLAIN))] + [(0, v) for v in PLAIN] + [(0, float("nan"))]
    (run,) = call_many(code_judge, [Job(code, "f", calls)])
    got = [o.value for o in run.calls]
    assert all(o.kind == "value" for o in run.calls), run.calls
    for value, back in zip(PLAIN + PLAIN, got):
        assert back == value and type(back) is type(value)
    assert math.isnan(got[-1])


def test_canonical_digests() -> None:
    assert _digest([0.1 + 0.2]) == _digest([0.3])  # 9 significant digits
    assert _digest({1: "a", 2: "b"}) == _digest({2: "b", 1: "a"})
    assert _digest((1, 2)) != _digest([1, 2])


def test_is_close_judges_as_the_hidden_tests_equality_would() -> None:
    assert is_close(6.0000001, 6) and is_close([1.0, 2], [1, 2.0])
    assert is_close(1, True) and not is_close(2, True)  # `assert f(x) == True` accepts 1
    assert not is_close((1, 2), [1, 2]) and not is_close(float("nan"), float("nan"))
    assert is_close({"a": 1.0}, {"a": 1}) and not is_close({"a": 1}, {"b": 1})


CODE = '''
import time

class Liar(int):
    def __eq__(self, other):
        return True

def f(kind):
    print("ROUTERLLM_CALL {\\"i\\": 0, \\"v\\": \\"42\\"}")   # a forged report on the candidate's stdout
    if kind == "int":
        return 3
    if kind == "tuple":
        return (1, [2.5, "x"], {"k": None})
    if kind == "raise":
        raise KeyError("nope")
    if kind == "loop":
        while True:
            pass
    if kind == "liar":
        return Liar(7)
    if kind == "gen":
        return (i for i in range(3))
    if kind == "big":
        return list(range(100000))
    if kind == "sleep":
        time.sleep(30)
'''


def test_calls_return_plain_data_or_say_why_not(code_judge) -> None:
    calls = [("int",), ("tuple",), ("raise",), ("loop",), ("liar",), ("gen",), ("big",)]
    (run,) = call_many(code_judge, [Job(CODE, "f", calls)], call_timeout_s=0.3)
    assert run.loaded
    kinds = [(o.kind, o.detail) for o in run.calls]
    assert run.calls[0].value == 3  # not the forged 42
    assert run.calls[1].value == (1, [2.5, "x"], {"k": None})
    assert kinds[2] == ("error", "KeyError")
    assert kinds[3][0] == "timeout"
    assert kinds[4] == ("opaque", "Liar")  # an int subclass that equals everything cannot pass for a value
    assert kinds[5] == ("opaque", "generator")
    big = run.calls[6]
    assert big.kind == "value" and big.value is None and big.digest == _digest(list(range(100000)))


def test_a_program_killed_half_way_reports_the_calls_it_finished(code_judge) -> None:
    (run,) = call_many(code_judge, [Job(CODE, "f", [("int",), ("sleep",), ("int",)])], call_timeout_s=20, timeout_s=2)
    assert run.calls[0].value == 3
    assert [o.kind for o in run.calls[1:]] == ["lost", "lost"] and run.status == "timed out"


def test_code_that_does_not_load_or_lacks_the_function(code_judge) -> None:
    broken, missing = call_many(code_judge, [Job("def f(:\n", "f", [(1,)]), Job("def g():\n    return 1\n", "f", [(1,)])])
    assert broken.load_error == "SyntaxError" and broken.calls[0].kind == "lost"
    assert missing.load_error == "entry point not defined"


PROMPT = '''def double(xs: list) -> list:
    """Double every element.
    >>> double([1, 2, 3])
    [2, 4, 6]
    >>> double([0.5])
    [1.0]
    """
'''


def test_judge_examples_types_and_agreement(code_judge) -> None:
    checks = task_checks(PROMPT, "double")
    assert len(checks.examples) == 2 and checks.probes and all(p.near for p in checks.probes)
    right = "def double(xs):\n    return [2 * x for x in xs]\n"
    also_right = "def double(xs):\n    out = []\n    for x in xs:\n        out.append(x + x)\n    return out\n"
    # passes both examples, but returns a string next to them
    odd = ("def double(xs):\n    if xs == [1, 2, 3]:\n        return [2, 4, 6]\n    if xs == [0.5]:\n        return [1.0]\n"
           "    return 'many'\n")
    wrong = "def double(xs):\n    return [2 * x for x in xs] if len(xs) > 1 else list(xs)\n"  # right on [1, 2, 3] only
    runs = call_many(code_judge, [checks.job(c) for c in (right, also_right, odd, wrong)])
    (r1, v1), (r2, v2), (r3, v3), (r4, v4) = (judge(checks, run) for run in runs)
    assert r1.passed and r2.passed and not conflict(v1, v2) and r1.fingerprint == r2.fingerprint
    assert r3.examples_passed == 2 and r3.shape_mismatches > 0 and not r3.passed
    assert "visible examples passed" in r3.summary() and "wrong type" in r3.summary()
    assert r4.examples_passed == 1 and r4.failed_examples == [1] and not r4.passed
    # for the record and the repair prompt only: the example (prompt text), the result's builtin type, never its value
    assert r4.failure == "double([0.5]) should be [1.0], got a different value (a list)"
    assert "got" not in r4.summary()


def test_no_result_is_not_a_disagreement() -> None:
    assert not conflict(["a", None, "c"], ["a", "b", None])
    assert conflict(["a", "b"], ["a", "x"])

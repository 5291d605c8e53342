"""The Judge's plumbing: the config factory and its opt-out, verdict records, order and progress,
a checker that runs past its limit, memory bombs, the environment (ported from the old sandbox's
suite). Needs bubblewrap (skips with the reason)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from routerllm.config import BenchmarkSection
from routerllm.evaluation.judge import Judge, JudgeVerdict, open_judge
from routerllm.evaluation.programs import Program

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAME, SECRET_VALUE = "ROUTERLLM_TEST_SECRET", "s3cr3t-value-7f2a"


def program(solution: str, test: str, entry_point: str = "f") -> Program:
    return Program("T/0", entry_point, solution, test)


def test_verdicts_in_order_with_progress_and_records(judge):
    progs = [program(f"def f():\n    return {i}\n", f"def check(c):\n    assert c() == {i if i % 2 else -1}\n") for i in range(8)]
    seen = []
    verdicts = judge.judge_many(progs, on_done=lambda i, v: seen.append(i))
    assert [v.passed for v in verdicts] == [i % 2 == 1 for i in range(8)] and sorted(seen) == list(range(8))
    back = JudgeVerdict.from_dict(verdicts[0].to_dict())
    assert (back.status, back.reason, back.isolation) == (verdicts[0].status, verdicts[0].reason, verdicts[0].isolation)
    assert str(verdicts[1]) == "passed" and str(verdicts[0]).startswith("failed: a hidden test assertion failed")


def test_a_test_looping_on_a_bad_answer_is_a_timeout_and_the_checker_is_replaced(judge):
    # looping on its own (not calling the candidate): only killing the checker ends it
    looping = program("def f(x):\n    return x\n", "def check(c):\n    x = c(1)\n    while x != 2:\n        pass\n")
    v = judge.judge(looping, timeout_s=1)
    assert v.status == "timeout" and "the hidden test ran past" in v.reason, v
    # looping on calls: the jail session's deadline ends it
    v = judge.judge(program("def f(x):\n    return x\n", "def check(c):\n    while c(1) != 2:\n        pass\n"), timeout_s=1)
    assert v.status == "timeout" and "ran out of time" in v.reason, v
    ok = program("def f(x):\n    return x + 1\n", "def check(c):\n    assert c(1) == 2\n")
    assert all(v.passed for v in judge.judge_many([ok] * 4))  # every checker answers again


def test_memory_bombs_fail_and_the_pool_is_healthy(judge):
    test = "def check(c):\n    assert c() == 1\n"
    bombs = [program("def f():\n    x = bytearray(8 * 1024 ** 3)\n    return 1\n", test),
             program("def f():\n    chunks = []\n    while True:\n        chunks.append(bytearray(50 * 1024 ** 2))\n", test)]
    verdicts = judge.judge_many(bombs)  # MemoryError at the address-space limit (timeout on a loaded machine)
    assert all(v.status in ("failed", "timeout") for v in verdicts), verdicts
    assert judge.judge(program("def f():\n    return 1\n", test)).passed


def test_the_owners_environment_is_not_visible(judge, monkeypatch):
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    solution = f"""
import os, glob
def f():
    leaks = [k for k in os.environ if k == {SECRET_NAME!r}]
    for path in glob.glob("/proc/*/environ"):
        try:
            if {SECRET_VALUE!r}.encode() in open(path, "rb").read():
                leaks.append(path)
        except OSError:
            pass
    return leaks
"""
    v = judge.judge(program(solution, "def check(c):\n    assert c() == []\n"))
    assert v.passed, v
    assert SECRET_VALUE not in v.reason and SECRET_NAME not in v.reason


def test_open_judge_isolates_even_when_opted_out_where_it_can(judge):
    with open_judge(BenchmarkSection(unsafe_no_sandbox=True), workers=1) as j:
        assert j.isolation.startswith("bubblewrap")
    with pytest.raises(ValueError, match="timeout_s"):
        Judge(timeout_s=0)


def test_without_bubblewrap_open_judge_refuses_unless_opted_out(tmp_path):
    code = ("from routerllm.config import BenchmarkSection\nfrom routerllm.evaluation.judge import open_judge\n"
            "from routerllm.exceptions import SandboxUnavailable\n"
            "try:\n    open_judge(BenchmarkSection())\nexcept SandboxUnavailable as e:\n    print('REFUSED', e.fix)\n"
            "with open_judge(BenchmarkSection(unsafe_no_sandbox=True), workers=1) as j:\n    print('ISOLATION', j.isolation)\n"
            "    from routerllm.evaluation.programs import Program\n"
            "    print('VERDICT', j.judge(Program('T', 'f', 'def f():\\n    return 2\\n', 'def check(c):\\n    assert c() == 2\\n')).status)\n")
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}  # no bwrap on PATH
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "REFUSED" in out.stdout and "unsafe_no_sandbox" in out.stdout, out.stdout + out.stderr
    assert "ISOLATION NONE (unsafe_no_sandbox)" in out.stdout and "VERDICT passed" in out.stdout, out.stdout + out.stderr
    assert "WITHOUT isolation" in out.stderr  # the opt-out is logged

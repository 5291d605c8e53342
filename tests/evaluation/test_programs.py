"""evaluation/programs.py: the one builder of what is executed, and one recorded file scored the
same way by `benchmark --execute-only` and by `compare`, task by task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routerllm.evaluation.humaneval import Task, load_tasks
from routerllm.evaluation.programs import Program, build, check_entry_point, solution_source

REPO = Path(__file__).resolve().parents[2]
REPLAY = REPO / "configs" / "replay_config.yaml"
RECORDED = REPO / "data" / "humaneval-generations"


def _task() -> Task:
    return Task(task_id="T/0", prompt="from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    \"\"\"Sum.\"\"\"\n",
                canonical_solution="    return sum(xs)\n", test="def check(candidate):\n    assert candidate([1, 2]) == 3\n",
                entry_point="add")


def test_modes_build_the_same_candidate_for_the_same_answer():
    task = _task()
    cont = build(task, task.canonical_solution, "continuation")
    assert cont.solution == task.prompt + task.canonical_solution
    assert cont.script().endswith("check(add)\n") and task.test in cont.script()
    # a recorded whole program that relies on the prompt's imports gets the preamble, in both modes
    bare = "def add(xs: List[int]) -> int:\n    return sum(xs)\n"
    assert build(task, bare, "program").solution == build(task, bare, "chat").solution
    assert build(task, bare, "program").solution.startswith("from typing import List")
    assert solution_source(task, build(task, bare, "program").solution, "program") == build(task, bare, "program").solution
    assert isinstance(cont, Program) and task.test not in cont.solution  # the tests are never in the solution


@pytest.mark.parametrize("bad", ["f(1); import os", "1abc", "class", "", "a.b", None])
def test_entry_point_must_be_an_identifier(bad):
    with pytest.raises(ValueError, match="entry_point=.* is not a Python identifier"):
        check_entry_point(bad)
    task = _task()
    with pytest.raises(ValueError, match="entry_point"):
        build(Task(task.task_id, task.prompt, task.canonical_solution, task.test, bad), "", "continuation")


def test_unknown_mode_is_named():
    with pytest.raises(ValueError, match="mode='patch' is unknown"):
        build(_task(), "", "patch")  # type: ignore[arg-type]


@pytest.mark.skipif(not RECORDED.is_dir(), reason=f"recorded generations not at {RECORDED}")
def test_execute_only_and_compare_agree_task_by_task(tmp_path):
    """One recorded file (gpt-4-0613, sample 0 of the first 12 tasks) through `benchmark
    --skip-execution` + `--execute-only`, and through `compare` (the large tier alone)."""
    from routerllm.comparison import CompareOptions, run_comparison
    from routerllm.config import load_config
    from routerllm.runner import BenchmarkOptions, execute_only, run_benchmark

    n = 12
    config = load_config(REPLAY)
    config.router.task_batch = 6
    bench = run_benchmark(BenchmarkOptions(config=config, model=config.models.large_llm, num_examples=n,
                                           skip_execution=True, results_dir=str(tmp_path / "bench"), run_name="b",
                                           progress=False))
    executed = execute_only(bench.run_dir, config, progress=False)
    by_bench = {r["task_id"]: r["samples"][0]["verdict"]["status"] == "passed" for r in executed.records}
    compared = run_comparison(CompareOptions(config=load_config(REPLAY), num_examples=n, strategies=["large"],
                                             results_dir=str(tmp_path / "cmp"), run_name="c", progress=False))
    by_compare = {r.task_id: r.systems["large"].passed for r in compared.records}
    assert len(by_bench) == n and by_bench == by_compare
    assert 0 < sum(by_bench.values()) < n or all(by_bench.values())  # recorded: gpt-4 passes most, not all
    recorded = {}
    for line in (RECORDED / "gpt-4-0613.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["sample"] == 0:
            recorded[row["task_id"]] = row["passed"]
    assert {t.task_id: recorded[t.task_id] for t in load_tasks(n)} == by_bench  # and with evalplus's verdicts

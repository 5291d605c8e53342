"""The stage-batched driver (routing/driver.py) over real replay tiers: one backend call per tier
per stage, the large tier once with every escalation, the same decisions as one task at a time,
and time split into queue wait, generation and checks."""

from __future__ import annotations

import pytest

from routerllm.backends.base import GenerationRequest
from routerllm.routing import Tiers, build_strategy

TASK_IDS = [f"HumanEval/{i}" for i in (0, 1, 2, 9, 33, 38, 82, 129)]


class Counting:
    """A real backend, with every generate() call's size recorded."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.sizes: list[int] = []

    def __getattr__(self, item):
        return getattr(self.backend, item)

    def generate(self, requests):
        self.sizes.append(len(requests))
        return self.backend.generate(requests)


@pytest.fixture
def counted(mistral_gpt4):
    config, tiers = mistral_gpt4()
    small, large = Counting(tiers.small[0][1]), Counting(tiers.large[1])
    return config, Tiers(small=[(tiers.small[0][0], small)], large=(tiers.large[0], large), configs=tiers.configs), small, large


def requests_for(tasks):
    return [GenerationRequest(prompt=tasks[t].prompt, task_id=t) for t in TASK_IDS], [tasks[t].entry_point for t in TASK_IDS]


def test_the_cascade_is_batched_by_stage(counted, tasks, code_judge) -> None:
    config, tiers, small, large = counted
    router = build_strategy("cascade", tiers, config.router, judge=code_judge)
    requests, entry_points = requests_for(tasks)
    answers = router.answer_many(requests, entry_points)
    escalated = [a for a in answers if a.calls.get("gpt-4-0613")]
    assert escalated and len(escalated) < len(answers)
    # the large tier got ONE call with every escalation, after every small stage
    assert large.sizes == [len(escalated)]
    # the first small stage asks every checkable task for `agreement` (2) answers at once
    checkable = sum(1 for a in answers if a.decision.details["examples"])
    assert small.sizes[0] == 2 * checkable and len(small.sizes) <= config.router.cascade.small_samples - 1
    assert sum(small.sizes) == sum(a.calls.get("Mistral-7B-Instruct-v0.1", 0) for a in answers)


def test_decisions_do_not_depend_on_the_batch(counted, tasks, code_judge) -> None:
    config, tiers, _, _ = counted
    router = build_strategy("cascade", tiers, config.router, judge=code_judge)
    requests, entry_points = requests_for(tasks)
    together = router.answer_many(requests, entry_points)
    alone = [router.answer(r, e) for r, e in zip(requests, entry_points)]
    reversed_batch = router.answer_many(requests[::-1], entry_points[::-1])[::-1]
    for a, b, c in zip(together, alone, reversed_batch):
        assert (a.decision.tier, a.decision.state, a.decision.reason, a.calls, a.generation.text) == \
               (b.decision.tier, b.decision.state, b.decision.reason, b.calls, b.generation.text) == \
               (c.decision.tier, c.decision.state, c.decision.reason, c.calls, c.generation.text)


def test_time_is_queue_plus_generation_plus_checks(counted, tasks, code_judge) -> None:
    config, tiers, _, _ = counted
    router = build_strategy("cascade", tiers, config.router, judge=code_judge)
    requests, entry_points = requests_for(tasks)
    answers = router.answer_many(requests, entry_points)
    clock = answers[0].batch_clock_s
    for a in answers:
        assert a.total_s == pytest.approx(a.queue_s + a.generation_s + a.check_s)
        assert 0 < a.total_s <= clock + 1e-9 and a.queue_s >= 0
        # a stage batch takes as long as its longest member: every attempt waited for its whole batch
        assert all(att.batch_s >= att.total_s for att in a.attempts)
    # the escalated tasks finish last (the large batch comes after every small stage)
    last = max(answers, key=lambda a: a.total_s)
    assert last.calls.get("gpt-4-0613") and last.total_s == pytest.approx(clock)
    # a task accepted in the first stage waited for nothing before its answer
    first = min(answers, key=lambda a: a.total_s)
    assert first.queue_s == pytest.approx(0.0) and first.decision.state == "agreed"
    # with no task waiting for another, a lone answer's queue wait is zero
    alone = router.answer(requests[1], entry_points[1])
    assert alone.queue_s == pytest.approx(0.0)


def test_simple_strategies_share_one_call_per_batch(counted, tasks) -> None:
    config, tiers, small, large = counted
    requests, entry_points = requests_for(tasks)
    build_strategy("small", tiers, config.router).answer_many(requests, entry_points)
    build_strategy("random", tiers, config.router).answer_many(requests, entry_points)
    assert small.sizes[0] == len(requests) and len(large.sizes) == 1 and sum(large.sizes) + small.sizes[1] == len(requests)


def test_a_check_is_bounded_by_example_timeout_s(mistral_gpt4, code_judge) -> None:
    from routerllm.routing.base import Execute
    from routerllm.routing.driver import Driver
    from routerllm.routing.execution import Job

    config, tiers = mistral_gpt4(cascade={"example_timeout_s": 1})

    def plan():
        (run,) = yield Execute([Job("import time\ndef f():\n    time.sleep(30)\n", "f", [()])])
        return run

    import time

    start = time.perf_counter()
    (run,) = Driver(tiers, lambda: code_judge, check_timeout_s=config.router.cascade.example_timeout_s,
                    call_timeout_s=60).run_raw([plan()])
    assert run.status == "timed out" and time.perf_counter() - start < 15

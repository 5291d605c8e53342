"""Every strategy on real recorded generations through the replay backend."""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.backends.replay import ReplayBackend
from routerllm.routing import STRATEGIES, build_strategy

TASK_IDS = ["HumanEval/0", "HumanEval/1", "HumanEval/38", "HumanEval/82", "HumanEval/129"]


def run(router, tasks):
    return {tid: router.answer(GenerationRequest(prompt=tasks[tid].prompt, task_id=tid), entry_point=tasks[tid].entry_point)
            for tid in TASK_IDS}


def test_small_large_random_answer_with_recorded_text(mistral_gpt4, tasks, code_judge) -> None:
    config, tiers = mistral_gpt4(random_p=0.5, seed=3)
    small_backend = tiers.backend("Mistral-7B-Instruct-v0.1")
    large_backend = tiers.backend("gpt-4-0613")
    assert isinstance(small_backend, ReplayBackend)
    small = run(build_strategy("small", tiers, config.router), tasks)
    large = run(build_strategy("large", tiers, config.router), tasks)
    for tid in TASK_IDS:
        req = GenerationRequest(prompt="", task_id=tid)
        assert small[tid].generation.text == small_backend.generate([req])[0].text
        assert large[tid].generation.text == large_backend.generate([req])[0].text
        assert small[tid].generation.timing == "modelled"
    picks = {tid: a.decision.tier for tid, a in run(build_strategy("random", tiers, config.router), tasks).items()}
    assert set(picks.values()) <= {"Mistral-7B-Instruct-v0.1", "gpt-4-0613"}


def test_heuristic_reasons(mistral_gpt4, tasks) -> None:
    config, tiers = mistral_gpt4(heuristic_max_chars=900, heuristic_min_examples=1)
    answers = run(build_strategy("heuristic", tiers, config.router), tasks)
    assert answers["HumanEval/38"].decision.tier == "gpt-4-0613"  # no example
    assert "0 visible example" in answers["HumanEval/38"].decision.reason
    assert answers["HumanEval/129"].decision.tier == "gpt-4-0613"  # minPath: a long statement
    assert "docstring" in answers["HumanEval/129"].decision.reason
    assert answers["HumanEval/0"].decision.tier == "Mistral-7B-Instruct-v0.1"
    assert answers["HumanEval/0"].decision.details["examples"] == 2


def test_every_registered_strategy_is_driven_here() -> None:
    assert set(STRATEGIES) == {"small", "large", "random", "heuristic", "cascade"}

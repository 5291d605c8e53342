"""The cascade on real recorded generations (Mistral-7B-Instruct -> gpt-4-0613, replay backend),
with visible-example checks run in the real sandbox. The hidden tests play no part."""

from __future__ import annotations

import pytest

from routerllm.backends.base import GenerationRequest
from routerllm.routing import build_strategy


def ask(router, task, sample: int = 0, entry_point: str | None = "auto"):
    request = GenerationRequest(prompt=task.prompt, task_id=task.task_id, sample=sample)
    return router.answer(request, entry_point=task.entry_point if entry_point == "auto" else entry_point)


def test_accepts_small_answer_that_passes_the_examples(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 1})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/0"])  # Mistral's sample 0 is right here
    assert answer.decision.tier == "Mistral-7B-Instruct-v0.1"
    assert not answer.decision.escalated
    assert answer.calls == {"Mistral-7B-Instruct-v0.1": 1}
    assert answer.attempts[0]["examples_passed"] is True
    assert "passed all 2 visible examples" in answer.decision.reason
    assert answer.decision.details["examples"] == 2


def test_escalates_when_an_example_fails(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 1})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/1"])  # Mistral's sample 0 splits the groups wrongly
    assert answer.decision.tier == "gpt-4-0613" and answer.decision.escalated
    assert answer.calls == {"Mistral-7B-Instruct-v0.1": 1, "gpt-4-0613": 1}
    assert "separate_paren_groups(" in answer.decision.reason and "should be" in answer.decision.reason
    assert answer.attempts[0]["examples_passed"] is False and answer.attempts[0]["examples_failed"] == [0]
    assert answer.generation.text.startswith("from typing import List")  # gpt-4's recorded answer


def test_no_visible_example_goes_straight_to_large(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4()
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/38"])  # decode_cyclic: no example in the prompt
    assert answer.calls == {"gpt-4-0613": 1}
    assert "no visible example" in answer.decision.reason


def test_later_sample_accepted(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 10})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/33"])  # sort_third: early samples fail the examples, a later one passes
    accepted = answer.decision.details["accepted_sample"]
    assert accepted >= 1 and answer.decision.tier == "Mistral-7B-Instruct-v0.1"
    assert answer.calls == {"Mistral-7B-Instruct-v0.1": accepted + 1}
    assert [a["sample"] for a in answer.attempts] == list(range(accepted + 1))
    assert all(a["temperature"] == 0.8 for a in answer.attempts[1:])


def test_disagreeing_answers_escalate(mistral_gpt4, tasks, sandbox) -> None:
    # prime_length: Mistral's sample 0 calls a 1-letter string prime, sample 1 does not; both pass
    # the four visible examples, so only the probes next to them tell them apart.
    config, tiers = mistral_gpt4(cascade={"small_samples": 10, "agreement": 2})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/82"])
    assert answer.decision.escalated and answer.decision.tier == "gpt-4-0613"
    assert "disagree" in answer.decision.reason
    assert answer.calls["Mistral-7B-Instruct-v0.1"] == 2
    assert answer.attempts[0]["fingerprint"] != answer.attempts[1]["fingerprint"]


def test_agreeing_answers_accepted(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 10, "agreement": 2})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/0"])
    assert answer.decision.tier == "Mistral-7B-Instruct-v0.1"
    assert "2 answers agree" in answer.decision.reason
    assert answer.decision.details["probes"] > 0


def test_free_form_prompt_detects_the_function(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 1})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/0"], entry_point=None)
    assert answer.decision.details["entry_point"] == "has_close_elements"
    assert answer.decision.tier == "Mistral-7B-Instruct-v0.1"


def test_repair_is_not_attempted_on_a_replayed_tier(mistral_gpt4, tasks, sandbox) -> None:
    config, tiers = mistral_gpt4(cascade={"small_samples": 1, "repair": True})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/1"])
    assert answer.calls == {"Mistral-7B-Instruct-v0.1": 1, "gpt-4-0613": 1}
    assert not any(a.get("repair") for a in answer.attempts)


def test_batched_samples_cost_their_longest_member(mistral_gpt4, tasks, sandbox) -> None:
    from routerllm.routing.base import attempts_cost

    config, tiers = mistral_gpt4(cascade={"small_samples": 10, "agreement": 2, "sample_batch": 5})
    router = build_strategy("cascade", tiers, config.router, sandbox=sandbox)
    answer = ask(router, tasks["HumanEval/0"])
    assert answer.decision.tier == "Mistral-7B-Instruct-v0.1"
    assert answer.calls == {"Mistral-7B-Instruct-v0.1": 5}  # one batch of 5, accepted from it
    assert [a["batch"] for a in answer.attempts] == [0] * 5
    longest = max(a["total_s"] for a in answer.attempts)
    assert attempts_cost(answer.attempts, "total_s") == pytest.approx(longest)
    # the same decision as one sample at a time (which stops after 2 calls)
    config1, tiers1 = mistral_gpt4(cascade={"small_samples": 10, "agreement": 2})
    one_by_one = ask(build_strategy("cascade", tiers1, config1.router, sandbox=sandbox), tasks["HumanEval/0"])
    assert one_by_one.generation.text == answer.generation.text
    assert one_by_one.calls == {"Mistral-7B-Instruct-v0.1": 2}

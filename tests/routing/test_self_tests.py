"""Tests written by the tier itself (routing/self_tests.py): parsed from a reply, their inputs
compared between answers. The tier here is a scripted in-process backend standing in for a model
(the cascade, the checks and the jail are the real ones)."""

from __future__ import annotations

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.config import RouterSection
from routerllm.evaluation.examples import parse_asserts
from routerllm.routing import Tiers, build_strategy
from routerllm.routing.self_tests import CONTINUATION, request_for

PROMPT = 'def sq(x: int) -> int:\n    """Return x squared.\n    >>> sq(3)\n    9\n    """\n'


class Scripted:
    """Answers requests for tests with assert lines, and sample i with the i-th body."""

    def __init__(self, name: str, bodies: list[str], tests: str = "") -> None:
        self.name, self.bodies, self.tests = name, bodies, tests
        self.requests: list[GenerationRequest] = []

    def load(self) -> None: ...

    def generate(self, requests):
        self.requests += requests
        out = []
        for r in requests:
            text = self.tests if "tests of sq" in r.prompt else self.bodies[r.sample % len(self.bodies)]
            out.append(Generation(text=text, prompt_tokens=10, completion_tokens=5, ttft_s=0.0, total_s=0.01))
        return out

    def health(self) -> bool:
        return True

    def close(self) -> None: ...


def test_asserts_are_parsed_from_a_reply() -> None:
    reply = "```python\nassert sq(2) == 4\nassert sq(-1) == 1  # negative\nassert other(1) == 1\nassert sq(2) == 4\n" \
            "assert sq(x) == 9\nassert sq(5) > 1\n```"
    tests = parse_asserts(reply, "sq")
    assert [(t.args, t.expected) for t in tests] == [((2,), 4), ((-1,), 1)]
    continuation = request_for(GenerationRequest(prompt=PROMPT), "sq", 4, "continuation")
    assert continuation.prompt == CONTINUATION.format(prompt=PROMPT, n=4, entry_point="sq") and "\nassert" not in continuation.stop
    chat = request_for(GenerationRequest(prompt=PROMPT), "sq", 4, "chat")
    assert "4 different assert statements" in chat.messages[0]["content"]


def test_answers_must_agree_on_the_inputs_of_the_tiers_own_tests(code_judge) -> None:
    # both answers pass sq(3) == 9 and agree on the probes next to 3; they differ at 100
    small = Scripted("tiny", ["    return x * x\n", "    return x * x if x < 50 else 0\n"],
                     tests="100) == 10000\nassert sq(0) == 0\n")
    large = Scripted("huge", ["    return x ** 2\n"])
    tiers = Tiers(small=[("tiny", small)], large=("huge", large))
    request = GenerationRequest(prompt=PROMPT, task_id="T/1")

    plain = build_strategy("cascade", tiers, RouterSection(), judge=code_judge).answer(request, "sq")
    assert plain.decision.state == "agreed" and plain.decision.tier == "tiny" and plain.calls == {"tiny": 2}

    asked = build_strategy("cascade", tiers, RouterSection(cascade={"self_tests": 4}), judge=code_judge).answer(request, "sq")
    assert asked.decision.state == "conflict" and asked.decision.tier == "huge"
    assert asked.calls == {"tiny": 3, "huge": 1}  # the tests, two answers, then the large tier
    tests_attempt, first, second = asked.attempts[:3]
    assert tests_attempt.self_tests and tests_attempt.check is None
    assert (first.check.self_tests, first.check.self_tests_passed) == (2, 2)
    assert (second.check.self_tests, second.check.self_tests_passed) == (2, 1)

"""Registry and the simple strategies (small, large, random) over an in-process echo backend:
the backend is not the part under test here; the recorded-data tests drive them through replay."""

from __future__ import annotations

import pytest

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.config import RouterSection
from routerllm.exceptions import RoutingError
from routerllm.routing import STRATEGIES, Tiers, build_strategy


class EchoBackend:
    """Answers with its own name; counts requests."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[GenerationRequest] = []

    def load(self) -> None: ...

    def generate(self, requests):
        self.requests.extend(requests)
        return [Generation(text=f"{self.name}:{r.sample}", prompt_tokens=1, completion_tokens=1, ttft_s=0.0, total_s=0.01)
                for r in requests]

    def health(self) -> bool:
        return True

    def close(self) -> None: ...


@pytest.fixture
def tiers() -> Tiers:
    return Tiers(small=[("tiny", EchoBackend("tiny"))], large=("huge", EchoBackend("huge")))


def test_registry_lists_core_strategies() -> None:
    for name in ("small", "large", "random"):
        assert name in STRATEGIES


def test_unknown_strategy_lists_registered_names(tiers: Tiers) -> None:
    with pytest.raises(RoutingError) as exc:
        build_strategy("nope", tiers, RouterSection())
    for name in STRATEGIES:
        assert name in str(exc.value)
    with pytest.raises(RoutingError) as exc:
        build_strategy("learned", tiers, RouterSection())
    assert "was removed" in str(exc.value) and "cascade" in str(exc.value)


def test_removed_learned_keys_say_so() -> None:
    from routerllm.config import config_from_dict
    from routerllm.exceptions import ConfigError

    with pytest.raises(ConfigError) as exc:
        config_from_dict({"models": {"large_llm": {"name": "x", "backend": "replay", "replay_file": "x.jsonl"}},
                          "router": {"learned_model_path": "router.json"}})
    assert "learned" in str(exc.value) and "removed" in str(exc.value)


def test_small_and_large(tiers: Tiers) -> None:
    small = build_strategy("small", tiers, RouterSection()).answer(GenerationRequest(prompt="x"))
    assert small.generation.text == "tiny:0" and small.decision.tier == "tiny" and small.calls == {"tiny": 1}
    large = build_strategy("large", tiers, RouterSection()).answer(GenerationRequest(prompt="x"))
    assert large.generation.text == "huge:0" and large.decision.tier == "huge" and large.calls == {"huge": 1}
    assert large.attempts[0].tier == "huge" and large.attempts[0].sample == 0


def test_random_share_and_reproducibility(tiers: Tiers) -> None:
    options = RouterSection(random_p=0.3, seed=7)
    router = build_strategy("random", tiers, options)
    picks = [router.answer(GenerationRequest(prompt="p", task_id=f"T/{i}")).decision.tier for i in range(2000)]
    share = picks.count("huge") / len(picks)
    assert 0.26 < share < 0.34
    again = [router.answer(GenerationRequest(prompt="p", task_id=f"T/{i}")).decision.tier for i in range(2000)]
    assert picks == again
    other_seed = build_strategy("random", tiers, RouterSection(random_p=0.3, seed=8))
    assert picks != [other_seed.answer(GenerationRequest(prompt="p", task_id=f"T/{i}")).decision.tier for i in range(2000)]
    assert all(t == "tiny" for t in (build_strategy("random", tiers, RouterSection(random_p=0.0))
                                      .answer(GenerationRequest(prompt="p", task_id=f"T/{i}")).decision.tier for i in range(50)))


def test_routing_imports_no_comparison_or_calibration_io() -> None:
    # issue 12: comparison -> routing/registry -> routing/learned -> routing/calibration -> comparison
    # was a circle; routing/ is the pure part and imports neither the comparison nor the calibrate I/O
    import subprocess
    import sys

    code = ("import sys, routerllm.routing, routerllm.routing.cascade, routerllm.routing.strength; "
            "bad = [m for m in ('routerllm.comparison', 'routerllm.calibrate', 'routerllm.runner', 'torch') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

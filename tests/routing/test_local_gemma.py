"""Every strategy on local Gemma 3 270M tiers (the small tier of configs/local_config.yaml, and a
copy of it standing in for its large tier: real generation on the CPU through the
LargeModelManager), through the comparison so that strategies share generations. Two tasks and
short answers only: this loads and runs the real model twice. (The config's real large tier,
Qwen2.5-Coder-1.5B, is tested once in tests/test_local_config.py: its loads are expensive.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from routerllm.comparison import CompareOptions, run_comparison
from routerllm.config import load_config

REPO = Path(__file__).resolve().parents[2]
TASKS = ["HumanEval/23", "HumanEval/53"]  # strlen, add: within reach of a 270M model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_every_strategy_on_local_gemma_tiers(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "local_config.yaml")
    config.router.cascade.repair = True
    config.router.cascade.small_samples = 2  # two answers (then one repair): what a 270M model can afford here
    config.benchmark.track_co2 = True
    small = config.models.small_llms[0]
    config.models.large_llm = small.model_copy(update={"name": "gemma3_270m_large"})
    for tier in (small, config.models.large_llm):
        tier.max_new_tokens = 48
    outcome = run_comparison(CompareOptions(
        config=config, task_ids=TASKS, strategies=["small", "large", "random", "heuristic", "cascade"],
        results_dir=str(tmp_path), run_name="local", progress=False))
    systems = outcome.summary.systems
    assert set(systems) == {"small", "large", "random", "heuristic", "cascade"}
    for name, row in systems.items():
        assert row.timing == ["measured"], name
        assert row.latency_s.mean > 0 and row.tasks_per_hour > 0
        assert row.pass_at_1 is not None
    for record in outcome.records:
        cascade = record.systems["cascade"]
        first = cascade.attempts[0]
        assert first.tier == "gemma3_270m" and first.check is not None and first.timing == "measured"
        assert cascade.energy_kwh is not None  # codecarbon's batch measurement, split by token share
        if cascade.state == "agreed":
            assert cascade.tier == "gemma3_270m" and cascade.accepted
        elif not first.check.passed:
            assert any(a.repair for a in cascade.attempts)  # one repair, its failure fed back
    assert outcome.summary.carbon["tracker"].startswith("codecarbon")
    assert (outcome.run_dir / "report.md").is_file() and (outcome.run_dir / "tradeoff.png").is_file()

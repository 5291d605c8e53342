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
from routerllm.evaluation.humaneval import load_tasks
from routerllm.routing.calibration import fit_router

REPO = Path(__file__).resolve().parents[2]
TASKS = ["HumanEval/23", "HumanEval/53"]  # strlen, add: within reach of a 270M model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_every_strategy_on_local_gemma_tiers(tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / "local_config.yaml")
    # a learned router trained on other tasks (outcomes here: whether a prompt has a doctest; the
    # point is the file route `routerllm calibrate` produces, exercised on the live tiers)
    train = [t for t in load_tasks() if t.task_id not in TASKS][:60]
    model = fit_router([t.prompt for t in train], [t.entry_point for t in train],
                       [">>>" in t.prompt for t in train], target_large_share=0.5)
    config.router.learned_model_path = str(model.save(tmp_path / "router.json"))
    config.router.cascade.repair = True
    config.benchmark.track_co2 = True
    small = config.models.small_llms[0]
    config.models.large_llm = small.model_copy(update={"name": "gemma3_270m_large"})
    for tier in (small, config.models.large_llm):
        tier.max_new_tokens = 48
    outcome = run_comparison(CompareOptions(
        config=config, task_ids=TASKS, strategies=["small", "large", "random", "heuristic", "cascade", "learned"],
        results_dir=str(tmp_path), run_name="local", progress=False))
    systems = outcome.summary["systems"]
    assert set(systems) == {"small", "large", "random", "heuristic", "cascade", "learned"}
    for name, row in systems.items():
        assert row["timing"] == ["measured"], name
        assert row["latency_s"]["mean"] > 0
        assert row["pass_at_1"] is not None
    for record in outcome.records:
        cascade = record["systems"]["cascade"]
        first = cascade["attempts"][0]
        assert first["tier"] == "gemma3_270m" and first["examples_passed"] in (True, False)
        if first["examples_passed"]:
            assert cascade["tier"] == "gemma3_270m" and cascade["passed"] == record["systems"]["small"]["passed"]
        else:
            assert any(a.get("repair") for a in cascade["attempts"])  # one repair, failure fed back
        learned = record["systems"]["learned"]
        assert "threshold" in learned["reason"]
    assert outcome.summary["carbon"]["tracker"].startswith("codecarbon")
    assert (outcome.run_dir / "report.md").is_file() and (outcome.run_dir / "tradeoff.png").is_file()

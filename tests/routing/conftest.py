"""Fixtures for routing tests: replay tiers over the real recorded generations in
data/humaneval-generations (in the repository), HumanEval tasks (code_judge: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from routerllm.config import config_from_dict
from routerllm.evaluation.humaneval import load_tasks
from routerllm.routing import build_tiers

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "data" / "humaneval-generations"


def recorded_file(name: str) -> str:
    path = RECORDED / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"recorded generations not found at {path} (data/humaneval-generations in the repository)")
    return str(path)


def replay_config(small: str = "Mistral-7B-Instruct-v0.1", large: str = "gpt-4-0613", **router):
    return config_from_dict({
        "models": {
            "large_llm": {"name": large, "backend": "replay", "replay_file": recorded_file(large),
                          "cost": {"tokens_per_s": 4.0, "ttft_s": 2.0, "watts": 1200, "gpus": 3, "usd_per_gpu_hour": 2.0}},
            "small_llms": [{"name": small, "backend": "replay", "replay_file": recorded_file(small),
                            "cost": {"tokens_per_s": 40.0, "ttft_s": 0.1, "watts": 300, "gpus": 1, "usd_per_gpu_hour": 2.0}}],
        },
        "router": router,
    })


@pytest.fixture(scope="session")
def tasks():
    return {t.task_id: t for t in load_tasks()}


@pytest.fixture
def mistral_gpt4():
    def make(**router):
        config = replay_config(**router)
        return config, build_tiers(config)
    return make

"""`routerllm calibrate` on the recorded generations (replay tiers, real Judge), and a comparison
that routes with the file it writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routerllm.cli import main
from routerllm.comparison import CompareOptions, run_comparison
from routerllm.config import load_config
from routerllm.routing.strength import ChainCalibration

REPO = Path(__file__).resolve().parents[1]
REPLAY = REPO / "configs" / "replay_config.yaml"

pytestmark = pytest.mark.skipif(not (REPO / "data" / "humaneval-generations").is_dir(), reason="recorded generations missing")


def small_config(tmp_path: Path) -> Path:
    """configs/replay_config.yaml with absolute replay paths and 3 samples per tier (a quicker run)."""
    import yaml

    data = yaml.safe_load(REPLAY.read_text())
    for model in [data["models"]["large_llm"], *data["models"]["small_llms"]]:
        model["replay_file"] = str(REPO / model["replay_file"])
    data["router"]["cascade"]["small_samples"] = 3
    path = tmp_path / "replay.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_calibrate_writes_each_tiers_strength_and_states(tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiers.json"
    calibration_ids = ",".join(f"HumanEval/{i}" for i in range(20, 40))
    with pytest.raises(SystemExit) as done:
        main(["calibrate", "--config", str(small_config(tmp_path)), "--task-ids", calibration_ids, "--output", str(out),
              "--no-progress"])
    assert done.value.code in (0, None)
    data = json.loads(out.read_text())
    assert data["format"] == "routerllm-tier-calibration/1" and len(data["task_ids"]) == 20
    calibration = ChainCalibration.load(out)
    mistral, gpt4 = calibration.tiers["Mistral-7B-Instruct-v0.1"], calibration.tiers["gpt-4-0613"]
    assert mistral.tasks == gpt4.tasks == 20
    assert gpt4.visible_pass_rate > mistral.visible_pass_rate and gpt4.accuracy > mistral.accuracy
    assert sum(n for n, _ in mistral.states.values()) == 20 and not gpt4.states  # the last tier is not checked
    printed = capsys.readouterr().out
    assert "visible-example pass rate" in printed and "router.calibration_path" in printed

    # a comparison on OTHER tasks routes with that file instead of calibrating on its own tasks
    config = load_config(REPLAY)
    config.router.calibration_path = str(out)
    config.router.cascade.small_samples = 3
    outcome = run_comparison(CompareOptions(config=config, num_examples=6, strategies=["cascade"],
                                            results_dir=str(tmp_path), run_name="with-file", progress=False, report=False))
    assert outcome.summary.calibration == {"source": str(out)}
    assert outcome.summary.systems["cascade"].tasks == 6

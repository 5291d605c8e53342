"""`routerllm validate` / scripts/validate_large_model_setup.py end to end on tiny checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from routerllm.commands.validate import run_validation

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "validate_large_model_setup.py"
QUICK = {"quality_prompts": 2, "quality_tokens": 8}  # the quality check on 2 prompts x 8 tokens


def _write_config(tmp_path: Path, checkpoint: Path, **large_overrides) -> Path:
    tier = dict(model_id=str(checkpoint), dtype="float32", context_length=256, max_new_tokens=12)
    config = {
        "models": {
            "large_llm": {"name": "tiny_offloaded", **tier, "offload_folder": str(tmp_path / "offload"),
                          **large_overrides},
            "small_llms": [{"name": "tiny_single", **tier}],
        },
        "benchmark": {"logs_dir": str(tmp_path / "logs")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def _disk_budget(checkpoint: Path) -> dict:
    """A cpu budget holding the runtime reservations and half the weights (the rest goes to disk)."""
    from routerllm.config import ModelConfig
    from routerllm.manager import LargeModelManager

    probe = LargeModelManager(ModelConfig(name="p", model_id=str(checkpoint), dtype="float32",
                                          context_length=256)).plan().device("cpu")
    return {"cpu": probe.kv_bytes + probe.activation_bytes + probe.weight_bytes // 2, "disk": "1GB"}


def test_script_passes_an_offloaded_tier_against_a_saved_baseline(tiny_llama, tmp_path):
    config = _write_config(tmp_path, tiny_llama, max_memory=_disk_budget(tiny_llama))
    baseline = tmp_path / "baseline.json"
    # 1. the unquantized single-device tier is its own reference: save it
    first = run_validation(str(config), tier="tiny_single", save_baseline=str(baseline), **QUICK)
    assert first.passed, first.failures()
    assert baseline.is_file()
    # 2. the disk-offloaded tier, through the real script, compared with that file: must be exact
    report = tmp_path / "report.json"
    run = _run_script("--config", str(config), "--baseline", str(baseline), "--json", str(report), cwd=tmp_path)
    print(run.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(report.read_text())
    status = {c["name"]: c["status"] for c in data["checks"]}
    assert status["plan"] == status["load"] == status["generate"] == status["memory"] == status["quality"] == "PASS"
    assert data["quality"]["token_agreement"] == 1.0 and data["quality"]["exact"]
    assert {"disk", "cpu"} <= set(map(str, data["load"]["device_map"].values()))
    assert data["estimates"]["humaneval_164_s"] == pytest.approx(164 * data["generation"]["total_s"])
    logs = list((tmp_path / "logs").glob("validate-*.log"))
    assert logs and "all checks passed" in logs[0].read_text()


def test_live_reference_for_an_nf4_tier(tiny_llama, tmp_path):
    config = _write_config(tmp_path, tiny_llama, dtype="bfloat16", use_4bit=True)
    report = run_validation(str(config), **QUICK)
    quality = [c for c in report.checks if c.name == "quality"]
    assert quality and quality[0].ok is not None, quality  # compared against a live unquantized load
    assert "vs tiny_offloaded-reference" in quality[0].detail
    assert 0.0 <= report.data["quality"]["token_agreement"] <= 1.0


def test_script_fails_with_the_reason_when_the_plan_exceeds_ram(tmp_path):
    from transformers import LlamaConfig

    big = tmp_path / "big"
    LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, vocab_size=128256).save_pretrained(big)
    config = _write_config(tmp_path, big, dtype="bfloat16", max_memory={"cpu": "400GB"})
    run = _run_script("--config", str(config), "--skip-quality", cwd=tmp_path)
    assert run.returncode == 1
    assert "validation failed" in run.stderr and "resources: ram" in run.stderr
    assert "in RAM" in run.stderr


def test_script_fails_with_a_message_for_a_missing_checkpoint(tmp_path):
    config = _write_config(tmp_path, tmp_path / "nowhere")
    run = _run_script("--config", str(config), cwd=tmp_path)
    assert run.returncode != 0
    assert "no config.json" in run.stderr and "model_id" in run.stderr


def test_dry_run_plans_the_405b_on_a_named_profile_without_loading(tmp_path):
    run = _run_script("--config", str(ROOT / "configs" / "production_config.yaml"), "--dry-run",
                      "--hardware", "3xA100-80GB", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "llama3_405b" in run.stderr and "PASS" in run.stderr
    assert "load" not in {line.split()[1] for line in run.stderr.splitlines() if line.startswith("│") and len(line.split()) > 1}
    # throughput ceilings per batch and the 50/164-task floors at the plan's batch, worded as such
    assert "tokens/s" in run.stderr and "tasks/hour" in run.stderr and "(a floor)" in run.stderr
    assert "164 tasks at least" in run.stderr and "batch 1" in run.stderr and "batch 64" in run.stderr

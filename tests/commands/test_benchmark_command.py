"""`routerllm benchmark` argument handling: default config choice, --model resolution, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from routerllm.cli import app
from routerllm.commands.benchmark import load_config_for, resolve_model
from routerllm.exceptions import ConfigError


def test_default_config_follows_the_model():
    cfg, path = load_config_for("gemma3_270m", None)
    assert Path(path).name == "local_config.yaml" and cfg.models.small_llms[0].name == "gemma3_270m"
    cfg, path = load_config_for("qwen2_5_coder_1_5b", None)
    assert Path(path).name == "local_config.yaml" and cfg.models.large_llm.name == "qwen2_5_coder_1_5b"
    cfg, path = load_config_for("llama3_405b", None)
    assert Path(path).name == "production_config.yaml"


def test_model_is_a_tier_or_a_catalog_preset():
    cfg, _ = load_config_for("llama3_405b", None)
    assert resolve_model(cfg, "qwen2_5_7b") is cfg.models.small_llms[0]
    preset = resolve_model(cfg, "llama3_70b")  # not a tier: the preset with large_llm's settings
    assert preset.name == "llama3_70b" and preset.model_id == "meta-llama/Llama-3.1-70B-Instruct"
    assert preset.use_4bit == cfg.models.large_llm.use_4bit and preset.max_memory == cfg.models.large_llm.max_memory
    with pytest.raises(ConfigError, match="no tier named 'not_a_model'"):
        resolve_model(cfg, "not_a_model")


def test_cli_errors_are_clear(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["benchmark", "--resume", str(tmp_path / "missing")])
    assert result.exit_code != 0 and "meta.json" in str(result.exception)
    result = runner.invoke(app, ["benchmark", "--help"])
    assert result.exit_code == 0 and "--skip-execution" in result.output and "--resume" in result.output

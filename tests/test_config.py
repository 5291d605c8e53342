"""Config loading: the shipped configs are valid, and every documented mistake fails at load time
with a ConfigError naming the YAML key and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from routerllm.config import config_from_dict, load_config
from routerllm.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _large(**overrides):
    base = {"name": "llama3_405b", "model_id": "meta-llama/Llama-3.1-405B-Instruct"}
    base.update(overrides)
    return {"models": {"large_llm": base}}


@pytest.mark.parametrize("name", ["production_config.yaml", "local_config.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.models.large_llm.name
    assert cfg.source == ROOT / "configs" / name


def test_production_config_has_the_documented_shape():
    cfg = load_config(ROOT / "configs" / "production_config.yaml")
    large = cfg.models.large_llm
    assert large.name == "llama3_405b"
    assert large.max_memory == {0: 70 * 10**9, 1: 70 * 10**9, 2: 70 * 10**9, "cpu": 200 * 10**9}
    assert large.use_4bit and large.use_flash_attention and large.offload_state_dict
    assert large.quantization == "nf4"
    assert large.offload_folder == "./offload"


@pytest.mark.parametrize(
    "data, key, fragment",
    [
        (_large(max_memry={"cpu": "1GB"}), "models.large_llm.max_memry", "did you mean 'max_memory'"),
        ({"models": {"large_llm": {"name": "x", "model_id": "y"}}, "benchmrk": {}}, "benchmrk", "benchmark"),
        (_large(max_memory={0: "70 gigs"}), "models.large_llm.max_memory", "'70 gigs' is not a size"),
        (_large(max_memory={0: "-5GB"}), "models.large_llm.max_memory", "negative"),
        (_large(max_memory={"cpu": -1}), "models.large_llm.max_memory", "negative"),
        (_large(max_memory={"gpu0": "1GB"}), "models.large_llm.max_memory", "unknown device"),
        (_large(use_4bit=True, use_8bit=True), "models.large_llm", "choose one quantization"),
        (_large(max_memory={"cpu": "1GB", "disk": "10GB"}), "models.large_llm", "add offload_folder"),
        ({"models": {}}, "models.large_llm", "add it"),
        (_large(backend="openai"), "models.large_llm", "base_url"),
        (_large(backend="carrier-pigeon"), "models.large_llm.backend", "local"),
        (_large(batch_size=0), "models.large_llm.batch_size", "write auto (the planner chooses) or a whole number"),
        (_large(batch_size="lots"), "models.large_llm.batch_size", "'lots' is not a batch size"),
        (_large(batch_size=2.5), "models.large_llm.batch_size", "batch_size: 8"),
    ],
)
def test_config_errors_name_the_key_and_the_fix(data, key, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "test.yaml")
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "Fix:" in str(info.value)


def test_disk_budget_with_offload_folder_is_accepted():
    cfg = config_from_dict(_large(max_memory={"cpu": "1GiB", "disk": "1TB"}, offload_folder="./offload"))
    assert cfg.models.large_llm.max_memory == {"cpu": 2**30, "disk": 10**12}


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_config_command_reports_errors(tmp_path):
    import subprocess

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_large(use_4bit=True, use_8bit=True)))
    proc = subprocess.run([sys.executable, "-m", "routerllm.cli", "config", "-c", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "models.large_llm" in proc.stderr and "choose one quantization" in proc.stderr


def test_import_routerllm_is_light():
    import subprocess

    code = "import sys, routerllm, routerllm.config, routerllm.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_batch_size_is_auto_by_default_and_an_integer_wins():
    assert config_from_dict(_large()).models.large_llm.batch_size == "auto"
    assert config_from_dict(_large(batch_size="Auto")).models.large_llm.batch_size == "auto"
    assert config_from_dict(_large(batch_size=6)).models.large_llm.batch_size == 6

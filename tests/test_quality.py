"""Quality check: baselines round-trip, the coarse KL is a real KL, and 4-bit is told apart from exact."""

from __future__ import annotations

import pytest
import torch

from routerllm.config import ModelConfig
from routerllm.exceptions import RouterLLMError
from routerllm.manager import LargeModelManager
from routerllm.quality import (
    Baseline,
    QualityThresholds,
    baseline_from_manager,
    coarse_kl,
    compare_manager,
)


def _manager(path, **kw):
    return LargeModelManager(ModelConfig(name="tiny", model_id=str(path), context_length=64, **kw))


def test_coarse_kl_is_zero_for_equal_and_matches_the_exact_kl_when_k_covers_the_vocab():
    p = torch.log_softmax(torch.tensor([2.0, 1.0, 0.5, -1.0]), -1)
    q = torch.log_softmax(torch.tensor([1.0, 1.5, 0.0, -0.5]), -1)
    ids = [0, 1, 2, 3]
    assert coarse_kl(ids, p.tolist(), p) == pytest.approx(0.0, abs=1e-12)
    exact = float((p.exp() * (p - q)).sum())
    assert coarse_kl(ids, p.tolist(), q) == pytest.approx(exact, rel=1e-6)
    # top-2 plus a rest bucket: a lower bound of the exact KL, and still > 0
    partial = coarse_kl(ids[:2], p[:2].tolist(), q)
    assert 0 < partial <= exact + 1e-12


def test_baseline_file_round_trip_gives_the_same_comparison(tiny_llama, tmp_path):
    manager = _manager(tiny_llama, dtype="float32")
    try:
        base = baseline_from_manager(manager, max_new_tokens=8, prompts=["def add(a, b):", "x = [1, 2"])
        path = base.save(tmp_path / "baseline.json")
        loaded = Baseline.load(path)
        assert loaded.prompts[0].continuation_ids == base.prompts[0].continuation_ids
        live = compare_manager(manager, base)
        from_file = compare_manager(manager, loaded)
    finally:
        manager.unload()
    assert live.exact and from_file.exact
    assert from_file.token_agreement == 1.0 and from_file.mean_kl < 1e-6


def test_nf4_differs_measurably_from_the_unquantized_reference(tiny_llama):
    ref = _manager(tiny_llama, dtype="bfloat16")
    base = baseline_from_manager(ref, max_new_tokens=8, prompts=["def add(a, b):", "class Stack:"])
    ref.unload()
    nf4 = _manager(tiny_llama, dtype="bfloat16", use_4bit=True)
    try:
        result = compare_manager(nf4, base)
    finally:
        nf4.unload()
    assert not result.exact
    assert result.mean_kl > 1e-6
    ok, message = QualityThresholds.for_quantization("none").check(result)
    assert not ok and "token agreement" in message and "mean KL" in message


def test_thresholds_depend_on_quantization():
    assert QualityThresholds.for_quantization("none").min_token_agreement == 1.0
    assert QualityThresholds.for_quantization("nf4").min_token_agreement < 1.0


def test_a_file_that_is_not_a_baseline_is_refused_with_a_fix(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(RouterLLMError, match="--save-baseline"):
        Baseline.load(bad)
    with pytest.raises(RouterLLMError, match="cannot read"):
        Baseline.load(tmp_path / "missing.json")

"""cpu_quant: `cpu_quantization: int8_dynamic` through the LargeModelManager on real tiny checkpoints
(every nn.Linear becomes torch.ao's dynamic int8 Linear; logits stay close to the float model's;
tied embeddings survive; refused where it cannot run)."""

from __future__ import annotations

import pytest

from routerllm.backends.base import GenerationRequest
from routerllm.config import ModelConfig, config_from_dict
from routerllm.exceptions import ConfigError, ModelLoadError
from routerllm.manager import LargeModelManager


def _manager(path, **kw) -> LargeModelManager:
    return LargeModelManager(ModelConfig(name="tiny", model_id=str(path), context_length=64, dtype="float32", **kw))


def _logits(model, ids):
    import torch

    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("family", ["llama", "qwen2"])  # untied and tied lm_head
def test_every_linear_becomes_int8_and_logits_stay_close(tiny_checkpoints, family):
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    reference = _manager(tiny_checkpoints[family])
    reference.load(progress=False)
    quantized = _manager(tiny_checkpoints[family], cpu_quantization="int8_dynamic")
    info = quantized.load(progress=False)
    try:
        model = quantized.model
        assert not [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
        dynamic = [m for m in model.modules() if isinstance(m, DynamicLinear)]
        n_linear = sum(type(m) is torch.nn.Linear for m in reference.model.modules())
        assert len(dynamic) == n_linear > 0
        assert any("int8_dynamic" in note for note in info.notes)
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        # the input embedding is untouched (a tied head got its own int8 copy)
        assert torch.equal(model.get_input_embeddings().weight, reference.model.get_input_embeddings().weight)
        ids = torch.tensor([[1, 5, 9, 33, 7, 100, 250, 3]])
        ref, got = _logits(reference.model, ids), _logits(model, ids)
        cosine = torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0).item()
        assert cosine > 0.99, cosine
        assert (ref - got).abs().max().item() < 0.1 * ref.abs().max().item()
        (gen,) = quantized.generate([GenerationRequest("def add(a, b):", max_new_tokens=5)])
        assert gen.completion_tokens == 5
    finally:
        reference.unload()
        quantized.unload()


def test_int8_dynamic_with_disk_offload_is_refused_before_loading(tiny_llama, tmp_path):
    manager = _manager(tiny_llama, cpu_quantization="int8_dynamic", device_map={"": "disk"},
                       offload_folder=str(tmp_path))
    with pytest.raises(ModelLoadError, match="needs the whole model on the CPU") as err:
        manager.load(progress=False)
    assert "cpu_quantization: none" in str(err.value) and manager.model is None


def test_int8_dynamic_with_bitsandbytes_is_a_config_error():
    with pytest.raises(ConfigError, match="replaces bitsandbytes quantization"):
        config_from_dict({"models": {"large_llm": {"name": "x", "model_id": "/m", "use_8bit": True,
                                                   "cpu_quantization": "int8_dynamic"}}})

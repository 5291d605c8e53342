"""Device maps from accelerate on meta models, with real per-module bytes."""

from __future__ import annotations

import pytest

from routerllm.catalog import get_spec
from routerllm.hardware import get_profile
from routerllm.planning import PlanOptions, plan
from routerllm.planning.memory import CUDA_CONTEXT_BYTES, tensor_bytes_map
from routerllm.planning.placement import device_of, place

GB = 10**9

FAMILY_NO_SPLIT = {
    "llama3_70b": "LlamaDecoderLayer",
    "falcon_40b": "FalconDecoderLayer",
    "bloom_176b": "BloomBlock",
    "starcoder": "GPTBigCodeBlock",
    "mistral_7b": "MistralDecoderLayer",
    "qwen2_5_7b": "Qwen2DecoderLayer",
    "gemma3_270m": "Gemma3DecoderLayer",
}


@pytest.mark.parametrize("preset,cls", sorted(FAMILY_NO_SPLIT.items()))
def test_preset_device_map_keeps_blocks_whole(preset, cls):
    spec = get_spec(preset)
    # budgets that force a split over 2 GPUs and the CPU: about a third of the weights each
    third = spec.param_count * 2 // 3 + CUDA_CONTEXT_BYTES  # the CUDA context comes off each GPU budget
    p = plan(spec, get_profile("2xH200"),
             PlanOptions(max_memory={0: third, 1: third, "cpu": 10**15}, reserve_runtime=False))
    assert p.no_split_modules == [cls]
    meta = spec.meta_model()
    layer_names = [n for n, m in meta.named_modules() if type(m).__name__ == cls]
    assert len(layer_names) == spec.num_layers
    # no block is split: every map key is either a whole block, a parent of blocks, or outside blocks
    for key in p.device_map:
        assert not any(key.startswith(ln + ".") for ln in layer_names), key
    devices_used = {device_of(ln, p.device_map) for ln in layer_names}
    if preset != "gemma3_270m":  # Gemma's 335 MB embedding is 62% of it: accelerate keeps it whole
        assert {0, 1} <= devices_used
    assert sum(d.num_layers for d in p.devices) == spec.num_layers
    assert p.verdict in ("cpu_offload", "fits_gpu")


@pytest.mark.parametrize("family", ["llama", "falcon", "bloom", "gpt_bigcode", "mistral", "qwen2", "gemma3"])
def test_tiny_checkpoint_maps_with_its_no_split_class(tiny_checkpoints, family):
    spec = get_spec(tiny_checkpoints[family])
    assert spec.source == "checkpoint"
    model = spec.meta_model()
    weights = sum(tensor_bytes_map(model, "none", "bfloat16", set()).values())  # buffers included
    p = plan(spec, get_profile("cpu-laptop"),
             PlanOptions(max_memory={"cpu": int(weights * 0.85)}, reserve_runtime=False, offload_folder="off"))
    expected = FAMILY_NO_SPLIT[{"llama": "llama3_70b", "falcon": "falcon_40b", "bloom": "bloom_176b",
                                "gpt_bigcode": "starcoder", "mistral": "mistral_7b", "qwen2": "qwen2_5_7b",
                                "gemma3": "gemma3_270m"}[family]]
    assert p.no_split_modules == [expected]
    assert set(p.device_map.values()) == {"cpu", "disk"}
    assert p.verdict == "disk_offload"
    # accelerate's own accounting agrees: cpu holds at most its budget
    assert p.device("cpu").weight_bytes <= int(weights * 0.85)


def test_gemma_cpu_bytes_match_measured_facts():
    """DESIGN.md: Gemma 3 270M on CPU holds 536 MB bf16, 436 MB int8, 386 MB NF4."""
    spec = get_spec("gemma3_270m")
    got = {}
    for q in ("none", "int8", "nf4"):
        p = plan(spec, get_profile("cpu-laptop"), PlanOptions(quantization=q, max_memory={"cpu": 4 * GB}))
        assert p.device_map == {"": "cpu"}
        got[q] = p.device("cpu").weight_bytes / 1e6
    assert got["none"] == pytest.approx(536.2, abs=1)
    assert got["int8"] == pytest.approx(436.4, abs=1)
    assert got["nf4"] == pytest.approx(387.5, abs=3)


def test_budget_forces_cpu_then_disk_offload():
    spec = get_spec("llama3_70b")
    hw = get_profile("1xA100-80GB")
    p_cpu = plan(spec, hw, PlanOptions(max_memory={0: 40 * GB, "cpu": 500 * GB}))
    assert p_cpu.verdict == "cpu_offload"
    assert p_cpu.device(0).num_layers > 0 and p_cpu.device("cpu").num_layers > 0
    assert p_cpu.offloaded_modules and all(p_cpu.device_map[k] == "cpu" for k in p_cpu.offloaded_modules)
    p_disk = plan(spec, hw, PlanOptions(max_memory={0: 40 * GB, "cpu": 40 * GB}, offload_folder="off"))
    assert p_disk.verdict == "disk_offload"
    assert p_disk.device("disk").num_layers > 0
    assert p_disk.device("cpu").total_bytes <= p_disk.device("cpu").budget_bytes


def test_offloaded_layers_cost_load_dtype_under_nf4():
    spec = get_spec("llama3_70b")
    p = plan(spec, get_profile("1xA100-80GB"),
             PlanOptions(quantization="nf4", max_memory={0: 20 * GB, "cpu": 500 * GB}))
    assert p.verdict == "cpu_offload" and p.bnb_fp32_cpu_offload
    gpu, cpu = p.device(0), p.device("cpu")
    assert gpu.quantized and not cpu.quantized
    embed = spec.vocab_size * spec.hidden_size * 2  # bf16 embedding on GPU 0, lm_head on cpu
    per_layer_gpu = (gpu.weight_bytes - embed) / gpu.num_layers
    per_layer_cpu = (cpu.weight_bytes - embed) / cpu.num_layers
    assert per_layer_cpu / per_layer_gpu > 3.5  # bf16 vs ~4.13 bits


def test_quantized_map_respects_real_nf4_bytes():
    """The map is sized with NF4's real bytes (absmax included), not 4 bits flat."""
    spec = get_spec("llama3_70b")
    model = spec.meta_model()
    budget = 12 * GB
    placement = place(model, {0: budget, "cpu": 10**15}, quantization="nf4", load_dtype="bfloat16")
    assert placement.weight_bytes_by_device[0] <= budget
    # parameters are restored after sizing
    assert model.model.layers[0].mlp.down_proj.weight.shape == (8192, 28672)


def test_405b_on_3xa100_nf4_with_200gb_cpu_is_sane():
    spec = get_spec("llama3_405b")
    hw = get_profile("3xA100-80GB").with_overrides(cpu_ram=200 * GB)
    p = plan(spec, hw, PlanOptions(quantization="nf4", context_length=4096))
    assert p.verdict in ("fits_gpu", "cpu_offload")
    assert sum(d.num_layers for d in p.devices) == 126
    for d in p.devices:
        if isinstance(d.device, int):
            assert d.total_bytes <= d.budget_bytes
            assert d.kv_bytes > 0
    # the whole NF4 model is ~213 GB: it cannot fit with bf16 weights
    assert 200 * GB < p.weight_bytes_total < 230 * GB
    p16 = plan(spec, hw, PlanOptions(quantization="none", context_length=4096))
    assert p16.verdict in ("disk_offload", "cannot_run")
    assert any("4-bit" in s or "x A100" in s for s in p16.suggestions)


def test_raise_if_cannot_run_names_numbers():
    from routerllm.exceptions import PlanError

    spec = get_spec("llama3_405b")
    p = plan(spec, get_profile("1xA100-80GB"), PlanOptions(context_length=131072, batch_size=8))
    assert p.verdict == "cannot_run"
    with pytest.raises(PlanError, match="GB"):
        p.raise_if_cannot_run()


def test_bad_options_name_the_argument():
    from routerllm.exceptions import PlanError

    spec = get_spec("gemma3_270m")
    hw = get_profile("cpu-laptop")
    with pytest.raises(PlanError, match="quantization"):
        plan(spec, hw, PlanOptions(quantization="int3"))
    with pytest.raises(PlanError, match="context_length"):
        plan(spec, hw, PlanOptions(context_length=0))
    with pytest.raises(PlanError, match="max_memory"):
        plan(spec, hw, PlanOptions(max_memory={"gpu0": 1}))
    with pytest.raises(PlanError, match="spec"):
        plan("gemma3_270m", hw, PlanOptions())


def test_suggestions_say_how_many_gpus_4bit_and_context():
    spec = get_spec("llama3_70b")
    p = plan(spec, get_profile("1xA100-80GB"), PlanOptions(context_length=4096))
    assert p.verdict == "cpu_offload"
    text = " | ".join(p.suggestions)
    # 141 GB of bf16 weights: 70.6 GB per GPU on two, + KV + vLLM's ~6 GiB per-GPU overhead > 77.3 GB usable
    assert "3 x A100-80GB" in text and "4-bit" in text
    assert p.min_gpus == 3
    # NF4 weights (~40 GB) fit; a 128k context's KV (~43 GB) does not: suggest a context that fits
    p = plan(spec, get_profile("1xA100-80GB"), PlanOptions(quantization="nf4", context_length=131072))
    assert p.verdict != "fits_gpu"
    ctx = [s for s in p.suggestions if "--context" in s]
    assert ctx
    n = int(ctx[0].split("--context ")[1].split()[0])
    assert 4096 < n < 131072
    assert plan(spec, get_profile("1xA100-80GB"), PlanOptions(quantization="nf4", context_length=n)).verdict == "fits_gpu"


def test_explicit_max_memory_uses_only_named_devices():
    spec = get_spec("llama3_70b")
    p = plan(spec, get_profile("8xA100-80GB"), PlanOptions(max_memory={0: 70 * GB, 1: 70 * GB, "cpu": 100 * GB}))
    assert {d.device for d in p.devices} <= {0, 1, "cpu", "disk"}
    assert set(p.max_memory) == {0, 1, "cpu"}


def _resident_bytes(model) -> dict[str, int]:
    """Bytes of every tensor the loaded model holds, per device type (meta = offloaded to disk)."""
    import torch

    out: dict[str, int] = {}
    seen = set()
    for module in model.modules():
        for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
            if id(t) in seen:
                continue
            seen.add(id(t))
            n = t.numel() * t.element_size()
            qs = getattr(t, "quant_state", None)
            while qs is not None:
                for name in ("absmax", "code", "offset"):
                    x = getattr(qs, name, None)
                    if isinstance(x, torch.Tensor):
                        n += x.numel() * x.element_size()
                qs = getattr(qs, "state2", None)
            scb = getattr(t, "SCB", None)
            if isinstance(scb, torch.Tensor):
                n += scb.numel() * scb.element_size()
            out[t.device.type] = out.get(t.device.type, 0) + n
    return out


@pytest.mark.parametrize("quantization", ["none", "int8", "nf4"])
def test_planned_cpu_bytes_equal_a_real_load(tiny_llama, quantization):
    """The plan's device map loads as is, and the planned bytes are what transformers holds."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    spec = get_spec(tiny_llama)
    p = plan(spec, get_profile("cpu-laptop"), PlanOptions(quantization=quantization, max_memory={"cpu": 10**9}))
    assert p.device_map == {"": "cpu"}
    qcfg = None
    if quantization == "nf4":
        qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    elif quantization == "int8":
        qcfg = BitsAndBytesConfig(load_in_8bit=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16, device_map=p.device_map,
                                                 quantization_config=qcfg)
    held = _resident_bytes(model)
    assert held == {"cpu": p.device("cpu").weight_bytes}  # byte-exact, buffers and quantization state included


def test_offload_map_loads_and_generates(tiny_llama, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    spec = get_spec(tiny_llama)
    model_meta = spec.meta_model()
    weights = sum(tensor_bytes_map(model_meta, "none", "bfloat16", set()).values())
    p = plan(spec, get_profile("cpu-laptop"),
             PlanOptions(max_memory={"cpu": int(weights * 0.75)}, reserve_runtime=False, offload_folder=str(tmp_path)))
    assert p.verdict == "disk_offload" and set(p.device_map.values()) == {"cpu", "disk"}
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16, device_map=p.device_map,
                                                 offload_folder=str(tmp_path))
    held = _resident_bytes(model)
    assert held.get("meta", 0) > 0  # the disk part is not in memory
    out = model.generate(torch.tensor([[1, 5, 7]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)
    assert held["cpu"] == p.device("cpu").weight_bytes


def test_falcon_linears_are_not_quantized_as_in_transformers(tiny_checkpoints):
    """transformers 5.23 swaps only exact nn.Linear for bnb layers; FalconLinear subclasses it."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    spec = get_spec(tiny_checkpoints["falcon"])
    p4 = plan(spec, get_profile("cpu-laptop"), PlanOptions(quantization="nf4", max_memory={"cpu": 10**9}))
    p16 = plan(spec, get_profile("cpu-laptop"), PlanOptions(max_memory={"cpu": 10**9}))
    assert any("no effect" in n for n in p4.notes)
    model = AutoModelForCausalLM.from_pretrained(
        tiny_checkpoints["falcon"], dtype=torch.bfloat16, device_map=p4.device_map,
        quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"))
    assert "Linear4bit" not in {type(m).__name__ for m in model.modules()}
    assert _resident_bytes(model) == {"cpu": p4.device("cpu").weight_bytes}
    assert p4.device("cpu").weight_bytes == p16.device("cpu").weight_bytes


def test_cpu_only_quantized_plan_that_needs_disk_is_planned_unquantized():
    spec = get_spec("llama3_70b")
    p4 = plan(spec, get_profile("cpu-laptop"), PlanOptions(quantization="nf4"))
    p16 = plan(spec, get_profile("cpu-laptop"), PlanOptions(quantization="none"))
    assert p4.verdict == p16.verdict == "disk_offload"
    assert p4.device_map == p16.device_map and p4.bnb_fp32_cpu_offload
    assert p4.options["quantization"] == "nf4" and "no effect" in p4.notes[0]

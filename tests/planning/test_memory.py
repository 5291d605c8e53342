"""Byte math against real bitsandbytes/transformers objects on this CPU."""

from __future__ import annotations

import pytest
import torch

from routerllm.catalog import get_spec
from routerllm.planning import memory


def _held_bytes(module) -> int:
    """Every tensor a (bnb) Linear holds: parameters, buffers, quantization state, int8 scales."""
    total = sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))
    w = module.weight
    qs = getattr(w, "quant_state", None)
    while qs is not None:
        for name in ("absmax", "code", "offset"):
            t = getattr(qs, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
        qs = getattr(qs, "state2", None)
    scb = getattr(w, "SCB", None)
    if isinstance(scb, torch.Tensor):
        total += scb.numel() * scb.element_size()
    return total


@pytest.mark.parametrize("double_quant", [True, False])
@pytest.mark.parametrize("shape", [(2048, 640), (640, 2048), (256, 192)])
def test_nf4_bytes_equal_a_real_bitsandbytes_quantization(shape, double_quant):
    bnb = pytest.importorskip("bitsandbytes")
    out_f, in_f = shape
    src = torch.nn.Linear(in_f, out_f, bias=False).to(torch.bfloat16)
    q = bnb.nn.Linear4bit(in_f, out_f, bias=False, compute_dtype=torch.bfloat16,
                          compress_statistics=double_quant, quant_type="nf4")
    q.weight = bnb.nn.Params4bit(src.weight.data.clone(), requires_grad=False,
                                 compress_statistics=double_quant, quant_type="nf4")
    q = q.to("cpu")
    assert q.weight.bnb_quantized
    assert _held_bytes(q) == memory.nf4_weight_bytes(out_f * in_f, double_quant=double_quant)


def test_int8_bytes_equal_a_real_bitsandbytes_quantization():
    bnb = pytest.importorskip("bitsandbytes")
    src = torch.nn.Linear(640, 2048, bias=False).to(torch.bfloat16)
    q = bnb.nn.Linear8bitLt(640, 2048, bias=False, has_fp16_weights=False)
    q.weight = bnb.nn.Int8Params(src.weight.data.clone(), requires_grad=False, has_fp16_weights=False)
    q = q.to("cpu")
    assert q.weight.dtype == torch.int8
    assert _held_bytes(q) == memory.int8_weight_bytes(2048, 640)


def test_bits_per_param():
    assert memory.bits_per_param("nf4") == pytest.approx(4.127, abs=0.005)
    assert memory.bits_per_param("nf4", double_quant=False) == pytest.approx(4.5, abs=0.005)
    assert memory.bits_per_param("int8") == pytest.approx(8.0, abs=0.01)
    assert memory.bits_per_param("none") == 16


def test_toy_module_of_known_size():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(1000, 64)
            self.fc1 = torch.nn.Linear(64, 128)
            self.fc2 = torch.nn.Linear(128, 64, bias=False)
            self.norm = torch.nn.LayerNorm(64)

    with torch.device("meta"):
        toy = Toy()
    sizes = memory.tensor_bytes_map(toy, "nf4", "bfloat16", {"fc1", "fc2"})
    assert sizes["emb.weight"] == 1000 * 64 * 2
    assert sizes["fc1.weight"] == memory.nf4_weight_bytes(64 * 128)
    assert sizes["fc1.bias"] == 128 * 2
    assert sizes["norm.weight"] == 64 * 2
    assert memory.bytes_under("fc1", sizes) == memory.nf4_weight_bytes(64 * 128) + 256
    assert memory.bytes_under("", sizes) == sum(sizes.values())


def test_quantized_modules_follow_transformers_rules():
    spec = get_spec("gemma3_270m")
    model = spec.meta_model()
    names = memory.quantizable_linears(model, "nf4")
    assert len(names) == 18 * 7  # q, k, v, o, gate, up, down per layer
    assert "lm_head" not in names  # tied to the embedding: kept at the load dtype
    assert memory.quantizable_linears(model, "none") == set()


def test_gemma_totals_match_design_facts():
    spec = get_spec("gemma3_270m")
    assert memory.weight_bytes_total(spec, "none") / 1e6 == pytest.approx(536.2, abs=0.5)
    assert memory.weight_bytes_total(spec, "int8") / 1e6 == pytest.approx(436.4, abs=0.5)
    assert memory.weight_bytes_total(spec, "nf4") / 1e6 == pytest.approx(387, abs=2)


def test_kv_and_activations():
    spec = get_spec("llama3_405b")
    assert memory.kv_cache_bytes(spec, 4096, 1, 2) == 2 * 126 * 8 * 128 * 2 * 4096
    assert memory.kv_cache_bytes(spec, 4096, 1, 2, layers=[0, 1]) == 2 * 2 * 8 * 128 * 2 * 4096
    a1 = memory.activation_bytes(spec, 1024, 1, 2)
    assert memory.activation_bytes(spec, 2048, 2, 2) == 4 * a1
    assert memory.logits_bytes(spec, 1) == 2 * 128256 * 4


def test_bad_dtype_and_quantization_raise_plan_errors():
    from routerllm.exceptions import PlanError

    with pytest.raises(PlanError, match="int3"):
        memory.linear_weight_bytes(4, 4, "int3", 2)
    with pytest.raises(PlanError, match="float8"):
        memory.dtype_bytes("float8")


def test_dequant_workspace_is_the_largest_quantized_linear():
    model = get_spec("llama3_70b").meta_model("bfloat16")
    largest = 8192 * 28672  # the MLP projections (config.json: hidden 8192, intermediate 28672)
    assert memory.dequant_workspace_bytes(model, "nf4", "gpu") == largest * 2
    assert memory.dequant_workspace_bytes(model, "nf4", "cpu") == largest * memory.NF4_CPU_REPACK_BYTES_PER_PARAM
    assert memory.dequant_workspace_bytes(model, "int8", "cpu") == largest * memory.INT8_DEQUANT_BYTES_PER_PARAM["cpu"]
    assert memory.dequant_workspace_bytes(model, "int8", "gpu") == 0
    assert memory.dequant_workspace_bytes(model, "none", "cpu") == 0


def test_plan_reserves_the_dequant_workspace():
    from routerllm.hardware import get_profile
    from routerllm.planning.planner import PlanOptions, plan

    spec, hw = get_spec("llama3_70b"), get_profile("2xH100-80GB")
    plain = plan(spec, hw, PlanOptions(quantization="none", context_length=2048))
    nf4 = plan(spec, hw, PlanOptions(quantization="nf4", context_length=2048))
    assert nf4.device(0).activation_bytes - plain.device(0).activation_bytes == 8192 * 28672 * 2


# One bitsandbytes layer in a fresh interpreter (the CPU code path is chosen at import from the
# host's features and ATEN_CPU_CAPABILITY), peak RSS added per parameter, as JSON on the last line.
_BNB_MEASURE = r"""
import json, sys
import psutil, torch, bitsandbytes as bnb
from bitsandbytes.functional import _convert_weight_packed_for_cpu
from routerllm.procmem import peak_rss_bytes, release_free_heap, reset_peak_rss

quant, what = sys.argv[1], sys.argv[2]
out_f, in_f = 16384, 640
w = torch.randn(out_f, in_f, dtype=torch.bfloat16)
if quant == "nf4":
    lin = bnb.nn.Linear4bit(in_f, out_f, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    lin.weight = bnb.nn.Params4bit(w, requires_grad=False, quant_type="nf4")
else:
    lin = bnb.nn.Linear8bitLt(in_f, out_f, bias=False, has_fp16_weights=False, threshold=6.0)
    lin.weight = bnb.nn.Int8Params(w.half(), requires_grad=False, has_fp16_weights=False)
lin = lin.to("cpu").eval()
del w
x = torch.randn(1, 1, in_f, dtype=torch.bfloat16)

def added_per_param(fn):
    release_free_heap()
    base = psutil.Process().memory_info().rss
    assert reset_peak_rss()
    with torch.no_grad():
        fn()
    return (peak_rss_bytes() - base) / (out_f * in_f)

if what == "repack":
    out = {"repack": added_per_param(lambda: _convert_weight_packed_for_cpu(lin.weight.data, lin.weight.quant_state))}
else:
    out = {"first": added_per_param(lambda: lin(x)), "later": added_per_param(lambda: lin(x)),
           "packed": bool(getattr(getattr(lin.weight, "quant_state", None), "packing_format_for_cpu", False)),
           "int_mm": torch.backends.cpu.get_cpu_capability() == "AVX512"}
print(json.dumps(out))
"""


def _bnb_measure(quant: str, what: str, **env: str) -> dict:
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("bitsandbytes")
    proc = subprocess.run([sys.executable, "-c", _BNB_MEASURE, quant, what], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_reads_vmhwm = pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads VmHWM from /proc")


@_reads_vmhwm
@pytest.mark.parametrize("quant", ["nf4", "int8"])
def test_bitsandbytes_cpu_forward_fits_the_planned_workspace(quant):
    """The fact behind the CPU workspace the plan reserves, measured on whichever code path this
    host takes (bitsandbytes 0.50): peak RSS over a CPU forward of a quantized 16384x640 linear,
    first and later, stays within the reservation; where the path dequantizes the weight per
    forward, the measurement sees that workspace (so this test can tell a broken measurement)."""
    m = _bnb_measure(quant, "forward")
    planned = memory.NF4_CPU_REPACK_BYTES_PER_PARAM if quant == "nf4" else memory.INT8_DEQUANT_BYTES_PER_PARAM["cpu"]
    assert max(m["first"], m["later"]) <= 1.1 * planned, (m, planned)
    dequantizes = not m["packed"] if quant == "nf4" else not m["int_mm"]
    if dequantizes:
        per_forward = 2 if quant == "nf4" else memory.INT8_CPU_FLOAT32_DEQUANT_BYTES_PER_PARAM
        assert m["later"] >= 0.8 * per_forward, (m, per_forward)


@_reads_vmhwm
def test_bitsandbytes_int8_cpu_dequantizes_to_float32_without_avx512():
    """Forced onto the path of a CPU without AVX-512 (bitsandbytes then skips torch._int_mm), int8
    dequantizes its weight to float32 at every forward (4 B/param), within the planned reserve, on any
    host."""
    m = _bnb_measure("int8", "forward", ATEN_CPU_CAPABILITY="avx2")
    assert not m["int_mm"]
    float32 = memory.INT8_CPU_FLOAT32_DEQUANT_BYTES_PER_PARAM
    assert 0.8 * float32 <= m["later"] <= 1.1 * float32, m
    assert max(m["first"], m["later"]) <= memory.INT8_DEQUANT_BYTES_PER_PARAM["cpu"], m


@_reads_vmhwm
def test_bitsandbytes_nf4_cpu_repack_fits_the_planned_workspace():
    """The repack an AVX512-BF16 CPU does at a 4-bit layer's first forward, run directly (pure torch,
    the same on every host): it is the largest CPU transient, and the plan's 9 B/param covers it."""
    m = _bnb_measure("nf4", "repack")
    planned = memory.NF4_CPU_REPACK_BYTES_PER_PARAM
    assert 0.6 * planned <= m["repack"] <= 1.05 * planned, m

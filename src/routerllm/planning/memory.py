"""Pure byte math: weights under each quantization, KV cache, activations, per-GPU overhead.

Every figure is what a real transformers 5 / bitsandbytes 0.50 load holds in memory:

- bf16/fp16: 2 B per parameter (fp32: 4 B).
- int8 (`bnb.nn.Linear8bitLt`, `Int8Params`): the weight as int8 (1 B/param) plus one float32
  scale per output row (`SCB`, 4 B x out_features). Bias stays at the load dtype.
- NF4 (`bnb.nn.Linear4bit`, `Params4bit`): two 4-bit values per byte, one absmax per block of 64
  weights; with double quantization (`bnb_4bit_use_double_quant=True`) the absmax are uint8 with
  one float32 absmax per 256 of them, plus a 256-entry float32 code (1 KiB) and a float32 offset per
  tensor; the 16-entry float32 NF4 code (64 B) is kept per tensor too. That is ~4.13 bits/param
  with double quantization and ~4.5 without. Checked on this machine by quantizing a 2048x640
  bf16 Linear on CPU: 677,252 B (double quant) and 737,344 B (without), as computed here.
- Only modules whose type is exactly `nn.Linear` (or GPT-2 `Conv1D`) are quantized, and not the
  ones transformers' `get_keys_to_not_convert` keeps (output embedding, tied weights, the last
  parameter): embeddings, norms and lm_head stay at the load dtype.
- Modules offloaded to cpu/disk next to GPUs stay at the load dtype: transformers adds them to
  `modules_to_not_convert` when `llm_int8_enable_fp32_cpu_offload=True`, which bitsandbytes
  requires for such maps. On a CPU-only map bitsandbytes 0.50 quantizes on the CPU.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from routerllm.catalog import ModelSpec

MiB = 2**20

DTYPE_BYTES: dict[str, int] = {"bfloat16": 2, "float16": 2, "float32": 4}
QUANTIZATIONS = ("none", "int8", "nf4")

# NF4 constants (bitsandbytes 0.50 `Params4bit` defaults)
NF4_BLOCKSIZE = 64  # weights per absmax block
NF4_DQ_BLOCKSIZE = 256  # absmax values per second-level float32 absmax (double quantization)
NF4_CODE_BYTES = 16 * 4  # float32 NF4 code, per tensor
NF4_DQ_CODE_BYTES = 256 * 4 + 4  # float32 dynamic-map code + float32 offset, per tensor (double quant)

# Per-GPU memory the weights cannot use: the CUDA context (driver, cuBLAS/cuDNN handles and kernels)
# takes ~300-600 MiB per device with CUDA 12 and lazy module loading (CUDA_MODULE_LOADING=LAZY, the
# default since PyTorch 2.x); it is invisible to torch.cuda.memory_allocated() (PyTorch docs, "CUDA
# semantics: memory management"). 512 MiB is a middle figure; the planner also keeps
# `gpu_headroom_fraction` free for the caching allocator's fragmentation.
CUDA_CONTEXT_BYTES = 512 * MiB


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a load dtype ('bfloat16', 'float16', 'float32')."""
    key = str(dtype).replace("torch.", "")
    if key not in DTYPE_BYTES:
        from routerllm.exceptions import PlanError

        raise PlanError(f"dtype {dtype!r} is not supported", fix=f"use one of: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[key]


def nf4_weight_bytes(numel: int, *, double_quant: bool = True, blocksize: int = NF4_BLOCKSIZE) -> int:
    """Bytes of one NF4-quantized weight tensor of `numel` elements, quantization state included."""
    packed = (numel + 1) // 2
    blocks = math.ceil(numel / blocksize)
    if double_quant:
        return packed + blocks + 4 * math.ceil(blocks / NF4_DQ_BLOCKSIZE) + NF4_DQ_CODE_BYTES + NF4_CODE_BYTES
    return packed + 4 * blocks + NF4_CODE_BYTES


def int8_weight_bytes(out_features: int, in_features: int) -> int:
    """Bytes of one LLM.int8 weight: int8 values plus a float32 scale per output row."""
    return out_features * in_features + 4 * out_features


def linear_weight_bytes(
    out_features: int, in_features: int, quantization: str, load_dtype_bytes: int, *, double_quant: bool = True
) -> int:
    """Bytes of a Linear weight (bias excluded) under `quantization` ('none', 'int8', 'nf4')."""
    if quantization == "none":
        return out_features * in_features * load_dtype_bytes
    if quantization == "int8":
        return int8_weight_bytes(out_features, in_features)
    if quantization == "nf4":
        return nf4_weight_bytes(out_features * in_features, double_quant=double_quant)
    from routerllm.exceptions import PlanError

    raise PlanError(f"unknown quantization {quantization!r}", fix=f"use one of: {', '.join(QUANTIZATIONS)}")


def bits_per_param(quantization: str, *, load_dtype_bytes: int = 2, double_quant: bool = True) -> float:
    """Average bits per quantized weight for a large matrix (e.g. 4.127 for NF4 + double quant)."""
    n = 4096 * 4096
    return 8 * linear_weight_bytes(4096, 4096, quantization, load_dtype_bytes, double_quant=double_quant) / n


# --- per-module accounting on a (meta) model ----------------------------------------------------


def quantizable_linears(
    model: Any, quantization: str, extra_skip: Iterable[str] = (), *, exact_type: bool = True
) -> set[str]:
    """Names of the modules bitsandbytes would replace, the way transformers decides it
    (`replace_with_bnb_linear`: exactly `nn.Linear` or `Conv1D`, not matched by
    `get_keys_to_not_convert(model)` + `extra_skip` under `should_convert_module`).
    `exact_type=False` counts nn.Linear subclasses too (FalconLinear), as vLLM's bitsandbytes
    loader quantizes every linear layer but the LM head."""
    if quantization == "none":
        return set()
    extra = tuple(extra_skip)
    cache = _cache(model)
    key = ("linears", extra, exact_type)
    if key not in cache:
        cache[key] = frozenset(_quantizable_linears(model, extra, exact_type))
    return cache[key]  # type: ignore[return-value]


def _cache(model: Any) -> dict:
    """Per-model memo of the walks below (a planning meta model's structure never changes; the
    weights placement swaps in are swapped back before anything here runs again)."""
    memo = model.__dict__.get("_routerllm_memo")
    if memo is None:
        memo = {}
        model.__dict__["_routerllm_memo"] = memo
    return memo


def _quantizable_linears(model: Any, extra_skip: tuple, exact_type: bool) -> set[str]:
    from torch import nn
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = list(get_keys_to_not_convert(model)) + list(extra_skip)
    out = set()
    for name, module in model.named_modules():
        is_linear = type(module) is nn.Linear if exact_type else isinstance(module, nn.Linear)
        if (is_linear or isinstance(module, Conv1D)) and should_convert_module(name, skip):
            out.add(name)
    return out


def tensor_bytes_map(
    model: Any, quantization: str, load_dtype: str, quantized: set[str], *, double_quant: bool = True
) -> dict[str, int]:
    """{parameter/buffer name: bytes held in memory} for every distinct tensor of `model`.

    Parameters of modules in `quantized` (their `.weight`) cost their quantized size; other floating
    parameters cost the load dtype (as transformers casts them); buffers cost their own dtype
    (transformers 5.23 keeps rotary `inv_freq` in float32 under dtype=bfloat16).
    Tied parameters appear once (under their first name)."""
    key = ("bytes", quantization, str(load_dtype), double_quant, frozenset(quantized))
    cache = _cache(model)
    if key not in cache:
        cache[key] = _tensor_bytes_map(model, quantization, load_dtype, quantized, double_quant)
    return cache[key]


def _tensor_bytes_map(model: Any, quantization: str, load_dtype: str, quantized: set[str], double_quant: bool) -> dict[str, int]:
    nbytes = dtype_bytes(load_dtype)
    out: dict[str, int] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        params = list(module.named_parameters(recurse=False))
        tensors = params + list(module.named_buffers(recurse=False))
        for i, (t_name, tensor) in enumerate(tensors):
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            full = f"{mod_name}.{t_name}" if mod_name else t_name
            if mod_name in quantized and t_name == "weight":
                if quantization == "int8":
                    out_f, in_f = _linear_shape(module)
                    size = int8_weight_bytes(out_f, in_f)
                else:
                    size = nf4_weight_bytes(tensor.numel(), double_quant=double_quant)
            elif tensor.dtype.is_floating_point and i < len(params):
                size = tensor.numel() * nbytes  # from_pretrained(dtype=...) casts parameters
            elif tensor.dtype.is_floating_point:
                size = tensor.numel() * tensor.element_size()  # buffers keep theirs: rotary inv_freq stays fp32
            else:
                size = tensor.numel() * tensor.element_size()
            out[full] = size
    return out


def _linear_shape(module: Any) -> tuple[int, int]:
    if hasattr(module, "out_features"):
        return int(module.out_features), int(module.in_features)
    rows, cols = module.weight.shape  # Conv1D stores (in, out)
    return int(cols), int(rows)


def bytes_under(prefix: str, tensor_bytes: dict[str, int]) -> int:
    """Total bytes of tensors whose name is `prefix` or starts with `prefix + '.'` ('' = all)."""
    if not prefix:
        return sum(tensor_bytes.values())
    dotted = prefix + "."
    return sum(v for k, v in tensor_bytes.items() if k == prefix or k.startswith(dotted))


# --- runtime memory ------------------------------------------------------------------------------


def kv_cache_bytes(
    spec: "ModelSpec", tokens: int, batch_size: int, kv_dtype_bytes: int, layers: list[int] | None = None
) -> int:
    """2 x layers x kv_heads x head_dim x bytes x tokens x batch, sliding-window layers capped."""
    return spec.kv_cache_bytes(tokens, batch_size, kv_dtype_bytes, layers)


def activation_bytes(spec: "ModelSpec", tokens: int, batch_size: int, act_dtype_bytes: int) -> int:
    """Peak activation bytes of one decoder layer during a prefill of `tokens` tokens.

    Layers run one after another, so only one layer's temporaries are live: the residual stream,
    the normed input and the attention output (3 x hidden), the MLP's gate, up and product
    (3 x intermediate), and the q/k/v projections (heads + 2 x kv_heads) x head_dim. Attention
    scores are not materialised by SDPA's memory-efficient/flash kernels (transformers' default
    `attn_implementation='sdpa'`)."""
    per_token = 3 * spec.hidden_size + 3 * spec.intermediate_size
    per_token += (spec.num_attention_heads + 2 * spec.num_kv_heads) * spec.head_dim
    return int(batch_size * tokens * per_token * act_dtype_bytes)


# Transient bytes per parameter of the largest quantized linear while it runs (bitsandbytes 0.50,
# measured on a 16384x640 layer with /proc VmHWM around one forward, M = 1..64 tokens). Which code
# path a CPU takes depends on the host, so the CPU figures are the largest over the paths:
# - NF4/FP4, CPU without AVX512-BF16: every forward dequantizes the weight to the compute dtype for
#   the matmul (gemv_4bit: +2.0-2.2 B/param at M = 1 too);
# - NF4/FP4, CPU with AVX512-BF16: the first forward of each layer repacks its weight for the fused
#   kernel (`Linear4bit.forward` -> `functional._convert_weight_packed_for_cpu`: the nibbles are
#   unpacked to int32, 4 B/param, then copied to uint8 twice; 8.1 B/param measured), later forwards
#   add almost nothing. So the CPU reserves the repack, 9 B/param;
# - NF4/FP4 on CUDA: for prefills (M > 1) `dequantize_4bit` to the compute dtype, then cuBLAS;
# - int8 on a CPU that does not take `torch._int_mm`: dequantized to float32 at every forward
#   (+3.8-4.0 B/param at later forwards; the first forward peaks higher, 4.42 B/param measured on an
#   AVX512-BF16 CI host), so the CPU reserves 5 B/param; with `torch._int_mm` (int8 GEMM) nothing
#   weight-sized; on CUDA an int8 GEMM with only outlier columns in fp16, nothing weight-sized either.
NF4_CPU_REPACK_BYTES_PER_PARAM = 9
INT8_CPU_FLOAT32_DEQUANT_BYTES_PER_PARAM = 4  # the weight dequantized to float32: 4 B/param
INT8_DEQUANT_BYTES_PER_PARAM = {"cpu": 5, "gpu": 0}


def dequant_workspace_bytes(model: Any, quantization: str, device_kind: str, compute_dtype_bytes: int = 2) -> int:
    """Workspace of bitsandbytes' matmul on a `device_kind` ('cpu' | 'gpu') device: the largest
    quantized linear's transient (dequantized or repacked weight) for one forward (layers run one
    at a time), the largest over the code paths a host of that kind may take."""
    if quantization == "none":
        return 0
    if quantization == "int8":
        per_param = INT8_DEQUANT_BYTES_PER_PARAM[device_kind]
    elif device_kind == "cpu":
        per_param = max(compute_dtype_bytes, NF4_CPU_REPACK_BYTES_PER_PARAM)
    else:
        per_param = compute_dtype_bytes
    names = quantizable_linears(model, quantization)
    if not names or not per_param:
        return 0
    memo = _cache(model)
    key = ("largest_linear", frozenset(names))
    if key not in memo:
        modules = dict(model.named_modules())
        memo[key] = max(modules[n].weight.numel() for n in names)
    return int(memo[key] * per_param)


def logits_bytes(spec: "ModelSpec", batch_size: int) -> int:
    """Logits of the last position per sequence, float32 (generate() keeps only the last position
    via `logits_to_keep=1`), twice for the softmax/processor copy."""
    return int(2 * batch_size * spec.vocab_size * 4)


def weight_bytes_total(
    spec: "ModelSpec", quantization: str, load_dtype: str = "bfloat16", *, engine: str = "transformers"
) -> int:
    """All weight bytes of the model under `quantization`, everything on one device.
    `engine='vllm'`: every linear layer but the LM head is quantized (see quantizable_linears)."""
    model = spec.meta_model(load_dtype)
    quantized = quantizable_linears(model, quantization, exact_type=engine != "vllm")
    return sum(tensor_bytes_map(model, quantization, load_dtype, quantized).values())

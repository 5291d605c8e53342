"""Int8 dynamic quantization of a loaded model for CPU decoding (`cpu_quantization: int8_dynamic`).

Decoding one token reads every weight once, so on a CPU its speed is bounded by bytes per token /
memory bandwidth. bf16 halves the bytes of fp32, but without a fast bf16 GEMV the kernels do not
reach the bound (measured by bench/bench_generate.py). `torch.ao.quantization`'s dynamic int8
Linear (fbgemm/onednn kernels) keeps weights as int8, one scale per output channel, and quantizes
each input on the fly: half the bytes of bf16 per token and AVX2/AVX-512 VNNI kernels that run near
the memory bound. Everything that is not an nn.Linear (embeddings, norms, rotary buffers) runs in
float32, which those kernels take as input.

The model is converted one Linear at a time (float32 copy of that one weight -> int8), so the peak
stays near the bf16 model plus one float32 matrix, not the float32 model (7 GB for a 1.5B model).
Weights shared between modules (tied input embedding and lm_head) are untied: the embedding keeps
a float32 copy, the head gets its int8 one.

Answers change a little (activation and weight rounding): bench/bench_generate.py measures token
agreement with the bf16 reference and pass@1 on HumanEval tasks. The activation scale is per
input tensor, so rows decoded in one batch share it: a task's answer differs between batch 1 and a
larger batch (bench/bench_int8_batch.py), and such a tier decodes one row at a time
(INT8_DYNAMIC_MAX_BATCH).

torch 2.13 marks `torch.ao.quantization` deprecated in favour of torchao; torchao 0.18's CPU
equivalents (Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig) were slower than bf16
here (bench/bench_generate.py --variants), so this uses the torch API while it exists and says so
when it does not.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from routerllm.exceptions import ModelLoadError

logger = logging.getLogger(__name__)

CPU_QUANTIZATIONS = ("none", "int8_dynamic")


def check_placement(name: str, places: set[str]) -> None:
    """int8_dynamic runs on the CPU only: refuse a device map with GPUs or disk before loading."""
    if places != {"cpu"}:
        raise ModelLoadError(
            f"{name}: cpu_quantization int8_dynamic needs the whole model on the CPU, the device map uses {sorted(places)}",
            fix=f"set models.<tier>.cpu_quantization: none for {name} on GPUs or with disk offload, "
            "or give the tier a cpu-only max_memory",
        )


def _dynamic_linear_api():
    try:
        with warnings.catch_warnings():
            # torch 2.13: "torch.ao.quantization is deprecated" on import and on use; still shipped.
            warnings.simplefilter("ignore")
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
            from torch.ao.quantization import per_channel_dynamic_qconfig
    except ImportError as exc:  # pragma: no cover - a torch without torch.ao.quantization
        raise ModelLoadError(
            f"cpu_quantization int8_dynamic needs torch.ao.quantization, which this torch does not have ({exc})",
            fix="set models.<tier>.cpu_quantization: none, or install a torch <= 2.14 (pyproject.toml's range)",
        ) from None
    return DynamicLinear, per_channel_dynamic_qconfig


def quantize_int8_dynamic(model: Any) -> str:
    """Replace every nn.Linear of `model` (in place) by a dynamic int8 Linear; the rest becomes
    float32. Returns a one-line note for LoadInfo.notes."""
    import torch

    DynamicLinear, qconfig = _dynamic_linear_api()
    swapped, int8_bytes = 0, 0
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the same deprecation warnings, once per layer
        for parent in list(model.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not torch.nn.Linear:
                    continue
                weight = child.weight.detach().float()  # a copy: a tied weight stays as it was
                bias = None if child.bias is None else child.bias.detach().float()
                fp32 = torch.nn.Linear(child.in_features, child.out_features, bias=bias is not None)
                fp32.weight = torch.nn.Parameter(weight, requires_grad=False)
                if bias is not None:
                    fp32.bias = torch.nn.Parameter(bias, requires_grad=False)
                fp32.qconfig = qconfig
                quantized = DynamicLinear.from_float(fp32)
                setattr(parent, child_name, quantized)
                del fp32, weight, bias
                swapped += 1
                int8_bytes += child.in_features * child.out_features
        model.float()  # embeddings, norms, buffers: the dynamic kernels take float32 inputs
        if getattr(model, "config", None) is not None:
            model.config.dtype = torch.float32
    note = (f"cpu_quantization int8_dynamic: {swapped} linear layers as int8 with per-channel scales "
            f"({int8_bytes / 2**20:.0f} MiB of int8 weights); everything else float32")
    logger.info(note)
    return note


# Rows an int8_dynamic tier decodes at once, whatever batch_size says: ONE. The dynamic int8 Linear
# quantizes its input with one scale per input TENSOR, so the rows of a batch share it and a row's
# answer depends on which other rows share its batch. Measured by bench/bench_int8_batch.py (Gemma 3
# 270M, 8 HumanEval prompts, greedy, 48 new tokens, torch 2.13 on this 2-core CPU): batch 4 decodes
# 3.03x the tokens/s of batch 1, but 0 of 8 answers were identical to batch 1 (the same model in
# fp32, same bench: 8 of 8 identical, 2.21x). Batching helps, but a task's answer (and so its
# routing decision) must not depend on its batch mates, so this tier decodes one row at a time.
INT8_DYNAMIC_MAX_BATCH = 1

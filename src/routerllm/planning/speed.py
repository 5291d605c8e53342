"""Predicted load time and a decode-speed bound from bytes and bandwidths (pure arithmetic).

Decode is memory-bound: each new token reads every weight once, plus the KV cache. Under
accelerate's device map the devices run one after another (pipeline without overlap) and weights
offloaded to CPU or disk are copied to the execution GPU at every forward pass, without prefetch.
So the time of one decode step is a sum over devices:

    t_step = sum_gpu (weights_gpu + kv_gpu) / hbm_bw
           + cpu_offloaded_bytes / host_link_bw          (GPU present: copied over PCIe)
           + disk_offloaded_bytes / disk_bw (+ / host_link_bw when a GPU executes)
    CPU-only: t_step = cpu_bytes / dram_bw + disk_bytes / disk_bw

and tokens/s <= batch_size / t_step. Bandwidths are datasheet peaks, so this is an upper bound.

Load time: the checkpoint is read once from disk at the load dtype, the GPU part crosses the host
link (bitsandbytes quantizes on the device, after the copy), and disk-offloaded weights are written
back to the offload folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from routerllm.hardware import Hardware
from routerllm.planning import memory


@dataclass
class SpeedEstimate:
    load_time_s: float
    step_time_s: float
    decode_tokens_per_s: float  # per sequence
    aggregate_tokens_per_s: float  # batch_size sequences together
    breakdown_s: dict[str, float]  # per device: seconds of one decode step


def _gpu_bw(hardware: Hardware, index: int) -> tuple[float, float]:
    for g in hardware.gpus:
        if g.index == index:
            return g.bandwidth_bps, g.host_link_bps
    if hardware.gpus:  # a budget for a GPU the profile does not list: assume the same model
        return hardware.gpus[0].bandwidth_bps, hardware.gpus[0].host_link_bps
    return 1.0e12, hardware.host_link_bps or 31.5e9


def estimate(
    hardware: Hardware,
    weight_bytes: dict[Any, int],
    kv_bytes: dict[Any, int],
    *,
    load_bytes: dict[Any, int],
    checkpoint_bytes: int,
    batch_size: int = 1,
) -> SpeedEstimate:
    """`weight_bytes`/`kv_bytes`: per device as placed (GPU ints, 'cpu', 'disk'); `load_bytes`: per
    device at the checkpoint's dtype (what crosses the host link); `checkpoint_bytes`: on disk."""
    has_gpu = any(not isinstance(d, str) for d in weight_bytes)
    breakdown: dict[str, float] = {}
    for dev, wbytes in weight_bytes.items():
        read = wbytes + kv_bytes.get(dev, 0)
        if not isinstance(dev, str):
            bw, _ = _gpu_bw(hardware, dev)
            breakdown[str(dev)] = read / bw
        elif dev == "cpu":
            if has_gpu:
                link = _link(hardware)
                breakdown["cpu"] = wbytes / link + kv_bytes.get("cpu", 0) / hardware.cpu_ram_bps
            else:
                breakdown["cpu"] = read / hardware.cpu_ram_bps
        elif dev == "disk":
            t = wbytes / hardware.disk_bps
            if has_gpu:
                t += wbytes / _link(hardware)
            breakdown["disk"] = t
    # KV for layers offloaded next to GPUs lives on the main GPU (accounted in kv_bytes of that GPU)
    step = sum(breakdown.values())
    per_seq = (1.0 / step) if step > 0 else float("inf")

    disk_read = checkpoint_bytes / hardware.disk_bps
    link_time = 0.0
    if has_gpu:
        link_time = sum(b for d, b in load_bytes.items() if not isinstance(d, str)) / _link(hardware)
    offload_write = load_bytes.get("disk", 0) / hardware.disk_bps
    load_time = disk_read + link_time + offload_write
    return SpeedEstimate(
        load_time_s=load_time,
        step_time_s=step,
        decode_tokens_per_s=per_seq,
        aggregate_tokens_per_s=per_seq * batch_size,
        breakdown_s=breakdown,
    )


def _link(hardware: Hardware) -> float:
    if hardware.host_link_bps > 0:
        return hardware.host_link_bps
    return max((g.host_link_bps for g in hardware.gpus), default=31.5e9)


# --------------------------------------------------------------------------------------------------
# Throughput of a batch under a plan: prefill + decode steps, per device, per tier.
# --------------------------------------------------------------------------------------------------
#
# Terms of one decoding step for a batch of B sequences at context c (the mean over the decode):
#
#   per execution device e (a GPU, or the CPU on a CPU-only machine):
#       t_e = max( (resident weights read + KV read of B sequences) / memory bandwidth of e,
#                  linear FLOPs of B tokens / FLOP/s of e  +  attention FLOPs / FLOP/s of e )
#       (memory and compute of one device overlap; FlexGen's cost model, Sheng et al. 2023, sec. 4.2)
#   + offloaded weights streamed once per step, whatever B: cpu -> GPU over the host link; disk
#     at the disk's read bandwidth (+ the host link when a GPU executes). accelerate's hooks do
#     not overlap this with compute (no prefetch), so it adds (DESIGN: accelerate facts).
#   + framework time: accelerate's AlignDevicesHook per offloaded tensor (read from the offload
#     folder, set_module_tensor_to_device, back to meta) and the per-layer Python of a forward.
#   + the logits of the batch (B x vocab, model dtype + generate()'s fp32 copy): written and read
#     at the execution device's memory bandwidth, and on a detected CPU faulted in as fresh pages
#     at the measured first-touch rate (planning.profile); large for a 262k vocabulary.
#
# FLOP/s: GPUs at their datasheet dense bf16 tensor peak; a detected CPU from a measured profile of
# its matmuls at the model's shapes and the batch's M (planning.profile); a named CPU profile at its
# peak. Prefill is one forward of B x prompt_tokens tokens (lm_head only for the last position:
# generate() passes logits_to_keep=1). Every figure is a ceiling: peaks, no stalls, no early EOS.

DEFAULT_PROMPT_TOKENS = 160  # HumanEval prompts: see PlanOptions.prompt_tokens


@dataclass
class Prediction:
    """What `predict` expects of one `generate()` over a batch (seconds, tokens/s: ceilings)."""

    batch_size: int
    prompt_tokens: int
    new_tokens: int
    prefill_s: float
    step_s: float  # one decoding step of the whole batch
    total_s: float  # prefill + new_tokens steps
    tokens_per_s: float  # generated tokens of the batch / total_s (the aggregate ceiling)
    decode_tokens_per_s: float  # batch_size / step_s (decode only)
    terms_s: dict[str, float]  # one decoding step, split by term

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _exec_device(dev: Any, main: Any) -> Any:
    return dev if not isinstance(dev, str) else main


def _hw_gpu(hw: dict[str, Any], index: int) -> dict[str, Any]:
    gpus = hw.get("gpus") or []
    for g in gpus:
        if g["index"] == index:
            return g
    return gpus[0] if gpus else {"bandwidth_bps": 1.0e12, "flops": 100e12, "host_link_bps": 31.5e9}


def _link_bps(hw: dict[str, Any]) -> float:
    if hw.get("host_link_bps"):
        return float(hw["host_link_bps"])
    return max((g.get("host_link_bps", 31.5e9) for g in hw.get("gpus") or []), default=31.5e9)


def _main_device(plan: Any) -> Any:
    for d in plan.devices:
        if not isinstance(d.device, str) and (d.weight_bytes or d.layers):
            return d.device
    return "cpu"


def _kv_seconds_and_flops(plan: Any, exec_of_layer: dict[int, Any], context: float, batch: int) -> tuple[dict, dict]:
    """Per execution device: (KV bytes read, attention FLOPs) of one decoding step of `batch` rows."""
    m = plan.model
    windows = m.get("layer_windows") or [None] * int(m["num_layers"])
    kv_b = memory.dtype_bytes(plan.options.get("kv_dtype") or plan.options.get("dtype", "bfloat16"))
    per_tok_layer = 2 * int(m["num_kv_heads"]) * int(m["head_dim"]) * kv_b
    flops_tok_layer = 4 * int(m["num_attention_heads"]) * int(m["head_dim"])  # q.k and p.v
    kv: dict[Any, float] = {}
    fl: dict[Any, float] = {}
    for i, w in enumerate(windows):
        kept = context if w is None else min(context, w)
        e = exec_of_layer.get(i, "cpu")
        kv[e] = kv.get(e, 0.0) + batch * kept * per_tok_layer
        fl[e] = fl.get(e, 0.0) + batch * kept * flops_tok_layer
    return kv, fl


def _linear_seconds(plan: Any, e: Any, shapes: dict[str, int], params: int, m_rows: int, hw: dict[str, Any]) -> float:
    """Seconds of the linears of execution device `e` for `m_rows` tokens."""
    if not params:
        return 0.0
    if not isinstance(e, str):
        return 2.0 * params * m_rows / float(_hw_gpu(hw, e).get("flops") or 100e12)
    if hw.get("detected") and shapes:
        from routerllm.planning import profile

        dtype = str(plan.options.get("dtype", "bfloat16")).replace("torch.", "")
        return profile.linear_seconds(shapes, m_rows, dtype)
    return 2.0 * params * m_rows / float(hw.get("cpu_flops") or CPU_FLOPS_FALLBACK)


# A CPU's matmul peak when nothing better is known: cores x 2.5 GHz x 32 FP32 FLOP/cycle (AVX2,
# two 256-bit FMA ports: 2 x 8 lanes x 2 FLOP; Intel/AMD optimization manuals).
CPU_FLOPS_PER_CORE = 2.5e9 * 32
CPU_FLOPS_FALLBACK = 4 * CPU_FLOPS_PER_CORE

# Framework cost per decoding step, measured on this project's dev machine (AMD EPYC Zen 3, 2 cores,
# torch 2.13, transformers 5.24, accelerate 1.15) with bench/bench_planning.py --framework; lower
# on faster hosts, so the figures below stay ceilings only approximately (see the bench).
HOOK_SECONDS_PER_OFFLOADED_TENSOR = 60e-6  # AlignDevicesHook: weights_map read + set_module_tensor_to_device, back to meta
LAYER_SECONDS = 150e-6  # one decoder layer's Python and kernel launches beyond its matmuls
STEP_SECONDS = 2e-3  # generate(): logits processors, stopping criteria, cache update per step

# The logits of every step: the lm_head writes batch x vocab at the model's dtype, and generate()
# copies them to fp32 (transformers 5.24 GenerationMixin._sample: `outputs.logits[:, -1]
# .to(copy=True, dtype=torch.float32)`) before the processors and argmax/sampling read them.
# A batch-proportional cost that is not a weight matmul: 16 rows of Gemma 3's 262,144 tokens are
# 24 MiB per step. Measured on the dev machine (torch.profiler, Gemma 3 270M bf16, batch 16): the
# fp32 copy takes 30 ms a step against 0.3 ms on reused memory, because the buffers are freshly
# mapped at every step and fault in at ~1 GB/s (planning.profile.first_touch_seconds_per_byte).
LOGITS_FP32_BYTES = 4


def _logits_seconds(plan: Any, e: Any, batch: int, hw: dict[str, Any]) -> float:
    """Seconds one step spends on the logits of `batch` rows on execution device `e`, beyond the
    lm_head matmul: written and read back once at the memory bandwidth and, on a detected CPU,
    faulted in as fresh pages (GPUs: the caching allocator reuses its blocks, no faults)."""
    vocab = int(plan.model.get("vocab_size") or 0)
    if not vocab:
        return 0.0
    act_b = memory.dtype_bytes(plan.options.get("dtype", "bfloat16"))
    nbytes = batch * vocab * (act_b + LOGITS_FP32_BYTES)
    if not isinstance(e, str):
        return 2.0 * nbytes / float(_hw_gpu(hw, e)["bandwidth_bps"])
    t = 2.0 * nbytes / float(hw["cpu_ram_bps"])
    if hw.get("detected"):
        from routerllm.planning import profile

        t += nbytes * profile.first_touch_seconds_per_byte()
    return t


def predict(plan: Any, batch_size: int, *, prompt_tokens: int, new_tokens: int) -> Prediction:
    """The throughput ceiling of one `generate()` of `batch_size` rows under `plan` (see above)."""
    if batch_size < 1 or prompt_tokens < 0 or new_tokens < 1:
        raise ValueError(f"batch_size={batch_size}, prompt_tokens={prompt_tokens}, new_tokens={new_tokens}: "
                         "need batch_size >= 1, prompt_tokens >= 0, new_tokens >= 1")
    hw = plan.hardware
    main = _main_device(plan)
    has_gpu = not isinstance(main, str)
    exec_of_layer: dict[int, Any] = {}
    for d in plan.devices:
        for i in d.layers:
            exec_of_layer[i] = _exec_device(d.device, main)
    resident: dict[Any, float] = {}
    params: dict[Any, int] = {}
    shapes: dict[Any, dict[str, int]] = {}
    streamed = 0.0  # seconds per step to bring offloaded weights to the execution device
    hook_tensors = 0
    terms: dict[str, float] = {}
    for d in plan.devices:
        e = _exec_device(d.device, main) if (has_gpu or d.device == "disk") else d.device
        if d.device == "disk":
            e = main
        params[e] = params.get(e, 0) + d.matmul_params
        for k, v in d.linear_shapes.items():
            shapes.setdefault(e, {})[k] = shapes.setdefault(e, {}).get(k, 0) + v
        read = d.read_bytes or d.weight_bytes
        if d.device == "disk":
            t = read / float(hw["disk_bps"]) + (read / _link_bps(hw) if has_gpu else 0.0)
            terms["stream disk"] = t
            streamed += t
            hook_tensors += d.tensor_count
        elif d.device == "cpu" and has_gpu:
            t = read / _link_bps(hw)
            terms["stream cpu"] = t
            streamed += t
            hook_tensors += d.tensor_count
        else:
            resident[e] = resident.get(e, 0.0) + read
    context = prompt_tokens + new_tokens / 2.0
    kv, attn = _kv_seconds_and_flops(plan, exec_of_layer, context, batch_size)
    devices = set(resident) | set(params) | set(kv)
    step_devices = 0.0
    for e in sorted(devices, key=str):
        bw = float(hw["cpu_ram_bps"]) if isinstance(e, str) else float(_hw_gpu(hw, e)["bandwidth_bps"])
        flops = (float(hw.get("cpu_flops") or CPU_FLOPS_FALLBACK) if isinstance(e, str)
                 else float(_hw_gpu(hw, e).get("flops") or 100e12))
        mem_t = (resident.get(e, 0.0) + kv.get(e, 0.0)) / bw
        comp_t = _linear_seconds(plan, e, shapes.get(e, {}), params.get(e, 0), batch_size, hw) + attn.get(e, 0.0) / flops
        terms[f"memory {e}"] = mem_t
        terms[f"compute {e}"] = comp_t
        step_devices += max(mem_t, comp_t)
    framework = (hook_tensors * HOOK_SECONDS_PER_OFFLOADED_TENSOR
                 + int(plan.model["num_layers"]) * LAYER_SECONDS + STEP_SECONDS)
    terms["framework"] = framework
    logits = _logits_seconds(plan, main, batch_size, hw)
    terms["logits"] = logits
    step = step_devices + streamed + framework + logits

    # prefill: one forward of batch x prompt tokens
    prefill = streamed + framework + logits  # logits_to_keep=1: one row of logits per sequence
    if prompt_tokens:
        rows = batch_size * prompt_tokens
        lm_head = int(plan.model.get("lm_head_params") or 0)
        _, attn_p = _kv_seconds_and_flops(plan, exec_of_layer, prompt_tokens / 2.0, rows)
        for e in sorted(devices, key=str):
            bw = float(hw["cpu_ram_bps"]) if isinstance(e, str) else float(_hw_gpu(hw, e)["bandwidth_bps"])
            flops = (float(hw.get("cpu_flops") or CPU_FLOPS_FALLBACK) if isinstance(e, str)
                     else float(_hw_gpu(hw, e).get("flops") or 100e12))
            p = params.get(e, 0)
            sh = dict(shapes.get(e, {}))
            lm_key = plan.model.get("lm_head_shape")
            if lm_head and lm_key in sh:  # logits only for the last position of each row
                p -= lm_head
                sh[lm_key] -= 1
                if not sh[lm_key]:
                    del sh[lm_key]
                lm_t = _linear_seconds(plan, e, {lm_key: 1}, lm_head, batch_size, hw)
            else:
                lm_t = 0.0
            comp = _linear_seconds(plan, e, sh, p, rows, hw) + lm_t + attn_p.get(e, 0.0) / flops
            prefill += max(resident.get(e, 0.0) / bw, comp)
    total = prefill + new_tokens * step
    return Prediction(
        batch_size=batch_size, prompt_tokens=prompt_tokens, new_tokens=new_tokens, prefill_s=prefill,
        step_s=step, total_s=total, tokens_per_s=batch_size * new_tokens / total,
        decode_tokens_per_s=batch_size / step, terms_s=terms,
    )


def predict_tokens_per_s(plan: Any, batch_size: int, *, prompt_tokens: int, new_tokens: int) -> float:
    """Aggregate tokens/s ceiling of one `generate()` of `batch_size` rows under `plan`: the batch's
    generated tokens (batch_size x new_tokens) over prefill + new_tokens decoding steps."""
    return predict(plan, batch_size, prompt_tokens=prompt_tokens, new_tokens=new_tokens).tokens_per_s


MAX_AUTO_BATCH = 256  # beyond this a batch's latency grows with no throughput left to gain
KNEE_FRACTION = 0.9  # auto batch: the smallest batch within 10% of the memory-bound batch's throughput


def max_batch_size(plan: Any, *, context_length: int, max_new_tokens: int) -> int:
    """The most rows whose KV cache (context_length tokens each) and prefill activations fit in the
    memory left on the devices that execute layers (0 when not even one fits)."""
    m = plan.model
    main = _main_device(plan)
    has_gpu = not isinstance(main, str)
    windows = m.get("layer_windows") or [None] * int(m["num_layers"])
    kv_b = memory.dtype_bytes(plan.options.get("kv_dtype") or plan.options.get("dtype", "bfloat16"))
    act_b = memory.dtype_bytes(plan.options.get("dtype", "bfloat16"))
    per_tok_layer = 2 * int(m["num_kv_heads"]) * int(m["head_dim"]) * kv_b
    kv_seq: dict[Any, int] = {}
    for d in plan.devices:
        e = _exec_device(d.device, main) if has_gpu else "cpu"
        for i in d.layers:
            w = windows[i] if i < len(windows) else None
            kv_seq[e] = kv_seq.get(e, 0) + per_tok_layer * (context_length if w is None else min(context_length, w))
    prompt = max(1, context_length - max_new_tokens)
    act_per_tok = (3 * int(m["hidden_size"]) + 3 * int(m.get("intermediate_size") or 4 * int(m["hidden_size"]))
                   + (int(m["num_attention_heads"]) + 2 * int(m["num_kv_heads"])) * int(m["head_dim"]))
    act_seq = prompt * act_per_tok * act_b + 2 * int(m["vocab_size"]) * 4  # one layer's prefill + logits
    plan_batch = int(plan.options.get("batch_size") or 1)
    plan_tokens = int(plan.options.get("context_length") or context_length)
    best: int | None = None
    for d in plan.devices:
        if d.device == "disk" or (has_gpu and d.device == "cpu") or d.device not in kv_seq:
            continue
        # what the plan reserved per row at its own batch and context, the rest (dequant workspace) fixed
        act_plan_seq = plan_tokens * act_per_tok * act_b + 2 * int(m["vocab_size"]) * 4
        fixed_act = max(0, d.activation_bytes - plan_batch * act_plan_seq)
        budget = d.budget_bytes
        used = d.weight_bytes + d.overhead_bytes + getattr(d, "headroom_bytes", 0) + d.offload_staging_bytes + fixed_act
        room = budget - used
        per_row = kv_seq[d.device] + act_seq
        n = int(room // per_row) if per_row > 0 and room > 0 else 0
        best = n if best is None else min(best, n)
    return max(0, best if best is not None else 0)


def auto_batch_size(plan: Any, *, context_length: int, max_new_tokens: int) -> int:
    """The batch for `batch_size: auto`: at most what the memory left for KV cache and activations
    allows on the layer-holding devices (max_batch_size, capped at MAX_AUTO_BATCH), and of those
    the smallest whose decoding throughput ceiling is within 10% of the largest's (a bigger batch
    then only adds latency). At least 1. A plan made with `batch_size="auto"` (planning.batching.search,
    which may have moved layers off the GPUs for its batch) answers with the batch it chose."""
    choice = getattr(plan, "batch_choice", None)
    if choice and int(plan.options.get("context_length") or 0) >= context_length:
        return int(choice["chosen"])
    cap = min(MAX_AUTO_BATCH, max_batch_size(plan, context_length=context_length, max_new_tokens=max_new_tokens))
    if cap <= 1:
        return 1
    prompt = max(1, min(DEFAULT_PROMPT_TOKENS, context_length - max_new_tokens))
    new = max(1, min(max_new_tokens, context_length - prompt))
    top = predict(plan, cap, prompt_tokens=prompt, new_tokens=new).tokens_per_s
    b = 1
    while b < cap:
        if predict(plan, b, prompt_tokens=prompt, new_tokens=new).tokens_per_s >= KNEE_FRACTION * top:
            return b
        b *= 2
    return cap

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

from dataclasses import dataclass
from typing import Any

from routerllm.hardware import Hardware


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

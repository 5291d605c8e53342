"""Measured CPU matmul time at a model's linear shapes: what CPU-executed layers compute at.

A CPU's peak FLOP/s says little about `F.linear` at decode sizes: on this project's dev machine
(AMD EPYC Zen 3, AVX2, no native bf16; torch 2.13) a bf16 640x2048 linear runs at ~0.3-5 GFLOP/s
for M = 1-16 rows and ~10 GFLOP/s at M = 256, fp32 at 2-30. So for a detected machine the planner
times `torch.nn.functional.linear` once per (shape, M, dtype, threads) here, and caches the
seconds on disk (planning.cache, kind "cpu_linear", keyed by CPU model, torch version, threads,
dtype). Rows above PROFILE_MAX_ROWS scale linearly from that size (large M is compute-bound).
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from routerllm.planning import cache

PROFILE_MAX_ROWS = 256  # prefill rows beyond this scale linearly (throughput has saturated)
MIN_TIME_S = 0.005  # per window: repeat the call until this much time has passed
WINDOWS = 12  # best of this many windows: short windows often fall between a busy machine's preemptions
MIN_WINDOWS = 3  # ... and at least this many, however slow the call
MAX_MEASURE_S = 0.25  # per (shape, rows): stop adding windows past this much time
MAX_REPEATS = 200

_MEMO: dict[Any, float] = {}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _measure(in_f: int, out_f: int, rows: int, dtype: str) -> float:
    import torch

    torch_dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(out_f, in_f, generator=gen).to(torch_dtype)
    x = torch.randn(rows, in_f, generator=gen).to(torch_dtype)
    with torch.inference_mode():
        torch.nn.functional.linear(x, w)  # warm-up: first-call dispatch and packing
        best, started = float("inf"), time.perf_counter()
        for window in range(WINDOWS):  # the best window: a shared machine's noise only slows calls down
            if window >= MIN_WINDOWS and time.perf_counter() - started > MAX_MEASURE_S:
                break  # a slow shape (large rows x a big head): fewer, longer windows
            n, t0 = 0, time.perf_counter()
            while True:
                torch.nn.functional.linear(x, w)
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= MIN_TIME_S or n >= MAX_REPEATS:
                    break
            best = min(best, elapsed / n)
    return best


def _quiet_enough(threads: int) -> bool:
    """Whether a measurement may be cached: the 1-minute load average, less the measurement's own
    threads, is under half the cores. A profile taken while other jobs fill the cores is slower
    than the host (measured here: 2-5x at load 7 on 2 cores) and is used by this process only, so a
    later, quieter plan measures again instead of inheriting it."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform: nothing to judge by
        return True
    return load - threads < (os.cpu_count() or 1) / 2


def linear_seconds(shapes: dict[str, int], rows: int, dtype: str = "bfloat16") -> float:
    """Seconds of one pass through linears of `shapes` ({"in x out": count}) for `rows` tokens."""
    import torch

    threads = torch.get_num_threads()
    measured_rows = min(rows, PROFILE_MAX_ROWS)
    total = 0.0
    env = (_cpu_name(), torch.__version__, threads, dtype)
    for shape, count in shapes.items():
        in_f, out_f = (int(v) for v in shape.split("x"))
        memo_key = (env, in_f, out_f, measured_rows)
        if memo_key not in _MEMO:
            key = cache.key_of("cpu_linear", *env, in_f, out_f, measured_rows)
            value = cache.load("cpu_linear", key)
            if not isinstance(value, (int, float)) or value <= 0:
                value = _measure(in_f, out_f, measured_rows, dtype)
                if _quiet_enough(threads):
                    cache.store("cpu_linear", key, value)
            _MEMO[memo_key] = float(value)
        total += count * _MEMO[memo_key] * (rows / measured_rows)
    return total

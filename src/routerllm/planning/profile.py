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


# Fresh memory: a buffer the allocator has just mapped costs a page fault (and the kernel zeroing
# the page) at its first write. generate() allocates its per-step logits anew (glibc serves
# blocks of megabytes from fresh mmap()s or re-faults pages it trimmed), so on a CPU the logits of
# a large vocabulary cost their first-touch time at every step. Measured here (Firecracker VM, AMD
# EPYC, kernel 6.18): ~3.9 us per 4 KiB page, ~1 GB/s; bare metal is several times faster, hence
# measured per host and cached like the linears.
FIRST_TOUCH_BYTES = 16 << 20  # one mapping of 16 MiB: the fp32 logits of 16 rows of a 262k vocabulary
FIRST_TOUCH_TRIES = 5  # best of: noise only slows a try down

_FIRST_TOUCH: dict[str, float] = {}


def _measure_first_touch() -> float:
    import mmap

    import torch

    page = mmap.PAGESIZE
    best = float("inf")
    for _ in range(FIRST_TOUCH_TRIES):
        m = mmap.mmap(-1, FIRST_TOUCH_BYTES)  # anonymous, private: every page faults at its first write
        view = torch.frombuffer(m, dtype=torch.uint8)
        t0 = time.perf_counter()
        view[::page].fill_(1)
        best = min(best, time.perf_counter() - t0)
        del view
        m.close()
    return best / FIRST_TOUCH_BYTES


def first_touch_seconds_per_byte() -> float:
    """Seconds per byte to fault in freshly mapped memory on this host (page fault + zeroing)."""
    env = _cpu_name()
    if env not in _FIRST_TOUCH:
        key = cache.key_of("cpu_first_touch", env, platform.release(), FIRST_TOUCH_BYTES)
        value = cache.load("cpu_first_touch", key)
        if not isinstance(value, (int, float)) or value <= 0:
            value = _measure_first_touch()
            if _quiet_enough(1):
                cache.store("cpu_first_touch", key, value)
        _FIRST_TOUCH[env] = float(value)
    return _FIRST_TOUCH[env]

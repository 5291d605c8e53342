"""pass@k, latency percentiles, token throughput and energy totals over per-task records.

A per-task record (one line of results.jsonl: records.BenchmarkRecord.to_dict()) looks like:

    {"task_id": "HumanEval/0", "model": "gemma3_270m", "mode": "continuation",
     "samples": [{"sample": 0, "completion": "...", "prompt_tokens": 120, "completion_tokens": 42,
                  "ttft_s": 0.2, "total_s": 2.1, "timing": "measured", "finish_reason": "stop",
                  "verdict": {"status": "passed", "detail": "", "duration_s": 0.01, ...} | null}],
     "queue_wait_s": 4.2, "generation_s": 2.3,
     "batch": {"index": 1, "session": 0, "tasks": 4, "rows": 4, "size": 4, "generation_s": 2.3},
     "energy": {"energy_kwh": ..., "co2_kg": ..., "cpu_kwh": ..., "gpu_kwh": ..., "ram_kwh": ...,
                "batch_share": 0.27, "source": ...} | null}

`verdict` is null until the sample is executed (`--skip-execution` leaves it null). `latency_s`
summarizes the samples' own times (total_s); `task_latency_s` the tasks' queue wait + generation;
`tasks_per_hour` is generation throughput: tasks over the generation time of their batches (each
batch counted once; scoring and loading excluded). Records written before batching (no `batch`)
count as batches of one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task with n samples of which c passed (Chen et al. 2021, eq. 1):
    1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i) to stay stable for large n."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        raise ValueError(f"k={k} must be between 1 and the number of samples n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """Mean pass@k over tasks given (n, c) per task; tasks with fewer than k samples are skipped.
    None when no task has k samples."""
    values = [pass_at_k(n, c, k) for n, c in counts if n >= k]
    return float(np.mean(values)) if values else None


def percentiles(values: list[float]) -> dict[str, float | None]:
    """mean, p50, p95 (linear interpolation, numpy's default), min, max."""
    if not values:
        return {"mean": None, "p50": None, "p95": None, "min": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def executed_counts(record: dict[str, Any]) -> tuple[int, int]:
    """(n executed samples, c passed) of one task record."""
    verdicts = [s.get("verdict") for s in record.get("samples", [])]
    executed = [v for v in verdicts if v]
    return len(executed), sum(1 for v in executed if v.get("status") == "passed")


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(sum(present)) if present else None


def batch_throughput(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-task queue wait, generation time and latency (queue wait + generation), the batches they
    ran in, and tasks/hour = tasks / the generation time of their batches (each batch once)."""
    queue = [float(r.get("queue_wait_s") or 0.0) for r in records]
    generation, batches = [], {}
    for i, r in enumerate(records):
        batch = r.get("batch")
        if batch:
            gen_s = float(batch.get("generation_s") or 0.0)
            batches[f"{batch.get('session', 0)}:{batch.get('index', i)}"] = (gen_s, int(batch.get("tasks") or 1))
        else:  # a record without batch information: its own samples' time, a batch of its own
            gen_s = float(sum(s.get("total_s") or 0.0 for s in r.get("samples", [])))
            batches[f"task:{i}"] = (gen_s, 1)
        generation.append(float(r.get("generation_s") or gen_s))
    clock_s = sum(g for g, _ in batches.values())
    return {
        "queue_wait_s": percentiles(queue),
        "generation_s": percentiles(generation),
        "task_latency_s": percentiles([q + g for q, g in zip(queue, generation)]),
        "batches": len(batches),
        "batch_tasks_mean": float(np.mean([n for _, n in batches.values()])) if batches else None,
        "batch_clock_s": clock_s,
        "tasks_per_hour": 3600.0 * len(records) / clock_s if clock_s > 0 else None,
    }


def summarize(records: list[dict[str, Any]], ks: Iterable[int] = (1, 10, 100)) -> dict[str, Any]:
    """Summary of a run's per-task records (see module docstring)."""
    samples = [s for r in records for s in r.get("samples", [])]
    counts = [executed_counts(r) for r in records]
    executed_tasks = [nc for nc in counts if nc[0] > 0]
    max_n = max((n for n, _ in counts), default=0)
    pass_k = {f"pass@{k}": mean_pass_at_k(executed_tasks, k) for k in ks if k <= max(max_n, 1)}
    statuses = Counter(s["verdict"]["status"] for s in samples if s.get("verdict"))
    total_s = [s["total_s"] for s in samples if s.get("total_s") is not None]
    ttft = [s["ttft_s"] for s in samples if s.get("ttft_s") is not None]
    tokens_in = sum(int(s.get("prompt_tokens") or 0) for s in samples)
    tokens_out = sum(int(s.get("completion_tokens") or 0) for s in samples)
    decode_s = sum(max(0.0, (s.get("total_s") or 0.0) - (s.get("ttft_s") or 0.0)) for s in samples)
    gen_s = sum(total_s)
    energies = [r.get("energy") or {} for r in records]
    timing = sorted({s.get("timing", "measured") for s in samples})
    exec_durations = [s["verdict"]["duration_s"] for s in samples if s.get("verdict")]
    throughput = batch_throughput(records)
    return {
        "num_tasks": len(records),
        "num_samples": len(samples),
        "executed_tasks": len(executed_tasks),
        "executed_samples": sum(n for n, _ in executed_tasks),
        "passed_samples": sum(c for _, c in executed_tasks),
        "tasks_solved": sum(1 for n, c in executed_tasks if c > 0),
        **pass_k,
        "verdicts": dict(statuses),
        "latency_s": percentiles(total_s),
        "ttft_s": percentiles(ttft),
        "timing": timing[0] if len(timing) == 1 else timing,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        # decode throughput: output tokens over time after the first token
        "tokens_per_s": tokens_out / decode_s if decode_s > 0 else None,
        "generation_s_total": gen_s,
        "execution_s": percentiles(exec_durations),
        **throughput,
        "energy_kwh": _sum(e.get("energy_kwh") for e in energies),
        "co2_kg": _sum(e.get("co2_kg") for e in energies),
        "cpu_kwh": _sum(e.get("cpu_kwh") for e in energies),
        "gpu_kwh": _sum(e.get("gpu_kwh") for e in energies),
        "ram_kwh": _sum(e.get("ram_kwh") for e in energies),
    }

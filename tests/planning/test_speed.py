"""Load time and decode-speed bound: arithmetic on bytes and bandwidths."""

from __future__ import annotations

import pytest

from routerllm.catalog import get_spec
from routerllm.hardware import get_profile
from routerllm.planning import PlanOptions, plan
from routerllm.planning.speed import estimate

GB = 10**9


def test_gpu_only_step_is_bytes_over_hbm_bandwidth():
    hw = get_profile("2xA100-80GB")
    est = estimate(hw, {0: 40 * GB, 1: 40 * GB}, {0: 1 * GB, 1: 1 * GB},
                   load_bytes={0: 40 * GB, 1: 40 * GB}, checkpoint_bytes=80 * GB)
    assert est.step_time_s == pytest.approx(82 * GB / 2.039e12)
    assert est.decode_tokens_per_s == pytest.approx(2.039e12 / (82 * GB))
    assert est.load_time_s == pytest.approx(80 * GB / hw.disk_bps + 80 * GB / hw.host_link_bps)


def test_offloaded_bytes_cross_pcie_and_disk_every_step():
    hw = get_profile("1xA100-80GB")
    est = estimate(hw, {0: 60 * GB, "cpu": 30 * GB, "disk": 10 * GB}, {0: 2 * GB},
                   load_bytes={0: 60 * GB, "cpu": 30 * GB, "disk": 10 * GB}, checkpoint_bytes=100 * GB, batch_size=4)
    expected = 62 * GB / 2.039e12 + 30 * GB / hw.host_link_bps + 10 * GB / hw.disk_bps + 10 * GB / hw.host_link_bps
    assert est.step_time_s == pytest.approx(expected)
    assert est.aggregate_tokens_per_s == pytest.approx(4 * est.decode_tokens_per_s)
    assert est.breakdown_s["cpu"] > est.breakdown_s["0"]  # PCIe dominates


def test_cpu_only_reads_at_dram_bandwidth():
    hw = get_profile("cpu-laptop")
    est = estimate(hw, {"cpu": 536 * 10**6}, {}, load_bytes={"cpu": 536 * 10**6}, checkpoint_bytes=536 * 10**6)
    assert est.decode_tokens_per_s == pytest.approx(hw.cpu_ram_bps / (536 * 10**6))


def test_plan_speed_orders_sensibly():
    spec = get_spec("llama3_70b")
    fits = plan(spec, get_profile("2xH100-80GB"), PlanOptions(quantization="nf4"))
    offload = plan(spec, get_profile("1xA100-40GB"), PlanOptions(quantization="nf4"))
    assert fits.verdict == "fits_gpu" and offload.verdict in ("cpu_offload", "disk_offload")
    assert fits.decode_tokens_per_s > 5 * offload.decode_tokens_per_s
    assert fits.predicted_load_time_s > 0


# --- throughput of a batch: predict / predict_tokens_per_s / auto_batch_size ------------------------

from routerllm.planning.speed import auto_batch_size, max_batch_size, predict, predict_tokens_per_s  # noqa: E402


def test_offloaded_weights_stream_once_per_step_whatever_the_batch():
    p = plan(get_spec("llama3_405b"), get_profile("2xA100-80GB").with_overrides(cpu_ram=200 * GB),
             PlanOptions(quantization="nf4"))
    one = predict(p, 1, prompt_tokens=160, new_tokens=300)
    sixteen = predict(p, 16, prompt_tokens=160, new_tokens=300)
    # the step is dominated by streaming cpu/disk weights, which the batch shares
    assert one.terms_s["stream disk"] == sixteen.terms_s["stream disk"] > 1.0
    assert sixteen.step_s < 1.05 * one.step_s
    assert sixteen.tokens_per_s > 10 * one.tokens_per_s
    assert predict_tokens_per_s(p, 16, prompt_tokens=160, new_tokens=300) == pytest.approx(sixteen.tokens_per_s)
    # the step time agrees with the plan's own decode bound at batch 1 (plus framework and compute)
    assert one.step_s == pytest.approx(1 / p.decode_tokens_per_s, rel=0.05)


def test_gpu_resident_decode_is_memory_bound_until_compute_catches_up():
    p = plan(get_spec("llama3_70b"), get_profile("2xH100-80GB"), PlanOptions(quantization="nf4", context_length=2048))
    small = predict(p, 1, prompt_tokens=0, new_tokens=100)
    big = predict(p, 512, prompt_tokens=0, new_tokens=100)
    assert small.terms_s["memory 0"] > small.terms_s["compute 0"]
    assert big.terms_s["compute 0"] > big.terms_s["memory 0"]  # 2 FLOP/param x 512 rows outruns HBM
    assert big.decode_tokens_per_s < 512 * small.decode_tokens_per_s


def test_auto_batch_is_bounded_by_the_memory_left_for_kv():
    spec = get_spec("llama3_70b")
    hw = get_profile("2xH100-80GB")
    p = plan(spec, hw, PlanOptions(quantization="nf4", context_length=4096))
    n = max_batch_size(p, context_length=4096, max_new_tokens=512)
    # every row needs its KV cache (80 layers x 8 heads x 128 x 2 x 2 B x 4096 tokens = 1.34 GB) on the GPUs
    gpu_room = sum(d.budget_bytes - d.total_bytes + d.kv_bytes for d in p.devices if isinstance(d.device, int))
    assert 1 < n <= gpu_room / spec.kv_cache_bytes(4096, 1, 2)
    big = plan(spec, hw, PlanOptions(quantization="nf4", context_length=4096, batch_size=n))
    assert big.verdict == "fits_gpu"  # the planner agrees that batch fits
    auto = auto_batch_size(p, context_length=4096, max_new_tokens=512)
    assert 1 <= auto <= n
    assert auto_batch_size(p, context_length=4096 * 8, max_new_tokens=512) < auto


def test_the_logits_of_a_large_vocabulary_cost_every_step_in_proportion_to_the_batch():
    # Gemma 3 270M on a CPU: 16 rows x 262,144 tokens x (2 B bf16 + 4 B fp32 copy) = 25 MB a step
    p = plan(get_spec("gemma3_270m"), get_profile("cpu-laptop"), PlanOptions(dtype="bfloat16"))
    hw = p.hardware
    preds = {b: predict(p, b, prompt_tokens=160, new_tokens=64) for b in (1, 4, 16)}
    vocab = int(p.model["vocab_size"])
    assert vocab == 262144
    expected = 2 * 16 * vocab * 6 / hw["cpu_ram_bps"]  # written and read once (a named CPU: no fault term)
    assert preds[16].terms_s["logits"] == pytest.approx(expected)
    assert preds[16].terms_s["logits"] == pytest.approx(16 * preds[1].terms_s["logits"])
    assert preds[1].terms_s["logits"] < preds[4].terms_s["logits"] < preds[16].terms_s["logits"]
    assert preds[16].step_s > preds[4].step_s > preds[1].step_s
    # the step is the sum of its terms' parts: the logits add, they do not overlap the matmuls
    without = preds[16].step_s - preds[16].terms_s["logits"]
    assert without == pytest.approx(preds[16].terms_s["framework"] + max(preds[16].terms_s["memory cpu"],
                                                                           preds[16].terms_s["compute cpu"]))


def test_gpu_logits_are_read_at_hbm_bandwidth_without_faults():
    p = plan(get_spec("llama3_70b"), get_profile("2xH100-80GB"), PlanOptions(quantization="nf4"))
    pred = predict(p, 64, prompt_tokens=160, new_tokens=64)
    vocab = int(p.model["vocab_size"])
    bw = next(g["bandwidth_bps"] for g in p.hardware["gpus"] if g["index"] == 0)
    assert pred.terms_s["logits"] == pytest.approx(2 * 64 * vocab * 6 / bw)
    assert pred.terms_s["logits"] < 0.05 * pred.step_s  # negligible next to 35 GB of weights

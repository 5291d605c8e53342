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

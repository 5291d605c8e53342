"""codecarbon's offline tracker: real energy figures per task, honest per-part status, no files
unless asked, no network."""

from __future__ import annotations

import os

import pytest

from routerllm.evaluation.carbon import CarbonTracker, carbon_intensity_kg_per_kwh, split_by_share
from routerllm.evaluation.monitor import ResourceMonitor


def _burn(seconds: float) -> int:
    import time

    end, x = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        x += sum(range(1000))
    return x


def test_per_task_energy_and_parts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = CarbonTracker("FRA", output_dir=None, measure_power_secs=0.5).start()
    assert tracker.active, tracker.error
    with tracker.task("busy") as busy:
        _burn(1.2)
    with tracker.task("short") as short:
        pass
    tracker.stop()
    assert busy["energy_kwh"] > 0 and busy["co2_kg"] > 0
    assert busy["energy_kwh"] > short["energy_kwh"]
    parts = tracker.parts
    assert set(parts) == {"cpu", "gpu", "ram"}
    for part in parts.values():
        assert part["status"] in ("measured", "estimated", "unavailable") and part["method"]
    if parts["gpu"]["status"] == "unavailable":
        assert busy["gpu_kwh"] is None  # not reported as 0 kWh when nothing measured it
    if parts["cpu"]["status"] != "unavailable":
        assert busy["cpu_kwh"] > 0
    # CO2 = energy x France's grid intensity from codecarbon's bundled data
    intensity = carbon_intensity_kg_per_kwh("FRA")
    assert 0.01 < intensity < 0.2
    assert busy["co2_kg"] == pytest.approx(busy["energy_kwh"] * intensity, rel=0.05)
    assert os.listdir(tmp_path) == []  # nothing written to the working directory


def test_output_dir_and_disabled(tmp_path):
    tracker = CarbonTracker("USA", output_dir=tmp_path / "run").start()
    with tracker.task("t") as e:
        _burn(0.2)
    tracker.stop()
    assert e["energy_kwh"] > 0
    assert any(p.suffix == ".csv" for p in (tmp_path / "run").iterdir())
    off = CarbonTracker(enabled=False).start()
    with off.task("t") as e:
        pass
    assert e == {} and off.stop() is None
    assert all(p["status"] == "unavailable" for p in off.describe()["parts"].values())
    assert carbon_intensity_kg_per_kwh("XXX") is None


def test_monitor_samples_memory(tmp_path):
    with ResourceMonitor(interval_s=0.1, path=tmp_path / "m.jsonl") as mon:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        _burn(0.5)
    s = mon.summary()
    assert s["samples"] >= 3
    assert s["rss_peak_bytes"] > 64 * 2**20
    assert s["ram_total_bytes"] > 0
    assert (tmp_path / "m.jsonl").read_text().count("\n") == s["samples"]
    del block


def test_split_by_share_adds_up_to_the_batch():
    batch = {"energy_kwh": 0.03, "co2_kg": 0.0012, "cpu_kwh": 0.02, "gpu_kwh": None, "ram_kwh": 0.01,
             "duration_s": 6.0, "cpu_power_w": 40.0, "source": "codecarbon"}
    parts = split_by_share(batch, [100, 300, 200])
    assert [round(p["energy_kwh"], 6) for p in parts] == [0.005, 0.015, 0.01]
    assert sum(p["co2_kg"] for p in parts) == pytest.approx(0.0012)
    assert all(p["gpu_kwh"] is None and p["cpu_power_w"] == 40.0 and p["source"] == "codecarbon" for p in parts)
    assert [p["batch_share"] for p in split_by_share(batch, [0, 0])] == [0.5, 0.5]
    assert split_by_share(None, [1, 2]) == [None, None] and split_by_share({}, [3]) == [None]
    assert split_by_share(batch, []) == []


def test_a_repeated_task_name_is_measured_every_time_without_codecarbon_errors(tmp_path, monkeypatch):
    """The tier cache measures "<tier>:batch of 8" again and again; codecarbon 3.3.2 renames a
    repeated name internally and its stop then left the new task active (an error per task at
    stop(), energy reported as zero)."""
    import logging

    monkeypatch.chdir(tmp_path)
    tracker = CarbonTracker("FRA", output_dir=None, measure_power_secs=0.5).start()
    assert tracker.active, tracker.error
    measured, errors = [], []

    class Keep(logging.Handler):  # codecarbon's logger does not propagate to the root (caplog)
        def emit(self, record):
            errors.append(record.getMessage())

    keep = Keep(level=logging.ERROR)
    logging.getLogger("codecarbon").addHandler(keep)
    try:
        for _ in range(3):
            with tracker.task("tier:batch of 8") as m:
                _burn(0.6)
            measured.append(m)
        tracker.stop()
    finally:
        logging.getLogger("codecarbon").removeHandler(keep)
    assert all(m["energy_kwh"] > 0 for m in measured), measured
    assert not errors, errors

"""The embedded Gemma 3 270M through scripts/large_model_benchmark.py: 10 HumanEval tasks on the
CPU, end to end, with real Judge verdicts, measured timings and codecarbon CO2 figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2 min on a quiet 2-core CPU; much longer on a loaded one
def test_gemma_270m_ten_tasks_end_to_end(tmp_path):
    pytest.importorskip("routerllm.backends.local")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "large_model_benchmark.py"), "--config",
         str(ROOT / "configs" / "local_config.yaml"), "--model", "gemma3_270m", "--num-examples", "10",
         "--results-dir", str(tmp_path), "--run-name", "gemma", "--no-progress"],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=1750,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "gemma"
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(10)]
    for r in records:
        s = r["samples"][0]
        assert r["mode"] == "continuation" and s["timing"] == "measured"
        assert s["completion_tokens"] > 0 and s["total_s"] > 0 and s["ttft_s"] is not None
        v = s["verdict"]
        assert v["status"] in ("passed", "failed", "timeout", "error")
        assert v["status"] == "passed" or v["reason"]  # a failure says why
        assert r["energy"]["energy_kwh"] > 0 and r["energy"]["co2_kg"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["executed_samples"] == 10
    assert 0.0 <= summary["pass@1"] <= 1.0
    assert summary["co2_kg"] == pytest.approx(sum(r["energy"]["co2_kg"] for r in records))
    assert summary["tokens_per_s"] > 0 and summary["latency_s"]["p95"] >= summary["latency_s"]["p50"]
    parts = summary["energy_tracking"]["parts"]
    assert parts["cpu"]["status"] in ("measured", "estimated") and parts["ram"]["status"] == "estimated"
    assert summary["preflight"]["status"] == "ok" and summary["preflight"]["verdict"] != "cannot_run"
    assert summary["memory"]["rss_peak_bytes"] > 300 * 2**20  # the model was resident
    assert summary["sandbox"].startswith("bubblewrap") or "unsafe_no_sandbox" in summary["sandbox"]

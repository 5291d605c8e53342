"""The resumable runner: durable appends, torn lines, resume without loss or duplicates after a
real SIGKILL, clean SIGINT, --skip-execution then --execute-only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routerllm.config import config_from_dict
from routerllm.evaluation.humaneval import load_tasks
from routerllm.runner import (RESULTS_FILE, SUMMARY_FILE, BenchmarkOptions, ResultsLog, execute_only,
                              run_benchmark, run_tasks)
from routerllm.exceptions import RunError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "large_model_benchmark.py"
N_TASKS = 30


@pytest.fixture
def replay_setup(tmp_path):
    """A recorded-generations file whose programs take ~0.15 s each (so a run can be killed
    mid-way), every fourth one wrong, and a config with a replay tier over it."""
    rows = []
    for t in load_tasks(N_TASKS):
        body = t.canonical_solution if t.number % 4 != 3 else "    return None\n"
        program = t.prompt + body + "\nimport time\ntime.sleep(0.15)\n"
        rows.append({"task_id": t.task_id, "sample": 0, "completion": program, "passed": t.number % 4 != 3})
    replay = tmp_path / "slow.jsonl"
    replay.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {
        "models": {"large_llm": {"name": "slowrec", "backend": "replay", "replay_file": str(replay),
                                 "cost": {"tokens_per_s": 40, "ttft_s": 0.1, "watts": 200}}},
        "benchmark": {"num_examples": N_TASKS, "workers": 1, "summary_every": 5, "track_co2": True,
                      "country_iso_code": "FRA", "execution_timeout_s": 5},
    }
    import yaml

    cfg_path = tmp_path / "replay.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    return cfg_path, data, tmp_path / "results"


def _records(run_dir: Path) -> list[dict]:
    return ResultsLog(run_dir / RESULTS_FILE).load(repair=False)


def _start(cfg_path: Path, results: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(cfg_path), "--model", "slowrec", "--results-dir", str(results),
         "--run-name", "run", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT),
    )


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {n} lines")


def test_results_log_tolerates_a_torn_last_line(tmp_path):
    log = ResultsLog(tmp_path / "r.jsonl")
    log.append({"task_id": "HumanEval/0"})
    log.append({"task_id": "HumanEval/1"})
    with log.path.open("ab") as fh:
        fh.write(b'{"task_id": "HumanEval/2", "samp')  # a write cut by SIGKILL
    assert [r["task_id"] for r in log.load()] == ["HumanEval/0", "HumanEval/1"]
    assert log.path.read_bytes().endswith(b"}\n")  # the torn tail was cut off
    log.append({"task_id": "HumanEval/2"})
    assert [r["task_id"] for r in log.load()] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    with log.path.open("ab") as fh:
        fh.write(b"garbage\n" + b'{"task_id": "HumanEval/3"}\n')
    with pytest.raises(RunError, match="corrupt line"):
        log.load()


def test_run_tasks_resumes_and_summarizes(tmp_path):
    tasks = load_tasks(12)
    calls: list[str] = []

    def process(task):
        calls.append(task.task_id)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as a second Ctrl-C would: abandon this task
        return {"value": task.number}

    out = run_tasks(tmp_path / "run", tasks, process, summary_every=2, progress=False,
                    summarize_fn=lambda recs: {"n": len(recs)})
    assert out.status == "interrupted" and len(out.records) == 4
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["status"] == "interrupted" and summary["n"] == 4 and summary["tasks_total"] == 12
    with pytest.raises(RunError, match="--resume"):
        run_tasks(tmp_path / "run", tasks, process, progress=False)
    out = run_tasks(tmp_path / "run", tasks, process, resume=True, progress=False)
    assert out.complete
    ids = [r["task_id"] for r in _records(tmp_path / "run")]
    assert ids == [t.task_id for t in tasks]
    assert calls.count("HumanEval/4") == 2  # the abandoned task was redone, nothing else was


def test_run_tasks_in_batches_redoes_only_the_abandoned_batch(tmp_path):
    tasks = load_tasks(10)
    batches: list[list[str]] = []

    def process_batch(batch):
        batches.append([t.task_id for t in batch])
        if len(batches) == 3:
            raise KeyboardInterrupt  # abandoned mid-batch: none of its tasks may be recorded
        return [{"value": t.number} for t in batch]

    out = run_tasks(tmp_path / "run", tasks, process_batch=process_batch, batch_size=3, progress=False)
    assert out.status == "interrupted"
    assert [r["task_id"] for r in _records(tmp_path / "run")] == [t.task_id for t in tasks[:6]]
    out = run_tasks(tmp_path / "run", tasks, process_batch=process_batch, batch_size=3, resume=True, progress=False)
    assert out.complete and [r["task_id"] for r in _records(tmp_path / "run")] == [t.task_id for t in tasks]
    assert batches[3] == batches[2] == ["HumanEval/6", "HumanEval/7", "HumanEval/8"]  # redone as it was
    assert batches[4] == ["HumanEval/9"]
    with pytest.raises(RunError, match="one record per task"):
        run_tasks(tmp_path / "other", tasks, process_batch=lambda b: [{}], batch_size=2, progress=False)
    with pytest.raises(ValueError):
        run_tasks(tmp_path / "x", tasks, progress=False)


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(replay_setup):
    cfg_path, _, results = replay_setup
    run_dir = results / "run"
    proc = _start(cfg_path, results)
    try:
        _wait_lines(run_dir / RESULTS_FILE, 8, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _records(run_dir)
    assert 8 <= len(before) < N_TASKS, "the kill did not land mid-run"
    proc = _start(cfg_path, results, "--resume", str(run_dir))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()[-3000:]
    after = _records(run_dir)
    ids = [r["task_id"] for r in after]
    assert ids == [f"HumanEval/{i}" for i in range(N_TASKS)]  # every task once, in order
    assert after[: len(before)] == before  # finished tasks were kept as they were, not redone
    passed = {r["task_id"]: r["samples"][0]["verdict"]["status"] == "passed" for r in after}
    assert passed == {f"HumanEval/{i}": i % 4 != 3 for i in range(N_TASKS)}
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["status"] == "complete" and summary["tasks_done"] == N_TASKS
    assert summary["pass@1"] == pytest.approx(sum(i % 4 != 3 for i in range(N_TASKS)) / N_TASKS)
    assert len(summary["sessions"]) == 2  # the killed session and the resumed one
    assert summary["co2_kg"] > 0 and summary["timing"] == "modelled"


def test_sigint_stops_cleanly_and_resumes(replay_setup):
    cfg_path, _, results = replay_setup
    run_dir = results / "run"
    proc = _start(cfg_path, results)
    _wait_lines(run_dir / RESULTS_FILE, 4, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out.decode()[-3000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["status"] == "interrupted"
    done = _records(run_dir)
    assert summary["tasks_done"] == len(done) < N_TASKS
    assert run_dir.joinpath(RESULTS_FILE).read_bytes().endswith(b"\n")  # the current task was finished whole
    proc = _start(cfg_path, results, "--resume", str(run_dir))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert [r["task_id"] for r in _records(run_dir)] == [f"HumanEval/{i}" for i in range(N_TASKS)]


def test_skip_execution_then_execute_only(replay_setup):
    _, data, results = replay_setup
    cfg = config_from_dict(data)
    opts = BenchmarkOptions(config=cfg, model=cfg.models.large_llm, num_examples=8, skip_execution=True,
                            results_dir=results, run_name="gen", progress=False)
    out = run_benchmark(opts)
    assert out.complete and all(s["verdict"] is None for r in out.records for s in r["samples"])
    assert out.summary["executed_samples"] == 0 and out.summary.get("pass@1") is None
    scored = execute_only(results / "gen", cfg, progress=False)
    assert scored.complete
    statuses = [r["samples"][0]["verdict"]["status"] for r in _records(results / "gen")]
    assert statuses == ["passed" if i % 4 != 3 else "failed" for i in range(8)]
    assert scored.summary["pass@1"] == pytest.approx(6 / 8)


def test_preflight_refuses_before_loading_anything(tmp_path):
    pytest.importorskip("routerllm.manager")
    from routerllm.config import load_config
    from routerllm.exceptions import PlanError

    cfg = load_config(ROOT / "configs" / "local_config.yaml")
    starved = cfg.models.small_llms[0].model_copy(update={"max_memory": {"cpu": 10_000_000}})  # 10 MB of RAM
    opts = BenchmarkOptions(config=cfg, model=starved, num_examples=2, results_dir=tmp_path, run_name="no",
                            progress=False)
    with pytest.raises(PlanError, match="cannot run"):
        run_benchmark(opts)
    assert not (tmp_path / "no").exists()  # refused before the run directory or the model existed


def _replay_config(data: dict, **model_overrides) -> "RouterLLMConfig":  # noqa: F821
    data = json.loads(json.dumps(data))
    data["models"]["large_llm"].update(model_overrides)
    return config_from_dict(data)


def test_benchmark_batches_tasks_on_the_modelled_clock_and_splits_energy(replay_setup):
    _, data, results = replay_setup
    cfg = _replay_config(data, batch_size=4)
    out = run_benchmark(BenchmarkOptions(config=cfg, model=cfg.models.large_llm, num_examples=10,
                                         results_dir=results, run_name="b4", progress=False))
    assert out.complete
    records = _records(results / "b4")
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(10)]
    assert [r["batch"]["index"] for r in records] == [0] * 4 + [1] * 4 + [2] * 2
    assert [r["batch"]["tasks"] for r in records] == [4] * 8 + [2] * 2
    assert all(r["batch"]["size"] == 4 and r["timing"] == "modelled" for r in records)
    cost = cfg.models.large_llm.cost
    clock = 0.0
    for index in range(3):
        batch = [r for r in records if r["batch"]["index"] == index]
        longest = max(r["samples"][0]["total_s"] for r in batch)
        # the batch lasts as long as its longest row; each task waited for the batches before it
        assert all(r["generation_s"] == pytest.approx(longest) for r in batch)
        assert all(r["queue_wait_s"] == pytest.approx(clock) for r in batch)
        clock += longest
        # the batch's modelled energy (the tier's power for that long), split by generated tokens
        energies = [r["energy"]["energy_kwh"] for r in batch]
        assert sum(energies) == pytest.approx(cost.watts * longest / 3.6e6)
        tokens = [r["samples"][0]["completion_tokens"] for r in batch]
        for e, t in zip(energies, tokens):
            assert e == pytest.approx(sum(energies) * t / sum(tokens))
        assert sum(r["energy"]["batch_share"] for r in batch) == pytest.approx(1.0)
    summary = json.loads((results / "b4" / SUMMARY_FILE).read_text())
    assert summary["batches"] == 3 and summary["batch_clock_s"] == pytest.approx(clock)
    assert summary["tasks_per_hour"] == pytest.approx(3600 * 10 / clock)
    assert summary["queue_wait_s"]["max"] == pytest.approx(clock - records[-1]["generation_s"])
    assert summary["sessions"][-1]["batch_size"] == 4
    report = (results / "b4" / "report.md").read_text()
    assert "tasks/hour" in report and "queue wait" in report
    assert f"| {summary['tasks_per_hour']:.0f} |" in report
    # the same tasks one at a time: the same verdicts, and throughput counted per task
    cfg1 = _replay_config(data, batch_size=1)
    one = run_benchmark(BenchmarkOptions(config=cfg1, model=cfg1.models.large_llm, num_examples=10,
                                         results_dir=results, run_name="b1", progress=False))
    assert [r["samples"][0]["verdict"]["status"] for r in one.records] == \
        [r["samples"][0]["verdict"]["status"] for r in records]
    assert one.summary["batches"] == 10 and one.summary["tasks_per_hour"] < summary["tasks_per_hour"]


def test_benchmark_of_a_local_tier_in_batches_matches_batch_1(tiny_llama, tmp_path):
    """fp32 greedy on the tiny Llama: batch 4 answers every task exactly as batch 1 does; measured
    queue waits grow batch by batch, each answer's own time fits in its batch's."""
    from routerllm.config import ModelConfig

    runs = {}
    for batch_size in (4, 1):
        model = ModelConfig(name="tiny", model_id=str(tiny_llama), dtype="float32", context_length=1024,
                            max_new_tokens=8, batch_size=batch_size)
        cfg = config_from_dict({"models": {"large_llm": model.model_dump(mode="json")},
                                "benchmark": {"track_co2": False}})
        out = run_benchmark(BenchmarkOptions(config=cfg, model=cfg.models.large_llm, num_examples=6, skip_execution=True,
                                             results_dir=tmp_path, run_name=f"b{batch_size}", progress=False))
        assert out.complete
        runs[batch_size] = _records(tmp_path / f"b{batch_size}")
    batched, alone = runs[4], runs[1]
    assert [r["samples"][0]["completion"] for r in batched] == [r["samples"][0]["completion"] for r in alone]
    assert [r["batch"]["index"] for r in batched] == [0, 0, 0, 0, 1, 1]
    assert [r["batch"]["index"] for r in alone] == list(range(6))
    for r in batched:
        assert r["timing"] == "measured" and r["batch"]["rows"] == r["batch"]["tasks"]
        assert 0 < r["samples"][0]["total_s"] <= r["generation_s"] + 1e-6
    first, second = batched[0], batched[4]
    assert second["queue_wait_s"] >= first["queue_wait_s"] + first["generation_s"]
    assert (tmp_path / "b4" / "report.md").exists()

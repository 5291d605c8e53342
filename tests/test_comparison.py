"""The comparison end to end on real recorded generations (replay tiers, real Judge), its
generation cache, resume, and the CLI/script entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from routerllm.comparison import CompareOptions, run_comparison
from routerllm.config import load_config
from routerllm.runner import ResultsLog

REPO = Path(__file__).resolve().parents[1]
REPLAY = REPO / "configs" / "replay_config.yaml"
RECORDED = REPO / "data" / "humaneval-generations"

pytestmark = pytest.mark.skipif(not RECORDED.is_dir(), reason=f"recorded generations not at {RECORDED}")


def options(tmp_path: Path, **kw) -> CompareOptions:
    config = load_config(REPLAY)
    config.router.cascade.small_samples = 3
    config.router.task_batch = 5
    return CompareOptions(config=config, results_dir=str(tmp_path), run_name="run", progress=False, **kw)


def test_comparison_on_recorded_generations(tmp_path: Path) -> None:
    outcome = run_comparison(options(tmp_path, num_examples=12, strategies=["random", "heuristic", "cascade"]))
    assert outcome.status == "complete"
    s = outcome.summary
    systems = s.systems
    assert set(systems) == {"small", "large", "random", "heuristic", "cascade"}
    assert systems["small"].large_share == 0.0 and systems["large"].large_share == 1.0
    assert systems["large"].small_calls_per_task == 0.0
    for name, row in systems.items():
        assert 0.0 <= row.pass_at_1 <= 1.0, name
        assert row.latency_s.p95 >= row.latency_s.p50 > 0 and row.tasks_per_hour > 0
        assert row.cost_usd > 0 and row.co2_kg > 0 and row.timing == ["modelled"]
    # measured against the better single tier, named
    assert s.better_tier.system == "large" and s.better_tier.tier == "gpt-4-0613"
    assert systems["large"].relative_pass_at_1 == 1.0 and systems["large"].pgr == 1.0 and systems["small"].pgr == 0.0
    cascade = systems["cascade"]
    assert cascade.false_accepts is not None and systems["random"].false_accepts is None
    assert cascade.apgr is not None and 0 <= cascade.ceiling_share <= 1.0 + 1e-9
    assert s.floor is not None and s.ceiling_pass_at_1 >= max(systems["small"].pass_at_1, systems["large"].pass_at_1)
    # the oracle is at least as good as either tier alone
    assert s.oracle_pass_at_1 >= max(systems["small"].pass_at_1, systems["large"].pass_at_1)
    # strategies share cached generations: the cascade's first small answer is the small-only answer
    assert s.generation_cache["hits"] > 0
    assert "the chain's order" in s.calibration["source"]  # 12 tasks: too few to calibrate on
    records = ResultsLog(outcome.run_dir / "results.jsonl").load()
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(12)]
    for r in outcome.records:
        c = r.systems["cascade"]
        assert c.reason and c.attempts and c.state in ("agreed", "conflict", "lone", "failed", "unchecked")
        assert c.latency_s == pytest.approx(c.queue_s + c.generation_s + c.check_s)
        assert c.false_accept == (c.accepted and not c.passed)
        if c.tier == "Mistral-7B-Instruct-v0.1" and c.accepted:
            assert c.attempts[0].check is not None
        assert r.solvable is not None and r.samples_scored["Mistral-7B-Instruct-v0.1"] == 3
    # the per-system figures come from typed records that round-trip through the saved JSON
    saved = json.loads((outcome.run_dir / "comparison.json").read_text())
    assert saved["systems"]["cascade"]["false_accepts"] == cascade.false_accepts
    assert {p.name for p in outcome.report_files} >= {"report.md", "report.html", "tradeoff.png"}


def test_the_cascade_is_calibrated_on_the_runs_other_tasks(tmp_path: Path) -> None:
    outcome = run_comparison(options(tmp_path, num_examples=20, strategies=["cascade"]))
    calibration = outcome.summary.calibration
    assert calibration["labelled"] is True and "cross-fitted" in calibration["source"] and "5 folds" in calibration["source"]
    tiers = calibration["overall"]
    assert tiers["gpt-4-0613"]["accuracy"] > tiers["Mistral-7B-Instruct-v0.1"]["accuracy"]
    assert sum(n for n, _ in tiers["Mistral-7B-Instruct-v0.1"]["states"].values()) == 20


def test_batches_of_tasks_are_written_as_they_complete(tmp_path: Path) -> None:
    outcome = run_comparison(options(tmp_path, num_examples=7, strategies=["cascade"]))
    keys = [r.systems["cascade"].batch_key for r in outcome.records]
    assert keys == ["HumanEval/0"] * 5 + ["HumanEval/5"] * 2  # router.task_batch = 5
    clocks = {r.systems["large"].batch_key: r.systems["large"].batch_clock_s for r in outcome.records}
    assert outcome.summary.systems["large"].tasks_per_hour == pytest.approx(7 / sum(clocks.values()) * 3600)


def test_resume_continues_without_redoing(tmp_path: Path) -> None:
    first = run_comparison(options(tmp_path, num_examples=4, strategies=["cascade"]))
    assert len(first.records) == 4
    lines_before = (first.run_dir / "generations.jsonl").read_text().count("\n")
    second = run_comparison(options(tmp_path, num_examples=7, strategies=["cascade"], resume=str(first.run_dir)))
    records = ResultsLog(second.run_dir / "results.jsonl").load()
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(7)]
    generated = [json.loads(line)["key"] for line in (second.run_dir / "generations.jsonl").read_text().splitlines()]
    assert len(generated) == len(set(generated)) > lines_before  # nothing generated twice


def test_without_large_model_only_small_runs(tmp_path: Path) -> None:
    outcome = run_comparison(options(tmp_path, num_examples=3, use_large_model=False, strategies=["cascade"]))
    assert set(outcome.summary.systems) == {"small"}


def test_skip_execution_routes_but_does_not_score(tmp_path: Path) -> None:
    outcome = run_comparison(options(tmp_path, num_examples=3, skip_execution=True, strategies=["cascade"]))
    cascade = outcome.summary.systems["cascade"]
    assert cascade.pass_at_1 is None and cascade.large_share is not None and cascade.false_accepts is None
    assert outcome.summary.calibration["labelled"] is False


def test_script_runs_the_comparison(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "enhanced_humaneval_comparison.py"), "--config", str(REPLAY),
         "--num-examples", "3", "--use-large-model", "--strategies", "cascade,random", "--results-dir", str(tmp_path),
         "--run-name", "cli", "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cascade" in proc.stdout and (tmp_path / "cli" / "report.md").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "routerllm.cli", "compare", "--config", str(REPLAY), "--num-examples", "3",
         "--use-large-model", "--results-dir", str(tmp_path), "--run-name", "cli"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite a run


def test_unknown_strategy_is_named(tmp_path: Path) -> None:
    from routerllm.exceptions import RoutingError

    with pytest.raises(RoutingError) as exc:
        run_comparison(options(tmp_path, num_examples=2, strategies=["casacde"]))
    assert "casacde" in str(exc.value) and "cascade" in str(exc.value)


def test_apgr_is_routellms_area_and_undefined_for_tiers_a_task_apart() -> None:
    from routerllm.comparison import apgr

    assert apgr([(0.5, 0.55)], 0.3, 0.8, 0.3, 0.8) == pytest.approx(0.5)  # on the random line
    assert apgr([(0.4, 0.8)], 0.3, 0.8, 0.3, 0.8) == pytest.approx(0.8)  # better tier's level at 40% large
    assert apgr([(0.1, 0.7)], 0.7, 0.4, 0.4, 0.7) > 0.5  # the small tier is the better one
    assert apgr([(0.5, 0.5)], 0.5, 0.5, 0.5, 0.5) is None

    from routerllm.comparison import summarize_comparison
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.records import SystemRecord, TaskRecord

    tasks = {t.task_id: t for t in load_tasks(40)}
    config = load_config(REPLAY)

    def records(large_right: int) -> list[TaskRecord]:
        out = []
        for i, tid in enumerate(tasks):
            rows = {"small": SystemRecord(tier="s", reason="", passed=i < 20),
                    "large": SystemRecord(tier="l", reason="", passed=i < large_right, large_calls=1),
                    "cascade": SystemRecord(tier="s", reason="", passed=i < 21, state="agreed")}
            out.append(TaskRecord(task_id=tid, systems=rows))
        return out

    apart = summarize_comparison(records(30), tasks, config, ["small", "large", "cascade"])
    assert apart.systems["cascade"].apgr is not None and apart.systems["cascade"].pgr == pytest.approx(0.1)
    close = summarize_comparison(records(21), tasks, config, ["small", "large", "cascade"])  # one task apart
    assert close.systems["cascade"].apgr is None and close.systems["cascade"].pgr is None

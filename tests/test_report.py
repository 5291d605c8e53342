"""The report: markdown, HTML and PNG plots from a typed comparison summary."""

from __future__ import annotations

from pathlib import Path

from routerllm.records import BetterTier, ComparisonSummary, Percentiles, SystemSummary
from routerllm.report import CO2_PNG, LATENCY_PNG, TRADEOFF_PNG, headline, table_rows, write_report


def system(p, share, small_calls, lat, co2, cost, fa=None, apgr=None) -> SystemSummary:
    return SystemSummary(tasks=10, pass_at_1=p, large_share=share, small_calls_per_task=small_calls,
                         large_calls_per_task=share, latency_s=Percentiles(lat, lat * 0.9, lat * 2, lat * 3),
                         queue_s_mean=lat * 0.1, generation_s_mean=lat * 0.8, check_s_mean=lat * 0.1,
                         tasks_per_hour=3600 / lat, co2_kg=co2, cost_usd=cost, relative_pass_at_1=p / 0.8,
                         relative_cost=cost / 1.0, false_accepts=fa, apgr=apgr, ceiling_share=p / 0.9)


def summary() -> ComparisonSummary:
    return ComparisonSummary(
        tasks=10, chain=["tiny", "huge"], timing={"tiny": "modelled", "huge": "modelled"},
        systems={
            "small": system(0.3, 0.0, 1.0, 2.0, 0.001, 0.1),
            "large": system(0.8, 1.0, 0.0, 20.0, 0.01, 1.0),
            "cascade": system(0.8, 0.5, 3.0, 15.0, 0.006, 0.6, fa=1, apgr=0.81),
            "random": system(0.55, 0.5, 0.5, 11.0, 0.005, 0.5, apgr=0.5),
        },
        better_tier=BetterTier("large", "huge", 0.8), worse_tier=BetterTier("small", "tiny", 0.3),
        floor=0.4, ceiling_pass_at_1=0.9, oracle_pass_at_1=0.85, oracle_large_share=0.5,
        calibration={"source": "cross-fitted"},
    )


def test_report_files_and_plots(tmp_path: Path) -> None:
    files = write_report(tmp_path, summary())
    names = {f.name for f in files}
    assert {"report.md", "report.html", TRADEOFF_PNG, LATENCY_PNG, CO2_PNG} <= names
    for png in (TRADEOFF_PNG, LATENCY_PNG, CO2_PNG):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (tmp_path / "report.md").read_text()
    assert md.index(TRADEOFF_PNG) < md.index("| system")  # the answer first
    assert "**cascade** reaches 80.0% pass@1, 100.0% of the better single tier (large only (huge), 80.0%)" in md
    assert "1 false accept(s) in 10 tasks" in md and "APGR 0.81" in md and "floor 40%" in md
    assert "89% of the perfect-checker ceiling (90.0%)" in md
    assert "MODELLED" in md and "oracle" in md and "perfect checker" in md and "queue wait" in md
    html = (tmp_path / "report.html").read_text()
    assert f'src="{TRADEOFF_PNG}"' in html and "<table>" in html


def test_table_rows() -> None:
    rows = table_rows(summary())
    assert rows[0][0] == "small only (tiny)" and rows[1][0] == "large only (huge)"
    cascade = next(r for r in rows if r[0] == "cascade")
    assert cascade[4] == "1" and cascade[5] == "0.81"  # false accepts, APGR
    assert next(r for r in rows if r[0] == "random")[4] == "-"  # random never checks an answer
    assert rows[-2][0].startswith("perfect checker") and rows[-2][1] == "90.0%" and rows[-2][3] == "40.0%"
    assert rows[-1][0].startswith("oracle") and rows[-1][1] == "85.0%"


def test_the_headline_names_a_small_tier_that_beats_the_large_one() -> None:
    # issue 11, pair 3: "small" 0.66, "large" 0.40; the headline said "170.8% of the large model alone"
    s = summary()
    s.systems["small"].pass_at_1, s.systems["large"].pass_at_1 = 0.66, 0.40
    s.systems["cascade"].pass_at_1, s.systems["cascade"].relative_pass_at_1 = 0.68, 0.68 / 0.66
    s.better_tier, s.worse_tier = BetterTier("small", "tiny", 0.66), BetterTier("large", "huge", 0.40)
    line = headline(s)
    assert "103.0% of the better single tier (small only (tiny), 66.0%)" in line
    assert "the small tier alone beats the large tier alone (40.0%)" in line
    assert "of the large model alone" not in line


def test_no_plot_without_scores(tmp_path: Path) -> None:
    s = summary()
    for row in s.systems.values():
        row.pass_at_1 = None
    s.better_tier = s.worse_tier = None
    files = write_report(tmp_path, s)
    assert TRADEOFF_PNG not in {f.name for f in files}
    assert (tmp_path / "report.md").is_file()


def test_report_when_the_tiers_score_zero_and_cost_nothing(tmp_path: Path) -> None:
    # the embedded CPU demo: a 270M model may solve none of the tasks, and CPU tiers have no GPU price,
    # so the comparison leaves out the relative figures (no division by zero)
    s = summary()
    for row in s.systems.values():
        row.pass_at_1 = 0.0
        row.cost_usd = 0.0
        row.relative_pass_at_1 = row.relative_cost = row.apgr = row.ceiling_share = None
    s.better_tier, s.worse_tier = BetterTier("small", "tiny", 0.0), BetterTier("large", "huge", 0.0)
    files = write_report(tmp_path, s)
    md = (tmp_path / "report.md").read_text()
    assert "reaches 0.0% pass@1, n/a of the better single tier (small only (tiny), 0.0%)" in md
    assert "GPU cost" not in md.split("\n| system")[0]
    assert TRADEOFF_PNG in {f.name for f in files}


def test_the_sandbox_opt_out_is_printed_in_the_report(tmp_path: Path) -> None:
    isolated = summary()
    isolated.isolation = "pid+mount+net namespaces"
    write_report(tmp_path / "a", isolated)
    md = (tmp_path / "a" / "report.md").read_text()
    assert "ran isolated: pid+mount+net namespaces" in md and "UNSAFE" not in md
    unsafe = summary()
    unsafe.unsafe_no_sandbox, unsafe.isolation = True, "NONE (unsafe_no_sandbox): a plain subprocess"
    write_report(tmp_path / "b", unsafe)
    assert "UNSAFE: benchmark.unsafe_no_sandbox was set" in (tmp_path / "b" / "report.md").read_text()
    assert "UNSAFE" in (tmp_path / "b" / "report.html").read_text()


def test_benchmark_report_puts_throughput_beside_latency(tmp_path: Path) -> None:
    from routerllm.report import BENCHMARK_COLUMNS, benchmark_row, write_benchmark_report

    summary = {"model": "tiny", "num_tasks": 10, "pass@1": 0.5, "tasks_per_hour": 1234.4, "batch_tasks_mean": 4.0,
               "tokens_per_s": 12.3, "latency_s": {"mean": 2.5, "p95": 3.0}, "queue_wait_s": {"mean": 6.0},
               "task_latency_s": {"mean": 8.5, "p95": 12.0}, "co2_kg": 0.002, "timing": "measured",
               "status": "complete"}
    row = dict(zip(BENCHMARK_COLUMNS, benchmark_row(summary)))
    assert row["tasks/hour"] == "1234" and row["task latency mean s"] == "8.5" and row["answer mean s"] == "2.50"
    assert row["queue wait mean s"] == "6.0" and row["CO2 g/task"] == "0.200" and row["pass@1"] == "50.0%"
    text = write_benchmark_report(tmp_path, summary).read_text()
    assert "| tasks/hour |" in text and "| task latency mean s |" in text
    assert "| 1234 |" in text and "queue wait" in text.lower()
    assert "n/a" in benchmark_row({"model": "x"})  # figures a run does not have are n/a, not errors

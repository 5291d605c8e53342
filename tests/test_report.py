"""The report: markdown, HTML and PNG plots from a real comparison summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from routerllm.report import CO2_PNG, LATENCY_PNG, TRADEOFF_PNG, table_rows, write_report


def summary() -> dict:
    def system(p, share, small_calls, lat, co2, cost):
        return {"tasks": 10, "pass_at_1": p, "large_share": share, "small_calls_per_task": small_calls,
                "large_calls_per_task": share, "latency_s": {"mean": lat, "p50": lat * 0.9, "p95": lat * 2},
                "co2_kg": co2, "cost_usd": cost, "relative_pass_at_1": p / 0.8, "relative_cost": cost / 1.0}
    return {
        "tasks": 10,
        "tiers": {"small": ["tiny"], "large": "huge"},
        "timing": {"tiny": "modelled", "huge": "modelled"},
        "systems": {
            "small": system(0.3, 0.0, 1.0, 2.0, 0.001, 0.1),
            "large": system(0.8, 1.0, 0.0, 20.0, 0.01, 1.0),
            "cascade": system(0.8, 0.5, 3.0, 15.0, 0.006, 0.6),
            "random": system(0.55, 0.5, 0.5, 11.0, 0.005, 0.5),
        },
        "oracle": {"pass_at_1": 0.85, "large_share": 0.5},
        "learned_cv": {"curve": [{"target": t, "large_share": t, "pass_at_1": 0.3 + 0.5 * t} for t in (0, 0.5, 1)],
                       "auc": 0.6, "folds": 5, "features": 45, "tasks": 10},
    }


def test_report_files_and_plots(tmp_path: Path) -> None:
    files = write_report(tmp_path, summary())
    names = {f.name for f in files}
    assert {"report.md", "report.html", TRADEOFF_PNG, LATENCY_PNG, CO2_PNG} <= names
    for png in (TRADEOFF_PNG, LATENCY_PNG, CO2_PNG):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (tmp_path / "report.md").read_text()
    assert md.index(TRADEOFF_PNG) < md.index("| system")  # the answer first
    assert "**cascade** reaches 80.0% pass@1" in md
    assert "MODELLED" in md and "oracle" in md
    html = (tmp_path / "report.html").read_text()
    assert f'src="{TRADEOFF_PNG}"' in html and "<table>" in html


def test_table_rows() -> None:
    rows = table_rows(summary())
    assert rows[0][0] == "small only (tiny)" and rows[1][0] == "large only (huge)"
    assert rows[-1][0].startswith("oracle") and rows[-1][1] == "85.0%"


def test_no_plot_without_scores(tmp_path: Path) -> None:
    s = summary()
    for row in s["systems"].values():
        row["pass_at_1"] = None
    files = write_report(tmp_path, s)
    assert TRADEOFF_PNG not in {f.name for f in files}
    assert (tmp_path / "report.md").is_file()


def test_report_when_the_large_model_scores_zero_and_costs_nothing(tmp_path: Path) -> None:
    # the embedded CPU demo: a 270M model may solve none of the tasks, and CPU tiers have no GPU price,
    # so the comparison leaves out the relative figures (no division by zero)
    s = summary()
    for row in s["systems"].values():
        row["pass_at_1"] = 0.0
        row["cost_usd"] = 0.0
        del row["relative_pass_at_1"], row["relative_cost"]
    files = write_report(tmp_path, s)
    md = (tmp_path / "report.md").read_text()
    assert "reaches 0.0% pass@1 (n/a of the large model alone, 0.0%)" in md
    assert "GPU cost" not in md.split("\n| system")[0]
    assert TRADEOFF_PNG in {f.name for f in files}

"""The comparison report: `report.md`, `report.html` and PNG plots in the run directory, from a
records.ComparisonSummary.

Every figure is measured against the BETTER single tier, named in the headline (the small tier
alone can beat the large one). The first plot answers the question the project exists for: pass@1
against the share of tasks that reached the large model, for every system, with the line random
routing would follow (from small-only to large-only), the floor (the share of tasks no answer of
an earlier tier solves: a router cannot send fewer to the large tier and lose nothing), the
perfect-checker ceiling and the oracle. Points above the line route better than chance at the
same share of large calls. The table adds false accepts (answers accepted on the visible examples
that fail the hidden tests), APGR (RouteLLM), throughput beside latency, CO2 and cost.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

from routerllm.records import ComparisonSummary, SystemSummary

logger = logging.getLogger(__name__)

TRADEOFF_PNG = "tradeoff.png"
LATENCY_PNG = "latency.png"
CO2_PNG = "co2_cost.png"

_COLORS = {
    "small": "#7f7f7f", "large": "#000000", "random": "#bcbd22", "heuristic": "#ff7f0e",
    "cascade": "#1f77b4",
}


def _fmt(value: Any, spec: str = ".3f", none: str = "n/a") -> str:
    if value is None:
        return none
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def _order(systems: dict[str, Any]) -> list[str]:
    first = [s for s in ("small", "large") if s in systems]
    return first + sorted(s for s in systems if s not in first)


def _label(name: str, summary: ComparisonSummary) -> str:
    if name == "small" and summary.chain:
        return f"small only ({summary.chain[0]})"
    if name == "large" and summary.chain:
        return f"large only ({summary.chain[-1]})"
    return name


# --------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------

def plot_tradeoff(summary: ComparisonSummary, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary.systems
    small, large = systems.get("small"), systems.get("large")
    if small is None or large is None or small.pass_at_1 is None or large.pass_at_1 is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 6.2), dpi=120)
    x0, y0 = small.large_share, small.pass_at_1
    x1, y1 = large.large_share, large.pass_at_1
    ax.plot([x0, x1], [y0, y1], linestyle="--", color="#999999", linewidth=1.5,
            label="random routing (expected: small-only → large-only)")
    best = summary.better_tier
    if best is not None:
        ax.axhline(best.pass_at_1, color="#000000", linestyle=":", linewidth=1, alpha=0.6)
        ax.text(0.01, best.pass_at_1, f" better single tier ({best.tier}): {best.pass_at_1:.1%}", va="bottom",
                ha="left", fontsize=8, color="#333333", transform=ax.get_yaxis_transform())
    if summary.floor is not None:
        ax.axvline(summary.floor, color="#8c564b", linestyle="-.", linewidth=1, alpha=0.7,
                   label=f"floor: {summary.floor:.0%} of tasks no earlier tier's answer solves")
    if summary.ceiling_pass_at_1 is not None and summary.floor is not None:
        ax.scatter([summary.floor], [summary.ceiling_pass_at_1], marker="P", s=160, color="#8c564b", zorder=5,
                   label=f"perfect checker: {summary.ceiling_pass_at_1:.1%} at {summary.floor:.0%} large")
    if summary.oracle_pass_at_1 is not None and summary.oracle_large_share is not None:
        ax.scatter([summary.oracle_large_share], [summary.oracle_pass_at_1], marker="*", s=260, color="#d62728",
                   zorder=5, label=f"oracle (any tier's first answer): {summary.oracle_pass_at_1:.1%} at "
                                   f"{summary.oracle_large_share:.0%} large")
    placed: list[tuple[float, float]] = []
    values = []
    for name in _order(systems):
        row = systems[name]
        if row.pass_at_1 is None:
            continue
        values.append(row.pass_at_1)
        color = _COLORS.get(name, "#9467bd")
        size = 140 if name == "cascade" else 90
        ax.scatter([row.large_share], [row.pass_at_1], s=size, color=color, zorder=6, edgecolor="white",
                   linewidth=1.2, label=f"{_label(name, summary)}: {row.pass_at_1:.1%} at {row.large_share:.0%} large")
        near = sum(1 for (px, py) in placed if abs(px - row.large_share) < 0.04 and abs(py - row.pass_at_1) < 0.02)
        placed.append((row.large_share, row.pass_at_1))
        ax.annotate(name, (row.large_share, row.pass_at_1), textcoords="offset points",
                    xytext=(7, -12 - 11 * near), fontsize=9, color=color, fontweight="bold")
    ax.set_xlim(-0.03, 1.05)
    tops = [v for v in (summary.oracle_pass_at_1, summary.ceiling_pass_at_1) if v is not None]
    lo, hi = min(values), max(values + tops)
    ax.set_ylim(max(0.0, lo - 0.08), min(1.02, hi + 0.06))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of tasks that reached the large model (cost)")
    ax.set_ylabel("pass@1 (hidden HumanEval tests)")
    ax.set_title(f"Accuracy vs large-model use, {summary.tasks} tasks\n"
                 "above the dashed line = better than random routing at the same share", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_latency(summary: ComparisonSummary, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary.systems
    names = [n for n in _order(systems) if systems[n].latency_s.mean is not None]
    if not names:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    xs = list(range(len(names)))
    queue = [systems[n].queue_s_mean or 0.0 for n in names]
    gen = [systems[n].generation_s_mean or 0.0 for n in names]
    check = [systems[n].check_s_mean or 0.0 for n in names]
    ax.bar(xs, gen, width=0.5, label="generation (mean)", color="#1f77b4")
    ax.bar(xs, check, width=0.5, bottom=gen, label="checks (mean)", color="#aec7e8")
    ax.bar(xs, queue, width=0.5, bottom=[g + c for g, c in zip(gen, check)], label="queue wait (mean)", color="#ffbb78")
    ax.scatter(xs, [systems[n].latency_s.p95 for n in names], marker="_", s=400, color="#d62728", zorder=5, label="p95")
    ax.set_xticks(xs)
    ax.set_xticklabels(names)
    timing = ", ".join(f"{k}: {v}" for k, v in summary.timing.items())
    ax.set_ylabel("seconds per task")
    ax.set_title(f"Latency per task ({timing})", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    bx.bar(xs, [systems[n].tasks_per_hour or 0.0 for n in names], width=0.5,
           color=[_COLORS.get(n, "#9467bd") for n in names])
    bx.set_xticks(xs)
    bx.set_xticklabels(names)
    bx.set_ylabel("tasks per hour")
    bx.set_title("Throughput (tasks batched by stage)", fontsize=9)
    bx.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_co2_cost(summary: ComparisonSummary, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary.systems
    names = _order(systems)
    co2 = [systems[n].co2_kg for n in names]
    cost = [systems[n].cost_usd for n in names]
    if all(c is None for c in co2) and not any(cost):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    a1.bar(names, [1000 * (c or 0.0) for c in co2], color=[_COLORS.get(n, "#9467bd") for n in names])
    for i, c in enumerate(co2):
        if c is None:
            a1.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
    a1.set_ylabel("g CO2eq (all tasks)")
    a1.set_title("CO2 (a batch's energy split by token share)", fontsize=10)
    a2.bar(names, [c or 0.0 for c in cost], color=[_COLORS.get(n, "#9467bd") for n in names])
    a2.set_ylabel("USD (all tasks, from $/GPU-hour)")
    a2.set_title("GPU cost", fontsize=10)
    for ax in (a1, a2):
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------------

COLUMNS = ["system", "pass@1", "vs better tier", "large share", "false accepts", "APGR", "of ceiling",
           "small calls/task", "large calls/task", "latency mean s", "p95 s", "queue mean s", "tasks/hour",
           "CO2 g", "cost $"]


def table_rows(summary: ComparisonSummary) -> list[list[str]]:
    rows = []
    systems = summary.systems
    for name in _order(systems):
        r = systems[name]
        rows.append([
            _label(name, summary),
            _fmt(r.pass_at_1, ".1%"),
            _fmt(r.relative_pass_at_1, ".1%"),
            _fmt(r.large_share, ".1%"),
            _fmt(r.false_accepts, "d", none="-"),
            _fmt(r.apgr, ".2f", none="-"),
            _fmt(r.ceiling_share, ".1%"),
            _fmt(r.small_calls_per_task, ".2f"),
            _fmt(r.large_calls_per_task, ".2f"),
            _fmt(r.latency_s.mean, ".2f"),
            _fmt(r.latency_s.p95, ".2f"),
            _fmt(r.queue_s_mean, ".2f"),
            _fmt(r.tasks_per_hour, ".0f"),
            _fmt(None if r.co2_kg is None else 1000 * r.co2_kg, ".2f"),
            _fmt(r.cost_usd, ".3f"),
        ])
    best = summary.better_tier.pass_at_1 if summary.better_tier else None
    blank = [""] * (len(COLUMNS) - 4)
    if summary.ceiling_pass_at_1 is not None:
        rows.append(["perfect checker (accepts exactly the right answers)", _fmt(summary.ceiling_pass_at_1, ".1%"),
                     _fmt(summary.ceiling_pass_at_1 / best if best else None, ".1%"), _fmt(summary.floor, ".1%"), *blank])
    if summary.oracle_pass_at_1 is not None:
        rows.append(["oracle (any tier's first answer)", _fmt(summary.oracle_pass_at_1, ".1%"),
                     _fmt(summary.oracle_pass_at_1 / best if best else None, ".1%"),
                     _fmt(summary.oracle_large_share, ".1%"), *blank])
    return rows


def best_router(summary: ComparisonSummary) -> str | None:
    """The routing system (not a baseline) with the highest pass@1, the lower large share on ties."""
    candidates = [(r.pass_at_1, -r.large_share, name) for name, r in summary.systems.items()
                  if name not in ("small", "large") and r.pass_at_1 is not None]
    return max(candidates)[2] if candidates else None


def headline(summary: ComparisonSummary) -> str:
    name = best_router(summary)
    best = summary.better_tier
    if name is None or best is None:
        return ""
    r: SystemSummary = summary.systems[name]
    # relative figures are absent when the better tier scores 0 or costs nothing (CPU tiers)
    relative = _fmt(r.relative_pass_at_1, ".1%")
    worse = summary.worse_tier
    which = f"{best.system} only ({best.tier}), {best.pass_at_1:.1%}"
    text = f"**{name}** reaches {r.pass_at_1:.1%} pass@1, {relative} of the better single tier ({which})"
    if best.system == "small" and worse is not None and best.pass_at_1 > worse.pass_at_1:
        text += f"; note that the small tier alone beats the large tier alone ({worse.pass_at_1:.1%})"
    text += f", sending {r.large_share:.0%} of tasks to the large tier"
    if summary.floor is not None:
        text += f" (floor {summary.floor:.0%}: tasks no earlier tier's answer solves)"
    if r.false_accepts is not None:
        text += f"; {r.false_accepts} false accept(s) in {r.tasks} tasks"
    if r.apgr is not None:
        text += f"; APGR {r.apgr:.2f}"
    if r.ceiling_share is not None:
        text += f"; {r.ceiling_share:.0%} of the perfect-checker ceiling ({summary.ceiling_pass_at_1:.1%})"
    if r.relative_cost is not None:
        text += f"; {r.relative_cost:.0%} of the large tier's GPU cost"
    return text + "."


def write_report(run_dir: str | Path, summary: ComparisonSummary) -> list[Path]:
    """Write report.md, report.html and the PNGs into run_dir; returns the files written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plots = [
        ("Accuracy vs share of large-model calls", plot_tradeoff(summary, run_dir / TRADEOFF_PNG)),
        ("Latency and throughput per system", plot_latency(summary, run_dir / LATENCY_PNG)),
        ("CO2 and cost per system", plot_co2_cost(summary, run_dir / CO2_PNG)),
    ]
    plots = [(t, p) for t, p in plots if p is not None]
    rows = table_rows(summary)
    notes = _notes(summary)

    md = [f"# routerllm comparison: {summary.tasks} HumanEval tasks", ""]
    head_line = headline(summary)
    if head_line:
        md += [head_line, ""]
    for title, p in plots[:1]:
        md += [f"![{title}]({p.name})", ""]
    md += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""]
    for title, p in plots[1:]:
        md += [f"![{title}]({p.name})", ""]
    md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (run_dir / "report.md").write_text("\n".join(md))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    imgs = "".join(f'<figure><img src="{p.name}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption></figure>'
                   for t, p in plots)
    headline_html = html.escape(head_line.replace("**", "")) if head_line else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>routerllm comparison</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>routerllm comparison: {summary.tasks} HumanEval tasks</h1><p>{headline_html}</p>
{imgs[: imgs.find('</figure>') + 9] if imgs else ''}
<table><tr>{head}</tr>{body}</table>
{imgs[imgs.find('</figure>') + 9:] if imgs else ''}
<h2>Notes</h2><ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes)}</ul></body></html>"""
    (run_dir / "report.html").write_text(page)
    return [run_dir / "report.md", run_dir / "report.html", *(p for _, p in plots)]


def _notes(summary: ComparisonSummary) -> list[str]:
    notes = []
    if summary.unsafe_no_sandbox:
        notes.append("UNSAFE: benchmark.unsafe_no_sandbox was set: where this machine could not isolate it, "
                     f"generated code ran WITHOUT isolation (sandbox: {summary.isolation or 'not started'}).")
    elif summary.isolation:
        notes.append(f"Generated code ran isolated: {summary.isolation}.")
    if summary.chain:
        notes.append(f"Tiers, cheapest first: {' -> '.join(summary.chain)} (the last is the large tier).")
    modelled = [k for k, v in summary.timing.items() if v == "modelled"]
    if modelled:
        notes.append(f"Latency, energy and CO2 of {', '.join(modelled)} are MODELLED from the tier's cost model "
                     "(recorded generations carry no timings), not measured.")
    measured = [k for k, v in summary.timing.items() if v == "measured"]
    if measured:
        parts = summary.carbon.get("parts", {})
        how = ", ".join(f"{p}: {d.get('status')}" for p, d in parts.items()) if parts else "n/a"
        notes.append(f"Timings of {', '.join(measured)} are measured on this machine; energy by codecarbon ({how}).")
    notes.append("pass@1 is scored with the hidden HumanEval tests by the Judge (tests on a trusted side, generated code in a jail); routing never sees them "
                 "(the cascade checks only what the prompt shows: its visible examples, the types of results "
                 "next to them, and agreement between answers).")
    if summary.better_tier is not None:
        notes.append(f"'vs better tier' is against {summary.better_tier.system} only ({summary.better_tier.tier}, "
                     f"{summary.better_tier.pass_at_1:.1%}), the better of the two single tiers; APGR (RouteLLM) is 0 "
                     "at the worse tier's level, 1 at the better's, 0.5 for random routing.")
    notes.append("A false accept is an answer a router accepted on the visible examples (from a tier before the "
                 "last) that fails the hidden tests. The floor is the share of tasks no answer of an earlier tier "
                 "(within the cascade's sample budget) solves; the perfect checker accepts exactly the right ones.")
    notes.append("Tasks are batched by stage (router.task_batch): latency = queue wait + generation + checks on the "
                 "run's clock, a stage batch taking as long as its longest member; tasks/hour = tasks / total clock. "
                 "Large share = share of tasks for which the large model was called; cost = tier seconds x GPUs x $/GPU-hour.")
    cascade = summary.systems.get("cascade")
    if cascade is not None and cascade.states:
        states = ", ".join(f"{k}: {v}" for k, v in sorted(cascade.states.items()))
        notes.append(f"Cascade steps ended (last checked tier): {states}; {cascade.small_calls_per_task:.2f} small-tier "
                     "answers per task on average.")
    if summary.calibration.get("source"):
        notes.append(f"Tier calibration: {summary.calibration['source']}.")
    if summary.skip_execution:
        notes.append("--skip-execution: answers were not scored, pass@1 is not available.")
    if summary.status and summary.status != "complete":
        notes.append(f"Run status: {summary.status} (resume with --resume {summary.run_dir}).")
    return notes


# --------------------------------------------------------------------------------------------------
# the one-model benchmark (runner.run_benchmark): throughput beside per-task latency
# --------------------------------------------------------------------------------------------------

BENCHMARK_COLUMNS = ["model", "tasks", "pass@1", "batch (tasks)", "tasks/hour", "tokens/s", "answer mean s",
                     "answer p95 s", "queue wait mean s", "task latency mean s", "task latency p95 s",
                     "CO2 g/task", "timing"]


def benchmark_row(summary: dict[str, Any]) -> list[str]:
    """One benchmark run's summary.json as a table row (BENCHMARK_COLUMNS)."""
    p = lambda key, stat: (summary.get(key) or {}).get(stat)  # noqa: E731
    tasks = summary.get("num_tasks") or 0
    co2 = summary.get("co2_kg")
    timing = summary.get("timing")
    return [
        str(summary.get("model", "?")),
        str(tasks),
        _fmt(summary.get("pass@1"), ".1%"),
        _fmt(summary.get("batch_tasks_mean"), ".1f"),
        _fmt(summary.get("tasks_per_hour"), ".0f"),
        _fmt(summary.get("tokens_per_s"), ".1f"),
        _fmt(p("latency_s", "mean"), ".2f"),
        _fmt(p("latency_s", "p95"), ".2f"),
        _fmt(p("queue_wait_s", "mean"), ".1f"),
        _fmt(p("task_latency_s", "mean"), ".1f"),
        _fmt(p("task_latency_s", "p95"), ".1f"),
        _fmt(None if co2 is None or not tasks else 1000 * co2 / tasks, ".3f"),
        ", ".join(timing) if isinstance(timing, list) else str(timing or "n/a"),
    ]


def write_benchmark_report(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """report.md of a benchmark run: throughput (tasks/hour) beside per-task latency, and what each
    figure means (batching trades one for the other)."""
    run_dir = Path(run_dir)
    row = benchmark_row(summary)
    md = [f"# routerllm benchmark: {summary.get('model', '?')} on {summary.get('num_tasks', 0)} HumanEval tasks", "",
          "| " + " | ".join(BENCHMARK_COLUMNS) + " |", "|" + "---|" * len(BENCHMARK_COLUMNS),
          "| " + " | ".join(row) + " |", "", "## Notes", ""]
    notes = [
        "Tasks are generated in cross-task batches (models.<tier>.batch_size): one pass over the weights per "
        "decoding step serves every row of a batch, so throughput grows with the batch while each answer "
        "takes longer.",
        "tasks/hour = tasks / the generation time of their batches (each batch once; loading and scoring "
        "excluded); tokens/s = generated tokens over the samples' decoding time.",
        "answer s: one answer's own time, from its batch's start until that row stopped. Queue wait: from "
        "the moment the run queued every pending task (after the model loaded) until the task's batch "
        "started. Task latency = queue wait + its batch's generation time.",
        "Energy and CO2 of a batch are split over its tasks by generated tokens.",
    ]
    if summary.get("timing") == "modelled":
        notes.append("Timings, energy and CO2 are MODELLED from the tier's cost model (replayed answers).")
    if summary.get("unsafe_no_sandbox"):
        notes.append(f"UNSAFE: benchmark.unsafe_no_sandbox was set (sandbox: {summary.get('sandbox') or 'not started'}).")
    if summary.get("status") and summary.get("status") != "complete":
        notes.append(f"Run status: {summary['status']}.")
    md += [f"- {n}" for n in notes] + [""]
    path = run_dir / "report.md"
    path.write_text("\n".join(md))
    return path

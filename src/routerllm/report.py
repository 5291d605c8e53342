"""The comparison report: `report.md`, `report.html` and PNG plots in the run directory.

The first plot answers the question the project exists for: pass@1 against the share of tasks
that reached the large model, for every system, with the line random routing would follow (from
small-only to large-only) and the oracle (a task counts if any tier solves it). Points above the
line route better than chance at the same share of large calls; the closer to the top-left, the
better. Then latency and CO2/cost per system.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TRADEOFF_PNG = "tradeoff.png"
LATENCY_PNG = "latency.png"
CO2_PNG = "co2_cost.png"

_COLORS = {
    "small": "#7f7f7f", "large": "#000000", "random": "#bcbd22", "heuristic": "#ff7f0e",
    "cascade": "#1f77b4", "learned": "#2ca02c",
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


def _label(name: str, tiers: dict[str, Any]) -> str:
    if name == "small":
        return f"small only ({', '.join(tiers.get('small', []))})"
    if name == "large":
        return f"large only ({tiers.get('large')})"
    return name


# --------------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------------

def plot_tradeoff(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary["systems"]
    small, large = systems.get("small", {}), systems.get("large", {})
    if small.get("pass_at_1") is None or large.get("pass_at_1") is None:
        return None
    fig, ax = plt.subplots(figsize=(9, 6.2), dpi=120)
    x0, y0 = small["large_share"], small["pass_at_1"]
    x1, y1 = large["large_share"], large["pass_at_1"]
    ax.plot([x0, x1], [y0, y1], linestyle="--", color="#999999", linewidth=1.5,
            label="random routing (expected: small-only → large-only)")
    ax.axhline(y1, color="#000000", linestyle=":", linewidth=1, alpha=0.6)
    ax.text(0.01, y1, f" large only: {y1:.1%}", va="bottom", ha="left", fontsize=8, color="#333333",
            transform=ax.get_yaxis_transform())
    curve = summary.get("learned_cv", {}).get("curve")
    if curve:
        pts = sorted((c["large_share"], c["pass_at_1"]) for c in curve)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=_COLORS["learned"], alpha=0.45, linewidth=1.5,
                marker=".", markersize=4, label="learned, every calibration target (cross-validated)")
    oracle = summary.get("oracle")
    if oracle:
        ax.scatter([oracle["large_share"]], [oracle["pass_at_1"]], marker="*", s=260, color="#d62728", zorder=5,
                   label=f"oracle (any tier solves): {oracle['pass_at_1']:.1%} at {oracle['large_share']:.0%} large")
    placed: list[tuple[float, float]] = []
    for name in _order(systems):
        row = systems[name]
        if row.get("pass_at_1") is None:
            continue
        color = _COLORS.get(name, "#9467bd")
        size = 140 if name in ("cascade",) else 90
        ax.scatter([row["large_share"]], [row["pass_at_1"]], s=size, color=color, zorder=6, edgecolor="white",
                   linewidth=1.2, label=f"{_label(name, summary.get('tiers', {}))}: {row['pass_at_1']:.1%} at "
                                        f"{row['large_share']:.0%} large")
        near = sum(1 for (px, py) in placed if abs(px - row["large_share"]) < 0.04 and abs(py - row["pass_at_1"]) < 0.02)
        placed.append((row["large_share"], row["pass_at_1"]))
        ax.annotate(name, (row["large_share"], row["pass_at_1"]), textcoords="offset points",
                    xytext=(7, -12 - 11 * near), fontsize=9, color=color, fontweight="bold")
    ax.set_xlim(-0.03, 1.05)
    lo = min(y0, *(r["pass_at_1"] for r in systems.values() if r.get("pass_at_1") is not None))
    hi = max(y1, oracle["pass_at_1"] if oracle else 0, *(r["pass_at_1"] for r in systems.values() if r.get("pass_at_1") is not None))
    ax.set_ylim(max(0.0, lo - 0.08), min(1.02, hi + 0.06))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of tasks that reached the large model (cost)")
    ax.set_ylabel("pass@1 (hidden HumanEval tests)")
    ax.set_title(f"Accuracy vs large-model use, {summary.get('tasks')} tasks\n"
                 "above the dashed line = better than random routing at the same share", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_latency(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary["systems"]
    names = [n for n in _order(systems) if systems[n].get("latency_s", {}).get("mean") is not None]
    if not names:
        return None
    means = [systems[n]["latency_s"]["mean"] for n in names]
    p50 = [systems[n]["latency_s"]["p50"] for n in names]
    p95 = [systems[n]["latency_s"]["p95"] for n in names]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    xs = range(len(names))
    ax.bar([x - 0.27 for x in xs], means, width=0.27, label="mean", color="#1f77b4")
    ax.bar(list(xs), p50, width=0.27, label="p50", color="#aec7e8")
    ax.bar([x + 0.27 for x in xs], p95, width=0.27, label="p95", color="#ff7f0e")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names)
    timing = ", ".join(f"{k}: {v}" for k, v in summary.get("timing", {}).items())
    ax.set_ylabel("seconds per task")
    ax.set_title(f"Latency per task ({timing})", fontsize=10)
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_co2_cost(summary: dict[str, Any], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = summary["systems"]
    names = _order(systems)
    co2 = [systems[n].get("co2_kg") for n in names]
    cost = [systems[n].get("cost_usd") for n in names]
    if all(c is None for c in co2) and not any(cost):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    a1.bar(names, [1000 * (c or 0.0) for c in co2], color=[_COLORS.get(n, "#9467bd") for n in names])
    for i, c in enumerate(co2):
        if c is None:
            a1.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8)
    a1.set_ylabel("g CO2eq (all tasks)")
    a1.set_title("CO2", fontsize=10)
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

COLUMNS = ["system", "pass@1", "vs large", "large share", "small calls/task", "large calls/task",
           "latency mean s", "p50 s", "p95 s", "CO2 g", "cost $"]


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    systems = summary["systems"]
    for name in _order(systems):
        r = systems[name]
        lat = r.get("latency_s", {})
        rows.append([
            _label(name, summary.get("tiers", {})),
            _fmt(r.get("pass_at_1"), ".1%"),
            _fmt(r.get("relative_pass_at_1"), ".1%"),
            _fmt(r.get("large_share"), ".1%"),
            _fmt(r.get("small_calls_per_task"), ".2f"),
            _fmt(r.get("large_calls_per_task"), ".2f"),
            _fmt(lat.get("mean"), ".2f"),
            _fmt(lat.get("p50"), ".2f"),
            _fmt(lat.get("p95"), ".2f"),
            _fmt(None if r.get("co2_kg") is None else 1000 * r["co2_kg"], ".2f"),
            _fmt(r.get("cost_usd"), ".3f"),
        ])
    oracle = summary.get("oracle")
    if oracle:
        large = systems.get("large", {}).get("pass_at_1")
        rows.append(["oracle (any tier solves)", _fmt(oracle["pass_at_1"], ".1%"),
                     _fmt(oracle["pass_at_1"] / large if large else None, ".1%"), _fmt(oracle["large_share"], ".1%"),
                     "", "", "", "", "", "", ""])
    return rows


def _headline(summary: dict[str, Any]) -> str:
    systems = summary["systems"]
    large = systems.get("large", {})
    best = None
    for name, r in systems.items():
        if name in ("small", "large") or r.get("pass_at_1") is None or large.get("pass_at_1") is None:
            continue
        if best is None or (r["pass_at_1"], -r["large_share"]) > (systems[best]["pass_at_1"], -systems[best]["large_share"]):
            best = name
    if best is None:
        return ""
    r = systems[best]
    # relative figures are absent when the large model alone scores 0 or costs nothing (CPU tiers)
    relative = _fmt(r.get("relative_pass_at_1"), ".1%")
    cost = r.get("relative_cost")
    return (f"**{best}** reaches {r['pass_at_1']:.1%} pass@1 ({relative} of the large model alone, "
            f"{large['pass_at_1']:.1%}) while sending {r['large_share']:.0%} of tasks to the large model"
            + (f", at {cost:.0%} of its GPU cost." if cost is not None else "."))


def write_report(run_dir: str | Path, summary: dict[str, Any]) -> list[Path]:
    """Write report.md, report.html and the PNGs into run_dir; returns the files written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plots = [
        ("Accuracy vs share of large-model calls", plot_tradeoff(summary, run_dir / TRADEOFF_PNG)),
        ("Latency per system", plot_latency(summary, run_dir / LATENCY_PNG)),
        ("CO2 and cost per system", plot_co2_cost(summary, run_dir / CO2_PNG)),
    ]
    plots = [(t, p) for t, p in plots if p is not None]
    rows = table_rows(summary)
    notes = _notes(summary)

    md = [f"# routerllm comparison: {summary.get('tasks')} HumanEval tasks", ""]
    headline = _headline(summary)
    if headline:
        md += [headline, ""]
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
    headline_html = html.escape(headline.replace("**", "")) if headline else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>routerllm comparison</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>routerllm comparison: {summary.get('tasks')} HumanEval tasks</h1><p>{headline_html}</p>
{imgs[: imgs.find('</figure>') + 9] if imgs else ''}
<table><tr>{head}</tr>{body}</table>
{imgs[imgs.find('</figure>') + 9:] if imgs else ''}
<h2>Notes</h2><ul>{''.join(f'<li>{html.escape(n)}</li>' for n in notes)}</ul></body></html>"""
    (run_dir / "report.html").write_text(page)
    return [run_dir / "report.md", run_dir / "report.html", *(p for _, p in plots)]


def _notes(summary: dict[str, Any]) -> list[str]:
    notes = []
    tiers = summary.get("tiers", {})
    notes.append(f"Tiers: small = {', '.join(tiers.get('small', []))}; large = {tiers.get('large')}.")
    timing = summary.get("timing", {})
    modelled = [k for k, v in timing.items() if v == "modelled"]
    if modelled:
        notes.append(f"Latency, energy and CO2 of {', '.join(modelled)} are MODELLED from the tier's cost model "
                     "(recorded generations carry no timings), not measured.")
    measured = [k for k, v in timing.items() if v == "measured"]
    if measured:
        carbon = summary.get("carbon", {})
        parts = carbon.get("parts", {})
        how = ", ".join(f"{p}: {d.get('status')}" for p, d in parts.items()) if parts else "n/a"
        notes.append(f"Timings of {', '.join(measured)} are measured on this machine; energy by codecarbon ({how}).")
    notes.append("pass@1 is scored with the hidden HumanEval tests in the sandbox; routing never sees them "
                 "(the cascade checks only the examples visible in the prompt).")
    notes.append("Large share = share of tasks for which the large model was called; cost = tier seconds x GPUs x $/GPU-hour.")
    cascade = summary.get("systems", {}).get("cascade", {})
    if (cascade.get("small_calls_per_task") or 0) > 1.05:
        notes.append(f"The cascade drew {cascade['small_calls_per_task']:.2f} small-model samples per task on average. "
                     "Samples requested together (router.cascade.sample_batch) decode as one batch and are charged "
                     "the time of their longest member; batches, and calls to different tiers, add up.")
    cv = summary.get("learned_cv")
    if cv:
        notes.append(f"learned: {cv['folds']}-fold cross-validation over {cv['tasks']} tasks, {cv['features']} prompt "
                     f"features, out-of-fold AUC {_fmt(cv.get('auc'), '.3f')}; thresholds calibrated on training folds only.")
    if summary.get("skip_execution"):
        notes.append("--skip-execution: answers were not scored, pass@1 is not available.")
    if summary.get("status") and summary["status"] != "complete":
        notes.append(f"Run status: {summary['status']} (resume with --resume {summary.get('run_dir')}).")
    return notes

"""`routerllm compare` (router systems vs the single tiers) and `routerllm calibrate` (measure how
strong each tier is, for the cascade). Heavy imports stay inside the command functions."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
    app.command("calibrate")(calibrate)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def compare(
    config: str = typer.Option(..., "--config", "-c", help="YAML config with the tiers and the router section"),
    num_examples: int = typer.Option(None, "--num-examples", "-n", help="first N HumanEval tasks (default: benchmark.num_examples)"),
    task_ids: str = typer.Option(None, "--task-ids", help="comma-separated task ids (e.g. HumanEval/0,HumanEval/5)"),
    use_large_model: bool = typer.Option(False, "--use-large-model", help="include the large tier (large-only baseline and every router that escalates)"),
    strategies: str = typer.Option(None, "--strategies", help="comma-separated strategies (default: router.strategies); small and large always run"),
    skip_execution: bool = typer.Option(False, "--skip-execution", help="generate and route only; do not score with the hidden tests"),
    results_dir: str = typer.Option(None, "--results-dir", help="where runs go (default: benchmark.results_dir)"),
    run_name: str = typer.Option(None, "--run-name", help="run directory name (default: compare-<UTC time>)"),
    resume: str = typer.Option(None, "--resume", help="continue the run in this directory (no finished task is redone)"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar (logs only)"),
) -> None:
    """Run router systems, the large tier alone and the small tier alone on the same tasks.

    Reports, against the better single tier (named): pass@1, the share of tasks sent to the large
    tier against the floor, false accepts, APGR, the share of the perfect-checker ceiling, calls
    per task, latency (queue wait, generation, checks) with throughput, CO2 and cost, in
    results/<run>/report.md, report.html and PNG plots. Tasks are batched by stage
    (router.task_batch), saved task by task and resumable with --resume.
    """
    import logging

    from routerllm.comparison import CompareOptions, run_comparison
    from routerllm.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(config)
    opts = CompareOptions(
        config=cfg,
        num_examples=num_examples if num_examples is not None else (None if resume or task_ids else cfg.benchmark.num_examples),
        task_ids=_split(task_ids),
        strategies=_split(strategies),
        use_large_model=use_large_model,
        skip_execution=skip_execution,
        results_dir=results_dir,
        run_name=run_name,
        resume=resume,
        progress=not no_progress,
    )
    outcome = run_comparison(opts)
    _print_table(outcome.summary)
    typer.echo(f"run: {outcome.run_dir} ({outcome.status})")
    for path in outcome.report_files:
        typer.echo(f"  {path}")
    if outcome.status != "complete":
        typer.echo(f"resume with: routerllm compare --config {config} --resume {outcome.run_dir}")
        raise typer.Exit(130)


def _print_table(summary) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    from routerllm.report import headline

    best = summary.better_tier
    table = Table(title="routerllm comparison" + (f" (vs the better single tier: {best.system} only, {best.tier})" if best else ""))
    for col in ("system", "pass@1", "vs better tier", "large share", "false accepts", "APGR", "small calls/task",
                "latency mean s", "tasks/hour"):
        table.add_column(col, justify="right" if col != "system" else "left")

    def pct(v):  # type: ignore[no-untyped-def]
        return "n/a" if v is None else f"{v:.1%}"

    def num(v, spec):  # type: ignore[no-untyped-def]
        return "-" if v is None else format(v, spec)

    for name, r in summary.systems.items():
        table.add_row(name, pct(r.pass_at_1), pct(r.relative_pass_at_1), pct(r.large_share), num(r.false_accepts, "d"),
                      num(r.apgr, ".2f"), f"{r.small_calls_per_task:.2f}", num(r.latency_s.mean, ".2f"),
                      num(r.tasks_per_hour, ".0f"))
    if summary.ceiling_pass_at_1 is not None:
        table.add_row("perfect checker", pct(summary.ceiling_pass_at_1), "", pct(summary.floor), "", "", "", "", "")
    if summary.oracle_pass_at_1 is not None:
        table.add_row("oracle", pct(summary.oracle_pass_at_1), "", pct(summary.oracle_large_share), "", "", "", "", "")
    console = Console()
    if not console.is_terminal:
        console.width = 160  # a log or a pipe: do not squeeze the columns to 80
    console.print(table)
    if summary.unsafe_no_sandbox:
        console.print(f"[red]UNSAFE: benchmark.unsafe_no_sandbox is set (sandbox: {summary.isolation})[/red]")
    elif summary.isolation:
        console.print(f"sandbox: {summary.isolation}")
    line = headline(summary)
    if line:
        console.print(line.replace("**", ""))


def calibrate(
    config: str = typer.Option(..., "--config", "-c", help="YAML config: the chain of tiers to calibrate (small_llms, then large_llm)"),
    output: str = typer.Option(..., "--output", "-o", help="JSON file to write (set router.calibration_path to it)"),
    num_examples: int = typer.Option(None, "--num-examples", "-n", help="calibrate on the first N tasks (default: all 164)"),
    task_ids: str = typer.Option(None, "--task-ids", help="comma-separated calibration task ids (tasks you will NOT evaluate on)"),
    from_run: str = typer.Option(None, "--from-run", help="reuse (and extend) the generations of a `routerllm compare` run directory"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Measure how strong each tier of the chain is, for the cascade.

    On the calibration tasks every tier runs the cascade's step (the same draws and checks) and its
    first answer; the Judge scores them with THOSE tasks' hidden tests. The file records each
    tier's visible-example pass rate, its pass@1, and how often its answer is right in each cascade
    state, so that the cascade never moves a task to a tier expected to do worse on it.
    `routerllm compare` without router.calibration_path does this itself, cross-fitted.
    """
    import logging

    from routerllm.calibrate import run_calibration
    from routerllm.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(config)
    calibration = run_calibration(cfg, output=output, num_examples=num_examples, task_ids=_split(task_ids),
                                  from_run=from_run, progress=not no_progress)
    typer.echo(f"wrote {output}: {calibration.source}")
    for name, stats in calibration.tiers.items():
        states = ", ".join(f"{k} {r}/{n}" for k, (n, r) in sorted(stats.states.items()))
        typer.echo(f"  {name}: visible-example pass rate {_pct(stats.visible_pass_rate)}, pass@1 {_pct(stats.accuracy)}"
                   + (f"; right when the step ends {states}" if states else ""))
    typer.echo(f"use it: router.calibration_path: {output}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"

"""`routerllm compare` (router systems vs the large model alone) and `routerllm calibrate`
(train the `learned` router). Heavy imports stay inside the command functions."""

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
    """Run router systems and the large model alone (and the small model alone) on the same tasks.

    Reports pass@1, the share of tasks sent to the large model, calls per task, latency
    mean/p50/p95, CO2 and cost, with the oracle, in results/<run>/report.md, report.html and PNG
    plots. Saved task by task and resumable with --resume.
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
    rows = []
    for name, row in outcome.summary["systems"].items():
        rows.append({
            "system": name,
            "pass@1": row.get("pass_at_1"),
            "vs_large": row.get("relative_pass_at_1"),
            "large_share": row.get("large_share"),
            "small_calls_per_task": row.get("small_calls_per_task"),
            "latency_mean_s": row.get("latency_s", {}).get("mean"),
        })
    _print_table(rows, outcome.summary.get("oracle"))
    typer.echo(f"run: {outcome.run_dir} ({outcome.status})")
    for path in outcome.report_files:
        typer.echo(f"  {path}")
    if outcome.status != "complete":
        typer.echo(f"resume with: routerllm compare --config {config} --resume {outcome.run_dir}")
        raise typer.Exit(130)


def _print_table(rows: list[dict], oracle: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="routerllm comparison")
    for col in ("system", "pass@1", "vs large", "large share", "small calls/task", "latency mean s"):
        table.add_column(col, justify="right" if col != "system" else "left")

    def pct(v):  # type: ignore[no-untyped-def]
        return "n/a" if v is None else f"{v:.1%}"

    for r in rows:
        lat = r["latency_mean_s"]
        table.add_row(r["system"], pct(r["pass@1"]), pct(r["vs_large"]), pct(r["large_share"]),
                      f"{r['small_calls_per_task']:.2f}", "n/a" if lat is None else f"{lat:.2f}")
    if oracle:
        table.add_row("oracle", pct(oracle["pass_at_1"]), "", pct(oracle["large_share"]), "", "")
    Console().print(table)


def calibrate(
    config: str = typer.Option(..., "--config", "-c", help="YAML config; its first small tier is the one predicted"),
    target_large_share: float = typer.Option(None, "--target-large-share", min=0.0, max=1.0,
                                             help="share of tasks to send to the large tier (default: router.target_large_share)"),
    output: str = typer.Option(..., "--output", "-o", help="JSON file to write (set router.learned_model_path to it)"),
    num_examples: int = typer.Option(None, "--num-examples", "-n", help="train on the first N tasks (default: all 164)"),
    from_run: str = typer.Option(None, "--from-run", help="take small-tier outcomes from a `routerllm compare` run directory"),
    embedding: bool = typer.Option(None, "--embedding/--no-embedding", help="add the all-MiniLM-L6-v2 prompt embedding (extra 'learned')"),
) -> None:
    """Train the `learned` router on recorded small-tier outcomes and calibrate its threshold.

    Outcomes come from the small tier's recorded verdicts (replay tiers), from a comparison run
    (--from-run), or by generating with the small tier and scoring in the sandbox. The threshold
    sends the target share of the training prompts to the large tier. 5-fold cross-validated AUC
    and large share are stored with the model (never scored on the tasks a fold trained on).
    """
    import logging

    from routerllm.config import load_config
    from routerllm.routing.calibration import run_calibration

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(config)
    model = run_calibration(cfg, output=output, target_large_share=target_large_share, num_examples=num_examples,
                            from_run=from_run, embedding=embedding)
    cv = model.cross_validation
    typer.echo(f"wrote {output}: threshold {model.threshold:.3f} for {model.target_large_share:.0%} large calls, "
               f"trained on {model.trained_on.get('tasks')} tasks; cross-validated AUC {cv.get('auc')}, "
               f"large share {cv.get('large_share')}")

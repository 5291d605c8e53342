"""Router systems against the large model alone (and the small model alone) on the same tasks.

    outcome = run_comparison(CompareOptions(config=load_config(...), num_examples=164))
    outcome.summary["systems"]["cascade"]["pass_at_1"], ...["large_share"], ...

Per task, every system answers the same prompt: the baselines `small` and `large` and the routing
strategies asked for (`--strategies`, default `router.strategies`). Generations are cached per
(tier, task, sample, temperature, prompt variant) in `<run>/generations.jsonl`, so strategies that
share a tier's answer do not regenerate it (the cascade's first small sample IS the small-only
answer), and a resumed run regenerates nothing it already has. Each system's answer is scored
with the task's hidden tests in the sandbox (they never take part in routing).

`learned` without a trained model file is evaluated by k-fold cross-validation once every task is
done: each task is routed by a model trained on the other folds' small-tier outcomes, with its
threshold calibrated on those folds to `router.target_large_share` (never on the task itself).

Per system the summary reports pass@1, share of tasks that reached the large tier, small- and
large-tier calls per task, latency mean/p50/p95 (the tiers' own timings: measured for local and
openai tiers, modelled for replay tiers; plus the sandbox time of the cascade's checks), energy
and CO2 (codecarbon for local tiers, the cost model for replay), and cost from the tiers'
$/GPU-hour. The oracle counts a task as solved if any tier solves it. Runs are durable and
resumable through `routerllm.runner.run_tasks`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from routerllm.backends.base import Backend, Generation, GenerationRequest, make_backend
from routerllm.exceptions import ConfigError, RoutingError, RunError
from routerllm.routing.base import RoutedAnswer, Strategy, Tiers, attempts_cost
from routerllm.routing.code import code_for
from routerllm.routing.registry import STRATEGIES, build_strategy

if TYPE_CHECKING:
    from routerllm.config import ModelConfig, RouterLLMConfig
    from routerllm.evaluation.carbon import CarbonTracker
    from routerllm.evaluation.humaneval import Task
    from routerllm.evaluation.sandbox import Sandbox

logger = logging.getLogger(__name__)

GENERATIONS_FILE = "generations.jsonl"
BASELINES = ("small", "large")
CV_FOLDS = 5
SHARE_SWEEP = [round(x, 2) for x in np.linspace(0.0, 1.0, 21)]


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
    sandbox: "Sandbox | None" = None
    cv_folds: int = CV_FOLDS


@dataclass
class ComparisonOutcome:
    run_dir: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    status: str
    report_files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------

def resolve_replay_paths(config: "RouterLLMConfig") -> None:
    """A relative `replay_file` is read from the working directory; when it is not there, from
    the repository that holds the config (the config's parent directory's parent: configs/..)."""
    roots = []
    if config.source is not None:
        source = Path(config.source).resolve()
        roots = [source.parent.parent, source.parent]
    for model in [config.models.large_llm, *config.models.small_llms]:
        if model.backend != "replay" or not model.replay_file:
            continue
        path = Path(model.replay_file).expanduser()
        if path.is_absolute() or path.exists():
            continue
        for root in roots:
            candidate = (root / path).resolve()
            if candidate.exists():
                model.replay_file = str(candidate)
                break
        else:
            raise ConfigError(
                f"models.{model.name}.replay_file",
                f"no recorded generations at {path} (looked in {Path.cwd()} and {', '.join(map(str, roots)) or '-'})",
                fix="run from the repository root (the recorded generations are in data/humaneval-generations/), "
                "or give an absolute path",
            )


# --------------------------------------------------------------------------------------------------
# tiers with a generation cache
# --------------------------------------------------------------------------------------------------

def _generation_to_dict(g: Generation) -> dict[str, Any]:
    return dataclasses.asdict(g)


def _generation_from_dict(d: dict[str, Any]) -> Generation:
    return Generation(**{k: d[k] for k in (f.name for f in dataclasses.fields(Generation)) if k in d})


class GenerationCache:
    """(tier, task, sample, temperature, variant) -> Generation, persisted as JSONL (fsync per line)."""

    def __init__(self, path: Path | None) -> None:
        from routerllm.runner import ResultsLog

        self.path = path
        self._log = ResultsLog(path) if path is not None else None
        self._entries: dict[str, dict[str, Any]] = {}
        if self._log is not None:
            for row in self._log.load(repair=True):
                self._entries[row["key"]] = row
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(tier: str, request: GenerationRequest, task: "Task") -> str:
        variant = ""
        if request.messages or request.prompt != task.prompt:
            blob = json.dumps([request.prompt, request.messages], sort_keys=True)
            variant = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return f"{tier}|{task.task_id}|{request.sample}|{request.temperature:.3f}|{variant}"

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.misses += 1
        entry = {"key": key, **entry}
        self._entries[key] = entry
        if self._log is not None:
            self._log.append(entry)


class CachedTier:
    """A tier's backend as the comparison sees it: the strategy's generic request is turned into
    this tier's request (chat template or continuation, its max_new_tokens and stop sequences),
    answers are cached, and each new generation's energy is measured (local tiers, codecarbon) or
    taken from the backend (replay: modelled)."""

    def __init__(self, name: str, model: "ModelConfig", backend: Backend, cache: GenerationCache,
                 tasks: dict[str, "Task"], carbon: "CarbonTracker | None", intensity: float | None) -> None:
        self.name = name
        self.model = model
        self.backend = backend
        self.cache = cache
        self.tasks = tasks
        self.carbon = carbon
        self.intensity = intensity

    def load(self) -> None:
        self.backend.load()

    def health(self) -> bool:
        return self.backend.health()

    def close(self) -> None:
        self.backend.close()

    def _tier_request(self, request: GenerationRequest, task: "Task") -> GenerationRequest:
        from routerllm.evaluation.prompting import build_request

        tier_request = build_request(task, self.model, sample=request.sample, temperature=request.temperature,
                                     seed=request.seed)
        if request.messages:
            tier_request.messages = request.messages
        if request.prompt != task.prompt:
            tier_request.prompt = request.prompt
        return tier_request

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            task = self.tasks.get(request.task_id or "")
            if task is None:
                raise RunError(f"request for unknown task {request.task_id!r}", fix="pass task_id of a loaded task")
            key = GenerationCache.key(self.name, request, task)
            entry = self.cache.get(key)
            if entry is None:
                tier_request = self._tier_request(request, task)
                measured: dict[str, Any] = {}
                if self.carbon is not None and self.model.backend != "replay":
                    with self.carbon.task(f"{self.name}:{key}") as measured:
                        (generation,) = self.backend.generate([tier_request])
                else:
                    (generation,) = self.backend.generate([tier_request])
                energy = generation.energy_kwh if generation.energy_kwh is not None else measured.get("energy_kwh")
                co2 = measured.get("co2_kg")
                if co2 is None and energy is not None and self.intensity is not None:
                    co2 = energy * self.intensity
                entry = {
                    "generation": _generation_to_dict(dataclasses.replace(generation, energy_kwh=energy)),
                    "co2_kg": co2,
                    "energy_source": "modelled" if generation.energy_kwh is not None else ("codecarbon" if measured else None),
                }
                self.cache.put(key, entry)
            generation = _generation_from_dict(entry["generation"])
            generation.extra = {**generation.extra, "co2_kg": entry.get("co2_kg"), "cache_key": key}
            out.append(generation)
        return out


# --------------------------------------------------------------------------------------------------
# one task
# --------------------------------------------------------------------------------------------------

def _cost_usd(model: "ModelConfig", seconds: float) -> float:
    return seconds / 3600.0 * model.cost.gpus * model.cost.usd_per_gpu_hour


def _compact_attempt(a: dict[str, Any]) -> dict[str, Any]:
    keep = ("tier", "sample", "batch", "temperature", "total_s", "completion_tokens", "timing", "repair",
            "examples_passed", "examples_failed", "failure", "fingerprint", "check_s")
    return {k: a[k] for k in keep if k in a}


class TaskScorer:
    """Scores an answer with the task's hidden tests (cached per generation)."""

    def __init__(self, sandbox: "Sandbox", tiers: Tiers, timeout_s: float) -> None:
        self.sandbox = sandbox
        self.tiers = tiers
        self.timeout_s = timeout_s
        self._cache: dict[str, dict[str, Any]] = {}

    def score(self, task: "Task", request: GenerationRequest, answer: RoutedAnswer) -> dict[str, Any]:
        key = f"{answer.decision.tier}|{answer.generation.extra.get('cache_key')}"
        if key not in self._cache:
            code = code_for(self.tiers, answer.decision.tier, request, answer.generation, task.entry_point)
            program = f"{code}\n\n{task.test}\n\ncheck({task.entry_point})\n"
            verdict = self.sandbox.run(program, timeout_s=self.timeout_s)
            self._cache[key] = {"passed": verdict.passed, "verdict": str(verdict)[:300]}
        return self._cache[key]


def system_record(answer: RoutedAnswer, tiers: Tiers, score: dict[str, Any] | None) -> dict[str, Any]:
    large = tiers.large_name
    small_names = {name for name, _ in tiers.small}
    # a batch of samples (cascade.sample_batch) costs its longest member: see routing.base.attempts_cost
    latency = attempts_cost(answer.attempts, "total_s") or 0.0
    energy = attempts_cost(answer.attempts, "energy_kwh")
    co2 = attempts_cost(answer.attempts, "co2_kg")
    cost = 0.0
    for tier_name in {a["tier"] for a in answer.attempts}:
        seconds = attempts_cost([a for a in answer.attempts if a["tier"] == tier_name], "total_s") or 0.0
        cost += _cost_usd(tiers.configs[tier_name], seconds) if tier_name in tiers.configs else 0.0
    timings = {a.get("timing") for a in answer.attempts}
    latency += float(answer.decision.details.get("check_s", 0.0) or 0.0)
    details = dict(answer.decision.details)
    return {
        "tier": answer.decision.tier,
        "escalated": answer.decision.escalated,
        "reason": answer.decision.reason,
        "details": details,
        "calls": dict(answer.calls),
        "large_calls": answer.calls.get(large, 0),
        "small_calls": sum(n for t, n in answer.calls.items() if t in small_names),
        "latency_s": latency,
        "energy_kwh": energy,
        "co2_kg": co2,
        "cost_usd": cost,
        "timing": "+".join(sorted(t for t in timings if t)),
        "passed": None if score is None else score["passed"],
        "verdict": None if score is None else score["verdict"],
        "attempts": [_compact_attempt(a) for a in answer.attempts],
    }


def answer_task(task: "Task", strategies: dict[str, Strategy], tiers: Tiers, scorer: TaskScorer | None) -> dict[str, Any]:
    request = GenerationRequest(prompt=task.prompt, task_id=task.task_id, sample=0, temperature=0.0)
    systems: dict[str, Any] = {}
    for name, strategy in strategies.items():
        answer = strategy.answer(request, entry_point=task.entry_point)
        score = scorer.score(task, request, answer) if scorer is not None else None
        systems[name] = system_record(answer, tiers, score)
    record: dict[str, Any] = {"task_id": task.task_id, "systems": systems}
    if scorer is not None and "small" in systems and "large" in systems:
        record["oracle"] = bool(systems["small"]["passed"] or systems["large"]["passed"])
    return record


# --------------------------------------------------------------------------------------------------
# learned by cross-validation
# --------------------------------------------------------------------------------------------------

def learned_cross_validation(records: list[dict[str, Any]], tasks: dict[str, "Task"], target_large_share: float,
                             folds: int = CV_FOLDS, seed: int = 0, embedding: bool = False) -> dict[str, Any] | None:
    """Out-of-fold `learned` routing from the small-only outcomes (needs scored baselines).
    Returns per-task systems and the (large share, pass@1) curve over target shares."""
    from routerllm.routing.calibration import auc, cross_validated_scores
    from routerllm.routing.features import feature_matrix

    rows_ok = [r for r in records if r.get("task_id") in tasks and "small" in r["systems"] and "large" in r["systems"]
               and r["systems"]["small"].get("passed") is not None]
    if len(rows_ok) < max(2 * folds, 10):
        logger.warning("learned: %d scored tasks is too few for %d-fold cross-validation; skipped", len(rows_ok), folds)
        return None
    ids = [r["task_id"] for r in rows_ok]
    labels = [bool(r["systems"]["small"]["passed"]) for r in rows_ok]
    if all(labels) or not any(labels):
        logger.warning("learned: the small tier solved %s task; nothing to learn from", "every" if all(labels) else "no")
        return None
    names, feats = feature_matrix([tasks[t].prompt for t in ids], [tasks[t].entry_point for t in ids], embedding=embedding)
    scores, thresholds = cross_validated_scores(names, feats, labels, ids, target_large_share, k=folds, seed=seed)
    per_task = {}
    for r, s, th in zip(rows_ok, scores, thresholds):
        go_large = bool(s < th)
        base = r["systems"]["large" if go_large else "small"]
        per_task[r["task_id"]] = {
            **base,
            "reason": f"cross-validated: predicted small-tier success {s:.3f} {'<' if go_large else '>='} "
                      f"threshold {th:.3f} (calibrated on the other folds to {target_large_share:.0%} large calls)",
            "details": {"score": float(s), "threshold": float(th), "target_large_share": target_large_share,
                        "cross_validated": True},
            "escalated": False,
        }
    curve = []
    for share in SHARE_SWEEP:
        s_scores, s_th = cross_validated_scores(names, feats, labels, ids, share, k=folds, seed=seed)
        large = s_scores < s_th
        passed = [r["systems"]["large" if g else "small"]["passed"] for r, g in zip(rows_ok, large)]
        curve.append({"target": share, "large_share": float(np.mean(large)), "pass_at_1": float(np.mean(passed))})
    return {"per_task": per_task, "curve": curve, "auc": auc(scores, labels), "folds": folds,
            "features": len(names), "tasks": len(ids)}


# --------------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------------

def summarize_system(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from routerllm.evaluation.metrics import percentiles

    n = len(rows)
    if n == 0:
        return {"tasks": 0}
    passed = [r["passed"] for r in rows if r.get("passed") is not None]
    lat = [r["latency_s"] for r in rows]
    energy = [r["energy_kwh"] for r in rows]
    co2 = [r["co2_kg"] for r in rows]
    return {
        "tasks": n,
        "pass_at_1": float(np.mean(passed)) if len(passed) == n else None,
        "large_share": float(np.mean([r["large_calls"] > 0 for r in rows])),
        "small_calls_per_task": float(np.mean([r["small_calls"] for r in rows])),
        "large_calls_per_task": float(np.mean([r["large_calls"] for r in rows])),
        "escalated": int(sum(bool(r.get("escalated")) for r in rows)),
        "latency_s": percentiles(lat),
        "energy_kwh": float(sum(energy)) if all(e is not None for e in energy) else None,
        "co2_kg": float(sum(co2)) if all(c is not None for c in co2) else None,
        "cost_usd": float(sum(r["cost_usd"] for r in rows)),
        "timing": sorted({t for r in rows for t in (r.get("timing") or "").split("+") if t}),
    }


def summarize_comparison(records: list[dict[str, Any]], tasks: dict[str, "Task"], config: "RouterLLMConfig",
                         systems: list[str], learned_cv: bool, cv_folds: int = CV_FOLDS) -> dict[str, Any]:
    records = [r for r in records if r.get("task_id") in tasks]
    per_system: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for r in records:
        for s, row in r["systems"].items():
            per_system.setdefault(s, []).append(row)
    learned = None
    if learned_cv:
        learned = learned_cross_validation(records, tasks, config.router.target_large_share, folds=cv_folds,
                                           seed=config.router.seed, embedding=config.router.learned_embedding)
        if learned is not None:
            per_system["learned"] = [learned["per_task"][r["task_id"]] for r in records if r["task_id"] in learned["per_task"]]
    summary: dict[str, Any] = {
        "tasks": len(records),
        "tiers": {"small": [m.name for m in config.models.small_llms], "large": config.models.large_llm.name},
        "timing": {m.name: ("modelled" if m.backend == "replay" else "measured")
                   for m in [*config.models.small_llms, config.models.large_llm]},
        "systems": {s: summarize_system(rows) for s, rows in per_system.items() if rows},
    }
    oracle = [r["oracle"] for r in records if "oracle" in r]
    if oracle and len(oracle) == len(records):
        needs_large = [bool(r["systems"]["large"]["passed"] and not r["systems"]["small"]["passed"]) for r in records]
        summary["oracle"] = {"pass_at_1": float(np.mean(oracle)), "large_share": float(np.mean(needs_large))}
    if learned is not None:
        summary["learned_cv"] = {k: learned[k] for k in ("curve", "auc", "folds", "features", "tasks")}
    large = summary["systems"].get("large", {})
    if large.get("pass_at_1"):
        for s, row in summary["systems"].items():
            if row.get("pass_at_1") is not None:
                row["relative_pass_at_1"] = row["pass_at_1"] / large["pass_at_1"]
            if large.get("cost_usd"):
                row["relative_cost"] = row["cost_usd"] / large["cost_usd"]
    return summary


# --------------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------------

def _systems(opts: CompareOptions) -> tuple[list[str], bool]:
    """(systems answered per task, learned by cross-validation?)"""
    requested = list(opts.strategies or opts.config.router.strategies)
    unknown = [s for s in requested if s not in STRATEGIES]
    if unknown:
        raise RoutingError(f"unknown strategy name(s) {unknown}", fix=f"use names from: {', '.join(STRATEGIES)}")
    if not opts.config.models.small_llms:
        raise ConfigError("models.small_llms", "the comparison needs at least one small tier",
                          fix="add a model under models.small_llms")
    learned_cv = "learned" in requested and not opts.config.router.learned_model_path
    systems = ["small", "large"] + [s for s in requested if s not in BASELINES and not (s == "learned" and learned_cv)]
    if not opts.use_large_model:
        dropped = [s for s in systems if s != "small"]
        logger.warning("--use-large-model not given: only the small tier runs (skipping %s)", ", ".join(dropped))
        systems, learned_cv = ["small"], False
    if opts.skip_execution and learned_cv:
        logger.warning("learned: cross-validation needs scored answers; skipped with --skip-execution")
        learned_cv = False
    return systems, learned_cv


def run_comparison(opts: CompareOptions) -> ComparisonOutcome:
    from routerllm.evaluation.carbon import CarbonTracker, carbon_intensity_kg_per_kwh
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.sandbox import Sandbox
    from routerllm.runner import META_FILE, atomic_write_json, read_json, run_tasks

    config = opts.config
    resolve_replay_paths(config)
    if opts.resume:
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
    else:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir = Path(opts.results_dir or config.benchmark.results_dir) / (opts.run_name or f"compare-{stamp}")
    systems, learned_cv = _systems(opts)
    tasks = load_tasks(opts.num_examples, opts.task_ids)
    by_id = {t.task_id: t for t in tasks}
    run_dir.mkdir(parents=True, exist_ok=True)

    needs_carbon = config.benchmark.track_co2 and any(
        m.backend != "replay" for m in [config.models.large_llm, *config.models.small_llms])
    carbon = CarbonTracker(config.benchmark.country_iso_code, output_dir=run_dir, enabled=needs_carbon)
    intensity = carbon_intensity_kg_per_kwh(config.benchmark.country_iso_code)
    cache = GenerationCache(run_dir / GENERATIONS_FILE)
    raw = dict(opts.backends or {})
    models = {m.name: m for m in [*config.models.small_llms, config.models.large_llm]}
    wrapped: dict[str, Backend] = {}
    for name, model in models.items():
        backend = raw.get(name) or make_backend(model)
        wrapped[name] = CachedTier(name, model, backend, cache, by_id, carbon if needs_carbon else None, intensity)  # type: ignore[assignment]
    tiers = Tiers(small=[(m.name, wrapped[m.name]) for m in config.models.small_llms],
                  large=(config.models.large_llm.name, wrapped[config.models.large_llm.name]), configs=models)
    own_sandbox = opts.sandbox is None
    sandbox = opts.sandbox or Sandbox(timeout_s=config.benchmark.execution_timeout_s, workers=config.benchmark.workers)
    strategies = {name: build_strategy(name, tiers, config.router, sandbox=sandbox) for name in systems}
    scorer = None if opts.skip_execution else TaskScorer(sandbox, tiers, config.benchmark.execution_timeout_s)

    meta = {
        "kind": "comparison",
        "config": str(config.source) if config.source else None,
        "config_data": config.model_dump(mode="json"),
        "strategies": [s for s in (opts.strategies or config.router.strategies)],
        "systems": systems + (["learned"] if learned_cv else []),
        "num_examples": opts.num_examples,
        "task_ids": opts.task_ids,
        "tasks": [t.task_id for t in tasks],
        "skip_execution": opts.skip_execution,
        "use_large_model": opts.use_large_model,
    }

    def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
        return summarize_comparison(records, by_id, config, systems, learned_cv=False)

    def status(records: list[dict[str, Any]]) -> str:
        done = [r for r in records if r.get("task_id") in by_id]
        if not done or opts.skip_execution:
            return ""
        parts = []
        for s in ("large", "cascade", "small"):
            vals = [r["systems"][s]["passed"] for r in done if s in r["systems"]]
            if vals:
                parts.append(f"{s} {np.mean(vals):.0%}")
        return " ".join(parts)

    try:
        for name, backend in wrapped.items():
            logger.info("loading tier %s", name)
            backend.load()
        carbon.start()
        outcome = run_tasks(
            run_dir, tasks, lambda task: answer_task(task, strategies, tiers, scorer),
            resume=bool(opts.resume),
            meta=meta, summarize_fn=summarize, summary_every=config.benchmark.summary_every,
            progress=opts.progress, description="compare", status_fn=status,
        )
    finally:
        carbon.stop()
        for strategy in strategies.values():
            strategy.close()
        if own_sandbox:
            sandbox.close()
        tiers.close()

    summary = summarize_comparison(outcome.records, by_id, config, systems, learned_cv=learned_cv, cv_folds=opts.cv_folds)
    summary.update({
        "status": outcome.status,
        "run_dir": str(run_dir),
        "config": meta["config"],
        "carbon": carbon.describe(),
        "carbon_intensity_kg_per_kwh": intensity,
        "generation_cache": {"hits": cache.hits, "misses": cache.misses},
        "skip_execution": opts.skip_execution,
    })
    atomic_write_json(run_dir / "comparison.json", summary)
    files: list[Path] = []
    if opts.report and outcome.records:
        from routerllm.report import write_report

        files = write_report(run_dir, summary)
    return ComparisonOutcome(run_dir, outcome.records, summary, outcome.status, files)

"""Calibrating the tiers of a chain: how strong each is and how often its answers are right in each
cascade state (routing/strength.py). Two uses:

* `routerllm calibrate --config C --output F`: a calibration run over calibration tasks (the tiers
  generate, the Judge scores their answers with the hidden tests of THOSE tasks); the file goes
  to router.calibration_path for `serve` and `compare`. Calibrate on tasks you will not evaluate on.
* `routerllm compare` without router.calibration_path: the same pass over the run's own tasks,
  cross-fitted (routing.strength.CrossFitted): a task is routed with the calibration of the folds
  it is not in, so its own answers' verdicts never route it.

One pass (`observe`) runs every tier's cascade step on every task (routing/cascade.py: the same
draws and checks the cascade makes, batched by stage through the driver), each tier's first answer
and its visible-example check, and, for tiers before the last, every answer within the cascade's
sample budget that a replayed tier has (free: nothing runs), so that the floor (no such answer
passes) and the perfect-checker ceiling are known per task. Without a scorer (--skip-execution)
the calibration is label-free: visible-example pass rates only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

from routerllm.backends.base import GenerationRequest
from routerllm.routing.base import Execute, Generate, Need, Served, Tiers, available_samples, with_sample
from routerllm.routing.cascade import UNCHECKED, CascadeStrategy, StepOutcome
from routerllm.routing.checker import judge, task_checks
from routerllm.routing.code import code_for
from routerllm.routing.driver import Driver
from routerllm.routing.strength import ChainCalibration, Observation

if TYPE_CHECKING:
    from routerllm.config import RouterLLMConfig
    from routerllm.evaluation.humaneval import Task
    from routerllm.scoring import TaskScorer

logger = logging.getLogger(__name__)


@dataclass
class TaskOutcomes:
    """What the tiers could do on one task (scored): see records.TaskRecord."""

    first_right: dict[str, bool | None] = field(default_factory=dict)
    solvable: bool | None = None
    ceiling: bool | None = None
    samples_scored: dict[str, int] = field(default_factory=dict)


@dataclass
class Observed:
    observations: list[Observation] = field(default_factory=list)
    per_task: dict[str, TaskOutcomes] = field(default_factory=dict)


@dataclass
class _TierSeen:
    tier: str
    step: StepOutcome | None = None
    first: Served | None = None
    first_visible_pass: bool | None = None
    extra: list[Served] = field(default_factory=list)  # every answer of the tier, for floor and ceiling


def _observe_plan(cascade: CascadeStrategy, request: GenerationRequest, entry_point: str | None,
                  budget_samples: bool) -> Generator[Need, Any, list[_TierSeen]]:
    checks = task_checks(request.prompt, entry_point)
    chain = cascade.tiers.names
    seen: list[_TierSeen] = []
    for tier in chain[:-1]:
        item = _TierSeen(tier)
        if checks.checkable:
            item.step = yield from cascade.step(tier, request, checks)
            item.first = item.step.first
            item.first_visible_pass = item.step.first_check.passed if item.step.first_check else None
            drawn = item.step.drawn
        else:
            (item.first,) = yield Generate(tier, [request])
            drawn = 1
        item.extra = list(item.step.answers) if item.step is not None else [item.first]
        budget = cascade.options.cascade.small_samples
        recorded = available_samples(cascade.tiers.backend(tier), request.task_id)
        if budget_samples and recorded is not None and min(budget, recorded) > drawn:
            more = [with_sample(request, i, cascade.options.cascade.sample_temperature)
                    for i in range(drawn, min(budget, recorded))]
            item.extra += list((yield Generate(tier, more)))
        seen.append(item)
    last = _TierSeen(chain[-1])
    (last.first,) = yield Generate(chain[-1], [request])
    if checks.checkable:
        (run,) = yield Execute([checks.job(code_for(cascade.tiers, chain[-1], request, last.first.generation,
                                                    checks.entry_point))])  # type: ignore[arg-type]
        result, _ = judge(checks, run)
        last.first_visible_pass = result.passed
    seen.append(last)
    return seen


def observe(tasks: list["Task"], tiers: Tiers, cascade: CascadeStrategy, scorer: "TaskScorer | None", *,
            batch: int = 16, budget_samples: bool = True,
            on_batch: Callable[[int], None] | None = None,
            stop: Callable[[], bool] | None = None) -> Observed:
    """Run the observation pass (module docstring) over `tasks`, `batch` tasks at a time."""
    observed = Observed()
    for start in range(0, len(tasks), batch):
        if stop is not None and stop():
            raise KeyboardInterrupt("stopped during the calibration pass")
        part = tasks[start:start + batch]
        requests = [GenerationRequest(prompt=t.prompt, task_id=t.task_id, sample=0, temperature=0.0) for t in part]
        driver = Driver(tiers, cascade.get_judge, check_timeout_s=cascade.options.cascade.example_timeout_s)
        results = driver.run_raw([_observe_plan(cascade, r, t.entry_point, budget_samples)
                                  for r, t in zip(requests, part)])
        _record(part, requests, results, scorer, observed)
        if on_batch is not None:
            on_batch(len(part))
    return observed


def _record(part: list["Task"], requests: list[GenerationRequest], results: list[list[_TierSeen]],
            scorer: "TaskScorer | None", observed: Observed) -> None:
    items: list[tuple[Any, str, GenerationRequest, Any]] = []
    index: dict[int, int] = {}
    for task, request, seen in zip(part, requests, results):
        for item in seen:
            kept = [item.step.kept] if item.step is not None and item.step.kept is not None else []
            for served in [item.first, *kept, *item.extra]:
                if served is not None and id(served.generation) not in index:
                    index[id(served.generation)] = len(items)
                    items.append((task, item.tier, request, served.generation))
    scores = scorer.score_many(items) if scorer is not None else None

    def right(served: Served | None) -> bool | None:
        if scores is None or served is None:
            return None
        return scores[index[id(served.generation)]].passed

    for task, seen in zip(part, results):
        outcome = TaskOutcomes()
        for item in seen:
            state, kept = (item.step.state, item.step.kept or item.step.first) if item.step else (
                (UNCHECKED, item.first) if item is not seen[-1] else (None, None))
            observed.observations.append(Observation(
                task_id=task.task_id, tier=item.tier, first_visible_pass=item.first_visible_pass,
                first_right=right(item.first), state=state, state_right=right(kept) if state is not None else None,
            ))
            outcome.first_right[item.tier] = right(item.first)
        if scores is not None:
            before_last = [right(s) for item in seen[:-1] for s in ([item.first] + item.extra) if s is not None]
            outcome.samples_scored = {item.tier: len({id(s.generation) for s in [item.first, *item.extra] if s})
                                      for item in seen[:-1]}
            outcome.solvable = any(bool(v) for v in before_last)
            outcome.ceiling = outcome.solvable or bool(right(seen[-1].first))
        observed.per_task[task.task_id] = outcome


# --------------------------------------------------------------------------------------------------
# `routerllm calibrate`
# --------------------------------------------------------------------------------------------------

def run_calibration(config: "RouterLLMConfig", output: str | Path, num_examples: int | None = None,
                    task_ids: list[str] | None = None, from_run: str | None = None,
                    progress: bool = True) -> ChainCalibration:
    """A calibration run (module docstring); writes and returns the calibration."""
    from routerllm.backends.base import make_backend
    from routerllm.config import resolve_replay_paths
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.judge import open_judge
    from routerllm.runner import _progress
    from routerllm.scoring import TaskScorer
    from routerllm.tier_cache import GENERATIONS_FILE, CachedTier, GenerationCache

    resolve_replay_paths(config)
    if not config.models.small_llms:
        from routerllm.exceptions import ConfigError

        raise ConfigError("models.small_llms", "calibration needs at least one small tier",
                          fix="add a model under models.small_llms")
    tasks = load_tasks(num_examples, task_ids)
    by_id = {t.task_id: t for t in tasks}
    cache = GenerationCache(Path(from_run) / GENERATIONS_FILE if from_run else None)
    models = [*config.models.small_llms, config.models.large_llm]
    wrapped = {m.name: CachedTier(m.name, m, make_backend(m), cache, by_id, None, None) for m in models}
    tiers = Tiers(small=[(m.name, wrapped[m.name]) for m in config.models.small_llms],
                  large=(config.models.large_llm.name, wrapped[config.models.large_llm.name]),
                  configs={m.name: m for m in models})
    bench = config.benchmark
    with open_judge(bench) as judge:
        cascade = CascadeStrategy(tiers, config.router, judge=judge)
        scorer = TaskScorer(judge, tiers, bench.execution_timeout_s)
        try:
            for backend in wrapped.values():
                backend.load()
            with _progress(progress, "calibrate") as bar:
                handle = bar.add_task("calibrating tiers", total=len(tasks), status="")
                observed = observe(tasks, tiers, cascade, scorer, batch=config.router.task_batch,
                                   budget_samples=False, on_batch=lambda n: bar.update(handle, advance=n))
        finally:
            tiers.close()
    calibration = ChainCalibration.fit(observed.observations, tiers.names,
                                       source=f"routerllm calibrate on {len(tasks)} task(s)")
    calibration.save(output)
    return calibration

"""Runs many routing plans together, batched by stage (issue 10: one weight stream serves a batch).

Each plan (Strategy.plan) is a generator that yields what it needs next. The driver collects the
needs of every plan still running and serves them in rounds:

    1. every Execute (answers to check) of the round in ONE check batch (parallel jail sessions);
    2. else the Generate needs of the cheapest tier in the chain that has any, as ONE backend call
       with every request for that tier (the small tier's samples for the whole batch of tasks;
       later, the large tier once, with every escalation).

A plan sees only its own results, so its decisions do not depend on the other plans in the batch
(a plan answered alone, as the server does, takes the same steps).

Time is kept on a clock the driver advances by each batch it serves: a generation batch takes as
long as its longest member (each Generation's `total_s`: measured by local and openai tiers,
modelled by replay tiers; for a local tier's rows, which stop before their batch does, the batch's
own time `extra["batch_total_s"]`); a check batch takes its wall time. Per plan, `generation_s` and
`check_s` add up the batches it took part in and `queue_s` the batches it waited through, so its
latency is its finish time on that clock. `clock_s` is the whole batch's time (throughput).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from routerllm.exceptions import BackendError, RoutingError
from routerllm.records import Attempt
from routerllm.routing.base import Execute, Generate, Plan, RoutedAnswer, Served, Tiers

if TYPE_CHECKING:
    from routerllm.evaluation.judge import Judge
    from routerllm.routing.base import Need

logger = logging.getLogger(__name__)


@dataclass
class _Running:
    plan: Plan
    need: "Need | None" = None
    result: Any = None
    done: bool = False
    ready_at: float = 0.0
    finished_at: float = 0.0
    generation_s: float = 0.0
    check_s: float = 0.0
    stages: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)

    def advance(self, value: Any, now: float) -> None:
        """Send `value` (None to start) and keep the plan's next need, or its result."""
        try:
            self.need = self.plan.send(value)
            self.ready_at = now
        except StopIteration as stop:
            self.need = None
            self.finished_at = now
            self.done = True
            self.result = stop.value


class Driver:
    """Serve the needs of many plans, batched by stage (module docstring)."""

    def __init__(self, tiers: Tiers, judge: "Callable[[], Judge]", *,
                 check_timeout_s: float | None = None, call_timeout_s: float | None = None) -> None:
        self.tiers = tiers
        self.judge = judge
        self.check_timeout_s = check_timeout_s  # one answer's whole check (router.cascade.example_timeout_s)
        self.call_timeout_s = call_timeout_s
        self.clock_s = 0.0

    def run(self, plans: list[Plan]) -> list[RoutedAnswer]:
        """Run routing plans; each must `return generation, decision`."""
        out = []
        for r in self._run(plans):
            if not isinstance(r.result, tuple) or len(r.result) != 2:
                raise RoutingError("a routing plan returned no (generation, decision)",
                                   fix="a Strategy.plan generator must `return generation, decision`")
            generation, decision = r.result
            out.append(RoutedAnswer(
                generation=generation, decision=decision, calls=r.calls, attempts=r.attempts,
                generation_s=r.generation_s, check_s=r.check_s,
                queue_s=max(0.0, r.finished_at - r.generation_s - r.check_s), batch_clock_s=self.clock_s,
            ))
        return out

    def run_raw(self, plans: list[Any]) -> list[Any]:
        """Run plans that return anything (calibration); their return values, in order."""
        return [r.result for r in self._run(plans)]

    def _run(self, plans: list[Any]) -> list[_Running]:
        running = [_Running(p) for p in plans]
        for r in running:
            r.advance(None, self.clock_s)
        order = {name: i for i, name in enumerate(self.tiers.names)}
        while True:
            pending = [r for r in running if r.need is not None]
            if not pending:
                break
            executes = [r for r in pending if isinstance(r.need, Execute)]
            if executes:
                self._execute(executes)
                continue
            tier = min({r.need.tier for r in pending}, key=lambda t: order.get(t, len(order)))  # type: ignore[union-attr]
            self._generate(tier, [r for r in pending if r.need.tier == tier])  # type: ignore[union-attr]
        return running

    # -- serving ---------------------------------------------------------------------------------
    def _execute(self, batch: list[_Running]) -> None:
        from routerllm.routing.execution import CALL_TIMEOUT_S, call_many

        jobs = [job for r in batch for job in r.need.jobs]  # type: ignore[union-attr]
        start = time.perf_counter()
        runs = call_many(self.judge(), jobs, call_timeout_s=self.call_timeout_s or CALL_TIMEOUT_S,
                         timeout_s=self.check_timeout_s) if jobs else []
        wall = time.perf_counter() - start
        self.clock_s += wall
        offset = 0
        for r in batch:
            n = len(r.need.jobs)  # type: ignore[union-attr]
            r.check_s += wall
            r.advance(runs[offset:offset + n], self.clock_s)
            offset += n

    def _generate(self, tier: str, batch: list[_Running]) -> None:
        backend = self.tiers.backend(tier)
        requests = [req for r in batch for req in r.need.requests]  # type: ignore[union-attr]
        try:
            generations = backend.generate(list(requests))
        except BackendError:
            raise
        except Exception as exc:  # a backend that does not wrap its own failures
            raise BackendError(
                f"tier {tier!r} failed to generate: {type(exc).__name__}: {exc}",
                fix=f"check the tier's backend ({type(backend).__name__}); `routerllm validate` runs one generation",
            ) from exc
        if len(generations) != len(requests):
            raise BackendError(f"tier {tier!r} returned {len(generations)} answers for {len(requests)} requests",
                               fix="a backend's generate() returns one Generation per request, in order")
        start = self.clock_s
        # a local tier's row stops before its batch does: the batch lasts its whole generate call
        duration = max((float(g.extra.get("batch_total_s") or g.total_s) for g in generations), default=0.0)
        self.clock_s += duration
        offset = 0
        for r in batch:
            need: Generate = r.need  # type: ignore[assignment]
            served = []
            for request, generation in zip(need.requests, generations[offset:offset + len(need.requests)]):
                attempt = Attempt(
                    tier=tier, sample=request.sample, temperature=request.temperature, total_s=generation.total_s,
                    batch_s=duration, queue_s=max(0.0, start - r.ready_at), ttft_s=generation.ttft_s,
                    prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                    energy_kwh=generation.energy_kwh, co2_kg=generation.extra.get("co2_kg"),
                    timing=generation.timing, stage=r.stages, repair=need.repair, self_tests=need.self_tests,
                    cache_key=generation.extra.get("cache_key"),
                )
                r.attempts.append(attempt)
                served.append(Served(generation, attempt))
            offset += len(need.requests)
            r.calls[tier] = r.calls.get(tier, 0) + len(need.requests)
            r.stages += 1
            r.generation_s += duration
            r.advance(served, self.clock_s)


"""The routing interface: a chain of tiers, a strategy, and the record of each decision.

    Tiers(small=[(name, backend), ...], large=(name, backend))   names come from the config
      .chain == [small_0, small_1, ..., large]                    cheapest first: models.small_llms, then large_llm
          │
          ▼
    Strategy.plan(request, entry_point)   a generator: yields what it needs (Generate from a tier,
          │                               Execute answers in the jail), gets the results back,
          ▼                               returns (generation, RouteDecision)
    Driver (routing/driver.py) runs many plans together, batched by stage: every Execute of a round
    in one check batch (the Judge's jail), then one backend call per tier with every request of that tier
          │
          ▼
    RoutedAnswer(generation, decision, calls, attempts, queue_s, generation_s, check_s)

`strategy.answer(request)` answers one request (the server); `strategy.answer_many(requests)`
answers a batch of tasks (the comparison). A plan only ever sees its own results, so the routing
decision for a task never depends on which other tasks share its batch.

Strategies never see the hidden tests of a task: a request carries only the prompt (and, for
replayed recordings, the task id and sample index the replay backend needs to find the answer).
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generator, Protocol, runtime_checkable

from routerllm.backends.base import Backend, Generation, GenerationRequest
from routerllm.exceptions import ConfigError
from routerllm.records import Attempt

if TYPE_CHECKING:
    from routerllm.config import ModelConfig, RouterLLMConfig, RouterSection
    from routerllm.evaluation.judge import Judge
    from routerllm.routing.execution import Job

logger = logging.getLogger(__name__)


@runtime_checkable
class RecordedSamples(Protocol):
    """A backend with a fixed number of answers per task (replay). The cascade asks it before
    requesting samples, so that it never asks for an answer that does not exist."""

    def available_samples(self, task_id: str | None) -> int | None:
        """Answers recorded for the task (None: no fixed number, e.g. a live model)."""


def available_samples(backend: Backend, task_id: str | None) -> int | None:
    return backend.available_samples(task_id) if isinstance(backend, RecordedSamples) else None


@dataclass
class Tiers:
    """The models a router chooses between: `small` cheapest first, then `large`. Together they
    form the chain a cascade climbs (`chain`), one step at a time."""

    small: list[tuple[str, Backend]]
    large: tuple[str, Backend]
    # name -> ModelConfig of each tier (request defaults: max_new_tokens, stop, cost). Optional.
    configs: dict[str, "ModelConfig"] = field(default_factory=dict)

    @property
    def chain(self) -> list[tuple[str, Backend]]:
        return [*self.small, self.large]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.chain]

    @property
    def large_name(self) -> str:
        return self.large[0]

    def index(self, name: str) -> int:
        names = self.names
        if name not in names:
            raise ConfigError("models", f"no tier named {name!r}", fix=f"use one of: {', '.join(names)}")
        return names.index(name)

    def backend(self, name: str) -> Backend:
        return self.chain[self.index(name)][1]

    def close(self) -> None:
        seen: set[int] = set()
        for _, backend in self.chain:
            if id(backend) not in seen:
                seen.add(id(backend))
                backend.close()


@dataclass
class RouteDecision:
    """Which tier answered and why. `tier` is the name of the tier whose answer was returned.

    `escalated`: the router moved past a tier it tried. `accepted`: the answer comes from a tier
    before the last one after the router checked it against the prompt. `state`: the evidence the
    last checked tier ended in (routing/cascade.py). `reason` says what was checked and how it went,
    never what the code printed or returned (clients see it)."""

    strategy: str
    tier: str
    reason: str
    escalated: bool
    details: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RoutedAnswer:
    generation: Generation
    decision: RouteDecision
    calls: dict[str, int]  # tier name -> number of generations requested from it
    attempts: list[Attempt] = field(default_factory=list)
    queue_s: float = 0.0  # waiting for batches this answer was not part of
    generation_s: float = 0.0  # the stage batches it was part of (each its longest member)
    check_s: float = 0.0  # the check batches (jail sessions) that checked it
    batch_clock_s: float = 0.0  # the whole batch of answers this one was part of (throughput)

    @property
    def total_s(self) -> float:
        """Time of the whole routed answer on the run's clock: queue + generation + checks."""
        return self.queue_s + self.generation_s + self.check_s

    @property
    def energy_kwh(self) -> float | None:
        values = [a.energy_kwh for a in self.attempts]
        return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


# --- what a plan asks for ----------------------------------------------------------------------------

@dataclass
class Generate:
    """Generations from one tier. The driver answers with one `Served` per request, in order."""

    tier: str
    requests: list[GenerationRequest]
    repair: bool = False
    self_tests: bool = False


@dataclass
class Execute:
    """Answers to run on plain-data calls in the jail; the driver answers with one
    `Execution` per job, in order."""

    jobs: list["Job"]


@dataclass
class Served:
    generation: Generation
    attempt: Attempt  # the record the driver keeps; a plan may attach its check


Need = Generate | Execute
Plan = Generator[Need, Any, tuple[Generation, RouteDecision]]


class Strategy(ABC):
    """A routing strategy. Subclasses set `name` and implement `plan`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, tiers: Tiers, options: "RouterSection", judge: "Judge | None" = None) -> None:
        self.tiers = tiers
        self.options = options
        self.judge = judge
        self._own_judge: "Judge | None" = None

    @abstractmethod
    def plan(self, request: GenerationRequest, entry_point: str | None = None) -> Plan:
        """The steps to answer one request (a generator; see the module docstring)."""

    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        """Answer one request. `entry_point` is the function the prompt asks for, when known."""
        return self.answer_many([request], [entry_point])[0]

    def answer_many(self, requests: list[GenerationRequest],
                    entry_points: list[str | None] | None = None) -> list[RoutedAnswer]:
        """Answer several requests together, batched by stage (same answers as one at a time)."""
        from routerllm.routing.driver import Driver

        points = list(entry_points) if entry_points is not None else [None] * len(requests)
        plans = [self.plan(r, e) for r, e in zip(requests, points)]
        return Driver(self.tiers, self.get_judge, check_timeout_s=self.options.cascade.example_timeout_s).run(plans)

    def get_judge(self) -> "Judge":
        """The Judge whose jail runs the checks: the one given, else the strategy's own (made on
        first use; refuses where the machine cannot isolate, see evaluation/judge.open_judge)."""
        if self.judge is not None:
            return self.judge
        if self._own_judge is None:
            from routerllm.evaluation.judge import Judge

            self._own_judge = Judge(timeout_s=self.options.cascade.example_timeout_s, workers=1)
        return self._own_judge

    def close(self) -> None:
        """Release what the strategy itself holds (not the tiers). Idempotent."""
        if self._own_judge is not None:
            self._own_judge.close()
            self._own_judge = None

    # --- helpers shared by strategies -------------------------------------------------------

    @property
    def small_tier(self) -> tuple[str, Backend]:
        if not self.tiers.small:
            raise ConfigError(
                "models.small_llms",
                f"strategy {self.name!r} needs at least one small tier but the config has none",
                fix="add a model under models.small_llms, or use the 'large' strategy",
            )
        return self.tiers.small[0]

    def one(self, tier: str, request: GenerationRequest) -> Generator[Need, Any, Generation]:
        """Plan step: one generation from `tier` (use as `generation = yield from self.one(...)`)."""
        (served,) = yield Generate(tier, [request])
        return served.generation


def with_sample(request: GenerationRequest, sample: int, temperature: float | None = None) -> GenerationRequest:
    """A copy of `request` for another sample index (replay picks the recorded sample by index)."""
    changes: dict[str, Any] = {"sample": sample}
    if temperature is not None:
        changes["temperature"] = temperature
    if request.seed is not None:
        changes["seed"] = request.seed + sample
    return dataclasses.replace(request, **changes)


def build_tiers(config: "RouterLLMConfig", backends: dict[str, Backend] | None = None) -> Tiers:
    """Tiers from a config: `backends` may supply ready backends by tier name (tests, the server,
    the comparison's cache); the others are made with `make_backend`. Backends are not loaded here."""
    from routerllm.backends.base import make_backend

    backends = dict(backends or {})
    configs = {m.name: m for m in [*config.models.small_llms, config.models.large_llm]}
    names = [m.name for m in config.models.small_llms] + [config.models.large_llm.name]
    if len(set(names)) != len(names):
        raise ConfigError(
            "models",
            f"tier names must be unique, got {names}",
            fix="give each entry of models.small_llms and models.large_llm its own `name`",
        )

    def get(model: "ModelConfig") -> Backend:
        if model.name not in backends:
            backends[model.name] = make_backend(model)
        return backends[model.name]

    small = [(m.name, get(m)) for m in config.models.small_llms]
    large = (config.models.large_llm.name, get(config.models.large_llm))
    return Tiers(small=small, large=large, configs=configs)

"""The routing interface: tiers, a strategy, and the record of each decision.

A `Strategy` answers one `GenerationRequest` by calling one or more tiers and returns a
`RoutedAnswer`: the generation it chose, the `RouteDecision` (which tier, why, whether it
escalated, and the figures behind the decision), how many calls each tier received, and every
attempt it made (for the report and for debugging a decision).

    Tiers(small=[(name, backend), ...], large=(name, backend))    names come from the config
          │
          ▼
    Strategy.answer(request, entry_point) ──► RoutedAnswer(generation, decision, calls, attempts)

Strategies never see the hidden tests of a task: a request carries only the prompt (and, for
replayed recordings, the task id and sample index the replay backend needs to find the answer).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from routerllm.backends.base import Backend, Generation, GenerationRequest
from routerllm.exceptions import BackendError, ConfigError

if TYPE_CHECKING:
    from routerllm.config import ModelConfig, RouterLLMConfig, RouterSection
    from routerllm.evaluation.sandbox import Sandbox

logger = logging.getLogger(__name__)


@dataclass
class Tiers:
    """The models a router chooses between. `small` is ordered cheapest first."""

    small: list[tuple[str, Backend]]
    large: tuple[str, Backend]
    # name -> ModelConfig of each tier (request defaults: max_new_tokens, stop, cost). Optional.
    configs: dict[str, "ModelConfig"] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.small] + [self.large[0]]

    @property
    def large_name(self) -> str:
        return self.large[0]

    def backend(self, name: str) -> Backend:
        for tier_name, backend in [*self.small, self.large]:
            if tier_name == name:
                return backend
        raise ConfigError("models", f"no tier named {name!r}", fix=f"use one of: {', '.join(self.names)}")

    def close(self) -> None:
        seen: set[int] = set()
        for _, backend in [*self.small, self.large]:
            if id(backend) not in seen:
                seen.add(id(backend))
                backend.close()


@dataclass
class RouteDecision:
    """Which tier answered and why. `tier` is the name of the tier whose answer was returned."""

    strategy: str
    tier: str
    reason: str
    escalated: bool
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RoutedAnswer:
    generation: Generation
    decision: RouteDecision
    calls: dict[str, int]  # tier name -> number of generations requested from it
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        """Time of the whole routed answer: tiers (and batches) one after another, plus checks."""
        return (attempts_cost(self.attempts, "total_s") or 0.0) + float(self.decision.details.get("check_s", 0.0))

    @property
    def energy_kwh(self) -> float | None:
        return attempts_cost(self.attempts, "energy_kwh")


class Strategy(ABC):
    """A routing strategy. Subclasses set `name` and implement `answer`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, tiers: Tiers, options: "RouterSection", sandbox: "Sandbox | None" = None) -> None:
        self.tiers = tiers
        self.options = options
        self.sandbox = sandbox

    @abstractmethod
    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        """Answer one request. `entry_point` is the function the prompt asks for, when known."""

    def close(self) -> None:
        """Release what the strategy itself holds (not the tiers). Idempotent."""

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

    def call(
        self,
        tier: tuple[str, Backend],
        request: GenerationRequest,
        calls: dict[str, int],
        attempts: list[dict[str, Any]],
        **record: Any,
    ) -> Generation:
        """Generate one answer from `tier`, counting the call and recording the attempt."""
        return self.call_batch(tier, [request], calls, attempts, **record)[0]

    def call_batch(
        self,
        tier: tuple[str, Backend],
        requests: list[GenerationRequest],
        calls: dict[str, int],
        attempts: list[dict[str, Any]],
        batch: int | None = None,
        **record: Any,
    ) -> list[Generation]:
        """Generate answers to several requests in one backend call (a batch). Each is counted as
        a call and recorded as an attempt; attempts of one batch share `batch`, and a batch takes
        as long as its longest member (see `attempts_cost`)."""
        name, backend = tier
        calls[name] = calls.get(name, 0) + len(requests)
        start = time.perf_counter()
        try:
            generations = backend.generate(list(requests))
        except BackendError:
            raise
        except Exception as exc:  # a backend that does not wrap its own failures
            raise BackendError(
                f"tier {name!r} failed to generate: {type(exc).__name__}: {exc}",
                fix=f"check the tier's backend ({type(backend).__name__}); `routerllm validate` runs one generation",
            ) from exc
        wall = time.perf_counter() - start
        for request, generation in zip(requests, generations):
            attempts.append(
                {
                    "tier": name,
                    "sample": request.sample,
                    "temperature": request.temperature,
                    "total_s": generation.total_s,
                    "wall_s": wall,
                    "ttft_s": generation.ttft_s,
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "energy_kwh": generation.energy_kwh,
                    "co2_kg": generation.extra.get("co2_kg"),
                    "timing": generation.timing,
                    **({"batch": batch} if batch is not None else {}),
                    **record,
                }
            )
        return generations


def attempts_cost(attempts: list[dict[str, Any]], key: str) -> float | None:
    """Sum of `key` (total_s, energy_kwh, co2_kg) over attempts, a batch counting as its largest
    member (its samples decode together). None if any attempt lacks the figure."""
    groups: dict[Any, float] = {}
    for i, a in enumerate(attempts):
        value = a.get(key)
        if value is None:
            return None
        group = ("batch", a["tier"], a["batch"]) if a.get("batch") is not None else ("one", i)
        groups[group] = max(groups.get(group, 0.0), float(value))
    return float(sum(groups.values()))


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

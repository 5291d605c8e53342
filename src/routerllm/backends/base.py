"""The backend protocol and its registry.

A backend turns a batch of `GenerationRequest`s into `Generation`s with token counts and timings.
Timings are `measured` (a real model ran) or `modelled` (replay: derived from the tier's CostModel).
A `StreamingBackend` can also yield one answer's text as it is produced (the `openai` backend);
callers test `isinstance(backend, StreamingBackend)` rather than probing for a method.

Failures are `BackendError`s (routerllm.exceptions): `BackendTimeout`, `BackendUnavailable`, or
`BackendRejected` when the request itself is at fault (the client's error, not the tier's).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from routerllm.exceptions import ConfigError

if TYPE_CHECKING:
    from routerllm.config import ModelConfig


@dataclass
class GenerationRequest:
    """One prompt. `messages` (OpenAI chat format) takes precedence over `prompt` when given.
    `task_id` and `sample` identify a HumanEval task for backends that replay recorded answers."""

    prompt: str
    messages: list[dict[str, str]] | None = None
    max_new_tokens: int = 512
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)
    task_id: str | None = None
    sample: int = 0
    seed: int | None = None


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    total_s: float
    finish_reason: Literal["stop", "length", "error"] = "stop"
    timing: Literal["measured", "modelled"] = "measured"
    energy_kwh: float | None = None  # set by backends that model energy (replay)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float | None:
        decode = self.total_s - (self.ttft_s or 0.0)
        return self.completion_tokens / decode if decode > 0 and self.completion_tokens else None


@runtime_checkable
class Backend(Protocol):
    name: str

    def load(self) -> None:
        """Make the backend ready (load weights, check the endpoint). Idempotent."""

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Answer each request, in order."""

    def health(self) -> bool:
        """True when the backend can answer now."""

    def close(self) -> None:
        """Release memory/connections. Idempotent."""


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that can stream one answer."""

    def stream(self, request: GenerationRequest) -> Iterator["str | Generation"]:
        """Yield the answer's text pieces as they arrive, then the finished Generation (the last
        item). Raises BackendError before or during the stream (once text was yielded, a failure
        cannot be retried)."""


# name -> "module:Class", imported on use so that `import routerllm` stays light.
_REGISTRY: dict[str, str] = {
    "local": "routerllm.backends.local:LocalBackend",
    "openai": "routerllm.backends.openai:OpenAIBackend",
    "replay": "routerllm.backends.replay:ReplayBackend",
}


def batch_size_of(backend: Any, model: "ModelConfig") -> int:
    """The rows `backend` answers together for the tier `model` (the one place `batch_size` is
    resolved for callers that batch tasks): a local tier's manager decides (the config's integer, or
    the planner's choice for auto, lowered after an out-of-memory batch); otherwise the config's
    integer, or for auto as many concurrent requests as the openai backend sends at once
    (openai.MAX_BATCH_PARALLEL; the server batches them) and one task at a time for a replay tier
    (recorded answers have no batch to plan)."""
    manager = getattr(backend, "manager", None)
    if manager is not None and hasattr(manager, "batch_size"):
        return int(manager.batch_size)
    if isinstance(model.batch_size, int):
        return model.batch_size
    if model.backend == "openai":
        from routerllm.backends.openai import MAX_BATCH_PARALLEL

        return MAX_BATCH_PARALLEL
    return 1


def register_backend(name: str, target: str) -> None:
    """Register a backend class by import path, e.g. register_backend('mine', 'pkg.mod:MyBackend')."""
    _REGISTRY[name] = target


def make_backend(model: "ModelConfig", **kwargs: Any) -> Backend:
    target = _REGISTRY.get(model.backend)
    if target is None:
        raise ConfigError(
            f"models.{model.name}.backend",
            f"unknown backend {model.backend!r}",
            fix=f"use one of: {', '.join(sorted(_REGISTRY))}",
        )
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(model, **kwargs)

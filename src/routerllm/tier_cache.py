"""Tiers as `routerllm compare` and `routerllm calibrate` see them: a generation cache in front of
each backend.

    cache = GenerationCache(run_dir / "generations.jsonl")
    tier = CachedTier(name, model_config, backend, cache, tasks_by_id, carbon, intensity)
    tier.generate(requests)        # cached answers, the others in ONE backend call

A strategy's generic request is turned into this tier's request (chat template or continuation,
its max_new_tokens and stop sequences, evaluation/prompting.build_request). Answers are cached per
(tier, task, sample, temperature, prompt variant), persisted as JSONL (fsync per line), so
strategies that share a tier's answer do not regenerate it (the cascade's first small answer IS
the small-only answer) and a resumed run regenerates nothing it already has.

Energy and CO2 are those of the batch that generated an answer, split over its answers by
generated tokens (`evaluation.carbon.split_by_share`): measured by codecarbon around the batch for
local tiers; for replay tiers modelled as the batch's longest member (its samples decode together,
so the batch draws the tier's power for that long), consistent with the driver's clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routerllm.backends.base import Backend, Generation, GenerationRequest
from routerllm.exceptions import RunError
from routerllm.routing.base import available_samples

if TYPE_CHECKING:
    from routerllm.config import ModelConfig
    from routerllm.evaluation.carbon import CarbonTracker
    from routerllm.evaluation.humaneval import Task

logger = logging.getLogger(__name__)

GENERATIONS_FILE = "generations.jsonl"


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

    def peek(self, key: str) -> dict[str, Any] | None:
        """The entry, without counting a hit."""
        return self._entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.misses += 1
        entry = {"key": key, **entry}
        self._entries[key] = entry
        if self._log is not None:
            self._log.append(entry)


class CachedTier:
    """A tier's backend behind the generation cache (module docstring)."""

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

    def available_samples(self, task_id: str | None) -> int | None:
        return available_samples(self.backend, task_id)

    def _tier_request(self, request: GenerationRequest, task: "Task") -> GenerationRequest:
        from routerllm.evaluation.prompting import build_request

        tier_request = build_request(task, self.model, sample=request.sample, temperature=request.temperature,
                                     seed=request.seed)
        if request.messages:
            tier_request.messages = request.messages
        if request.prompt != task.prompt:
            tier_request.prompt = request.prompt
        if request.stop:  # a strategy's own request (tests of the function) brings its own stop sequences
            tier_request.stop = list(request.stop)
        return tier_request

    def _task(self, request: GenerationRequest) -> "Task":
        task = self.tasks.get(request.task_id or "")
        if task is None:
            raise RunError(f"request for unknown task {request.task_id!r}", fix="pass task_id of a loaded task")
        return task

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        keys = [GenerationCache.key(self.name, r, self._task(r)) for r in requests]
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, requests):
            if self.cache.get(key) is None and key not in missing:
                missing[key] = request
        if missing:
            self._generate_missing(missing)
        out = []
        for key in keys:
            entry = self.cache.peek(key)
            assert entry is not None
            generation = _generation_from_dict(entry["generation"])
            generation.extra = {**generation.extra, "co2_kg": entry.get("co2_kg"), "cache_key": key}
            out.append(generation)
        return out

    def _generate_missing(self, missing: dict[str, GenerationRequest]) -> None:
        from routerllm.evaluation.carbon import MODELLED_SOURCE, split_batch_energy

        tier_requests = [self._tier_request(r, self._task(r)) for r in missing.values()]
        measured: dict[str, Any] = {}
        if self.carbon is not None and self.model.backend != "replay":
            with self.carbon.task(f"{self.name}:batch of {len(tier_requests)}") as measured:
                generations = self.backend.generate(tier_requests)
        else:
            generations = self.backend.generate(tier_requests)
        if len(generations) != len(tier_requests):
            raise RunError(f"tier {self.name!r} returned {len(generations)} answers for {len(tier_requests)} requests",
                           fix="a backend's generate() returns one Generation per request, in order")
        parts = split_batch_energy(generations, measured, self.intensity,
                                   [float(g.completion_tokens) for g in generations])
        for key, generation, part in zip(missing, generations, parts):
            energy = None if part is None else part.get("energy_kwh")
            co2 = None if part is None else part.get("co2_kg")
            source = None if part is None else ("modelled" if part["source"] == MODELLED_SOURCE else "codecarbon")
            self.cache.put(key, {
                "generation": _generation_to_dict(dataclasses.replace(generation, energy_kwh=energy)),
                "co2_kg": co2,
                "energy_source": source,
                "batch": len(generations),
            })

"""The tiers as the server sees them: each tier's backend behind a `TierProxy`, their loading and
their health; a request's `Target` (the strategy or tier its `model` names) and its `Outcome`.

A `TierProxy` is what strategies call. It
* serializes an in-process (local) backend: one generation at a time per model (server.serialize_local);
* records, in the request's `Trace`, which tier the request is in and how many calls each tier got
  (the trace is how a time-out knows which tier it interrupted, and how `routerllm.calls` is counted);
* turns every failure into a BackendError that names the tier: a BackendError of the backend keeps
  its kind (timeout, unavailable, rejected), anything else is BackendUnavailable.

`/health` probes every tier (each within server.health_timeout_s): "ok" when all answer, "degraded"
when only the large tier is down and server.fallback_to_small lets a small tier answer for it,
else "unavailable" (503). A remote (openai) tier that was down at start-up is loaded again by a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from routerllm.backends.base import Backend, Generation, GenerationRequest, StreamingBackend, make_backend
from routerllm.exceptions import BackendError, BackendUnavailable

if TYPE_CHECKING:
    from routerllm.config import ModelConfig, RouterLLMConfig
    from routerllm.routing import Strategy
    from routerllm.server import protocol as p
    from routerllm.server.metrics import ServerMetrics

logger = logging.getLogger(__name__)


@dataclass
class Target:
    """What a request's `model` names: a strategy, or a tier (bypassing routing)."""

    name: str
    kind: Literal["strategy", "tier"]
    strategy: "Strategy | None" = None
    tier: str | None = None


@dataclass
class Outcome:
    """An answer and how it was routed."""

    generation: Generation
    info: "p.RoutingInfo"


@dataclass
class Trace:
    """What one request did to the tiers, visible from the event loop while its thread runs."""

    active: str | None = None  # the tier generating right now
    calls: dict[str, int] = field(default_factory=dict)


_TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("routerllm_trace", default=None)


def traced() -> tuple[Trace, contextvars.Context]:
    """A fresh trace and a context to run a request's thread work in (ctx.run(fn, ...))."""
    trace = Trace()
    ctx = contextvars.copy_context()
    ctx.run(_TRACE.set, trace)
    return trace, ctx


def _failure(name: str, exc: BaseException) -> BaseException:
    if isinstance(exc, BackendError):
        return exc.for_tier(name)
    if isinstance(exc, Exception):
        failure = BackendUnavailable(f"tier {name!r} failed: {type(exc).__name__}: {exc}", tier=name,
                                     fix="see the traceback in the server log")
        logger.warning("tier %s raised %s", name, type(exc).__name__, exc_info=exc)
        return failure
    return exc  # KeyboardInterrupt, GeneratorExit, ...: not a tier failure


class TierProxy:
    """One tier's backend as strategies see it (see the module docstring). Implements Backend."""

    def __init__(self, name: str, backend: Backend, serialize: bool) -> None:
        self.name = name
        self.backend = backend
        self.serialized = serialize
        self._lock: Any = threading.Lock() if serialize else contextlib.nullcontext()
        self.loaded = False
        self.load_error: str | None = None

    @property
    def streams(self) -> bool:
        """True when answers can be forwarded token by token: a streaming backend not serialized
        behind the local lock (a stream would hold the lock between the client's reads)."""
        return isinstance(self.backend, StreamingBackend) and not self.serialized

    def load(self) -> None:
        self.backend.load()

    def health(self) -> bool:
        return self.loaded and bool(self.backend.health())

    def close(self) -> None:
        self.backend.close()

    @contextlib.contextmanager
    def _call(self, count: int) -> Iterator[Trace | None]:
        """One call: counted and marked active in the request's trace; its failure named for this tier."""
        trace = _TRACE.get()
        if trace is not None:
            trace.active = self.name
            trace.calls[self.name] = trace.calls.get(self.name, 0) + count
        try:
            yield trace
        except BaseException as exc:
            failure = _failure(self.name, exc)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            if trace is not None:
                trace.active = None

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        with self._call(len(requests)), self._lock:
            return self.backend.generate(requests)

    def stream(self, request: GenerationRequest) -> Iterator[str | Generation]:
        """The backend's stream (text pieces, then the Generation), traced like generate()."""
        assert isinstance(self.backend, StreamingBackend), f"tier {self.name!r} does not stream"
        with self._call(1) as trace:
            for item in self.backend.stream(request):
                if trace is not None:
                    trace.active = None  # the client reads: the tier is not what the request waits for
                yield item
                if trace is not None:
                    trace.active = self.name


class ServedTiers:
    """Every tier of the config behind its proxy: load, health, close."""

    def __init__(self, config: "RouterLLMConfig", backends: dict[str, Backend] | None) -> None:
        server = config.server
        models: list[ModelConfig] = [*config.models.small_llms, config.models.large_llm]
        self.configs = {m.name: m for m in models}
        self.large = config.models.large_llm.name
        self.small = [m.name for m in config.models.small_llms]
        self.health_timeout_s = server.health_timeout_s
        self.fallback_to_small = server.fallback_to_small
        self.owned: list[Backend] = []
        given = dict(backends or {})
        self.proxies: dict[str, TierProxy] = {}
        for model in models:
            backend = given.get(model.name)
            if backend is None:
                backend = make_backend(model)
                self.owned.append(backend)
            serialize = server.serialize_local and model.backend == "local"
            self.proxies[model.name] = TierProxy(model.name, backend, serialize)

    def __getitem__(self, name: str) -> TierProxy:
        return self.proxies[name]

    def __contains__(self, name: object) -> bool:
        return name in self.proxies

    def role(self, name: str) -> str:
        return "large" if name == self.large else "small"

    def load(self) -> None:
        """Load every tier; a tier that fails to load is logged and left unready (/health says so)."""
        for name, proxy in self.proxies.items():
            if proxy.loaded:
                continue
            try:
                proxy.load()
                proxy.loaded = True
            except Exception as exc:  # noqa: BLE001 - a tier that cannot load makes /health 503
                proxy.load_error = str(exc)
                logger.error("tier %s did not load: %s", name, exc)

    def close(self) -> None:
        for backend in self.owned:
            with contextlib.suppress(Exception):
                backend.close()

    async def health(self, ready: bool, metrics: "ServerMetrics") -> tuple[str, dict[str, dict[str, Any]]]:
        """(status, per-tier results): status "ok" | "degraded" | "unavailable" (module docstring).
        Tier errors are reported by kind, not by message (messages may name files and addresses)."""

        def check(proxy: TierProxy) -> bool:
            if not proxy.loaded:
                if self.configs[proxy.name].backend != "openai":
                    return False  # a local or replay load is not retried per probe
                proxy.load()  # an endpoint that was down at start-up may be up now
                proxy.loaded, proxy.load_error = True, None
            return proxy.health()

        async def probe(proxy: TierProxy) -> dict[str, Any]:
            if not ready:
                return {"ready": False, "error": "loading"}
            try:
                ok = await asyncio.wait_for(asyncio.to_thread(check, proxy), self.health_timeout_s)
            except asyncio.TimeoutError:
                return {"ready": False, "error": f"health probe took over {self.health_timeout_s:g} s"}
            except Exception as exc:  # noqa: BLE001
                logger.info("health probe of tier %s failed: %s", proxy.name, exc)
                return {"ready": False, "error": _probe_error(exc)}
            if ok:
                return {"ready": True}
            return {"ready": False, "error": "did not load" if not proxy.loaded else "health probe failed"}

        results = await asyncio.gather(*(probe(proxy) for proxy in self.proxies.values()))
        tiers = dict(zip(self.proxies, results))
        for name, result in tiers.items():
            result["role"] = self.role(name)
            metrics.tier_up.labels(name).set(1 if result["ready"] else 0)
        down = {name for name, r in tiers.items() if not r["ready"]}
        if ready and not down:
            status = "ok"
        elif ready and down == {self.large} and self.fallback_to_small and any(tiers[n]["ready"] for n in self.small):
            status = "degraded"  # every request is still answered: the large tier's by a small fallback
        else:
            status = "unavailable"
        return status, tiers


def _probe_error(exc: Exception) -> str:
    """A probe failure as /health shows it (unauthenticated): its kind, not its message."""
    text = str(exc)
    if "cannot connect" in text:
        return "cannot connect"
    if isinstance(exc, BackendError):
        return type(exc).__name__
    return "health probe failed"

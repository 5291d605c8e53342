"""The OpenAI-compatible HTTP service: `build_app(config, backends=None) -> FastAPI`.

    GET  /v1/models            tiers and routing strategies (`model` of a request names one of them)
    POST /v1/completions       prompt -> routed completion   (stream: true -> server-sent events)
    POST /v1/chat/completions  messages -> routed chat answer (stream: true -> server-sent events)
    GET  /health               200 "ok" when every tier answers its health probe; 200 "degraded" when
                               only the large tier is down and server.fallback_to_small can answer
                               for it; else 503 "unavailable" (loading, a small tier down, no fallback)
    GET  /metrics              Prometheus text (see server/metrics.py)

`model` is a strategy name (`router` = the config's default strategy, `cascade`, `small`, ...) or a
tier name (e.g. `gemma3_270m`) that bypasses routing. Every answer carries a `routerllm` field and
`x-routerllm-tier`, `x-routerllm-strategy`, `x-routerllm-reason`, `x-routerllm-fallback` headers.

Protection: bearer API keys (server.api_keys and the env var server.api_keys_env; none: open),
strict request validation with OpenAI-style 4xx errors naming the field, a bounded queue (429 and
Retry-After beyond server.max_queue requests admitted), a per-request time limit
(server.request_timeout_s), and a fallback to the cheapest small tier when the large tier fails or
times out (server.fallback_to_small; else 503). Unexpected failures still answer with a JSON error.

Streaming: a tier named directly whose backend streams (the `openai` backend: vLLM and other
endpoints) has its tokens forwarded as they arrive; a strategy decides on whole answers (the
cascade must run the small answer first), so a routed answer is streamed once it is chosen.
Energy and CO2 are reported where the tier's backend gives energy (replay: modelled, labelled so);
they are not invented for tiers that do not.

Generation is blocking (torch, HTTP clients), so it runs in a thread pool of
server.max_concurrency threads; the event loop only parses, admits, waits and writes. Local
(in-process) tiers are called one generation at a time (server.serialize_local).
All state lives on `app.state.routerllm` (a `ServerState`); this module has no globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hmac
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from routerllm.backends.base import Backend, Generation, GenerationRequest
from routerllm.exceptions import BackendError, RouterLLMError
from routerllm.server import protocol as p
from routerllm.server.metrics import ServerMetrics

if TYPE_CHECKING:
    from routerllm.config import RouterLLMConfig
    from routerllm.routing import Strategy, Tiers

logger = logging.getLogger(__name__)

# Name of the strategy alias that means "the config's router.strategy".
ROUTER_ALIAS = "router"
# Characters of the routing reason sent in the x-routerllm-reason header.
REASON_HEADER_CHARS = 200
# Bytes allowed in a request body beyond the prompt itself (messages' JSON, other fields).
BODY_SLACK_BYTES = 64 * 1024
# Path -> `endpoint` label of the request metrics.
_ENDPOINTS = {"/v1/completions": "completions", "/v1/chat/completions": "chat", "/v1/models": "models"}
# Characters per server-sent event when an already finished answer is streamed.
STREAM_CHUNK_CHARS = 24


class ApiError(Exception):
    """An error answered with an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        type: p.ErrorType,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            p.error_body(self.message, self.type, self.param, self.code), status_code=self.status, headers=self.headers
        )


# --- tiers as the server sees them ---------------------------------------------------------------


@dataclass
class _Trace:
    """What one request did to the tiers, visible from the event loop while its thread runs."""

    active: str | None = None
    failed: str | None = None
    calls: dict[str, int] = field(default_factory=dict)


_TRACE: contextvars.ContextVar[_Trace | None] = contextvars.ContextVar("routerllm_trace", default=None)


class TierProxy:
    """Wraps a tier's backend: records which tier a request is in (for fallback after a timeout)
    and serializes in-process backends. Everything else is delegated to the backend."""

    def __init__(self, name: str, backend: Backend, serialize: bool) -> None:
        self.name = name
        self.backend = backend
        self._lock = threading.Lock() if serialize else contextlib.nullcontext()
        self.loaded = False
        self.load_error: str | None = None

    def __getattr__(self, item: str) -> Any:
        return getattr(self.backend, item)

    def load(self) -> None:
        self.backend.load()

    def health(self) -> bool:
        return self.loaded and bool(self.backend.health())

    def close(self) -> None:
        self.backend.close()

    def stream(self, request: GenerationRequest) -> Iterator[str | Generation]:
        """The backend's stream (text pieces, then the Generation), traced like generate()."""
        trace = _TRACE.get()
        if trace is not None:
            trace.active = self.name
            trace.calls[self.name] = trace.calls.get(self.name, 0) + 1
        try:
            for item in self.backend.stream(request):
                if trace is not None:
                    trace.active = None
                yield item
                if trace is not None:
                    trace.active = self.name
        except BaseException:
            if trace is not None:
                trace.failed = self.name
            raise

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        trace = _TRACE.get()
        if trace is not None:
            trace.active = self.name
            trace.calls[self.name] = trace.calls.get(self.name, 0) + len(requests)
        try:
            with self._lock:
                out = self.backend.generate(requests)
            if trace is not None and any(g.finish_reason == "error" for g in out):
                trace.failed = self.name
            return out
        except BaseException:
            if trace is not None:
                trace.failed = self.name
            raise
        finally:
            if trace is not None:
                trace.active = None


@dataclass
class Target:
    """What a request's `model` names."""

    name: str
    kind: Literal["strategy", "tier"]
    strategy: "Strategy | None" = None
    tier: str | None = None


@dataclass
class Outcome:
    generation: Generation
    info: p.RoutingInfo


class Admission:
    """The bounded queue: counts requests admitted and not finished, refuses beyond `limit`.

    A request holds its slot until its answer is sent AND every thread it started has finished:
    a generation abandoned after a timeout still occupies a worker, so it still counts."""

    def __init__(self, limit: int, metrics: ServerMetrics) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()
        self._metrics = metrics

    def try_enter(self) -> "Slot | None":
        with self._lock:
            if self.count >= self.limit:
                return None
            self.count += 1
            self._metrics.queue_depth.set(self.count)
            return Slot(self)

    def _leave(self) -> None:
        with self._lock:
            self.count -= 1
            self._metrics.queue_depth.set(self.count)


class Slot:
    """One admitted request: released when its holders (the request, its threads) are all done."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._holders = 1
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self._holders += 1

    def release(self, *_: Any) -> None:
        with self._lock:
            self._holders -= 1
            done = self._holders == 0
        if done:
            self._admission._leave()


class _Timeout(Exception):
    """The request's time limit passed while a thread was still generating."""


class ServerState:
    """Everything a request needs: config, tiers, strategies, pools, metrics."""

    def __init__(self, config: "RouterLLMConfig", backends: dict[str, Backend] | None) -> None:
        from routerllm.backends.base import make_backend

        self.config = config
        self.server = config.server
        self.metrics = ServerMetrics()
        self.admission = Admission(self.server.max_queue, self.metrics)
        self.pool = ThreadPoolExecutor(self.server.max_concurrency, thread_name_prefix="routerllm-gen")
        # Fallbacks run apart, so that they do not queue behind a hung large tier.
        self.fallback_pool = ThreadPoolExecutor(self.server.max_concurrency, thread_name_prefix="routerllm-fallback")
        self.api_keys = self._api_keys()
        self.owned: list[Backend] = []
        models = [*config.models.small_llms, config.models.large_llm]
        self.tier_configs = {m.name: m for m in models}
        self.large_name = config.models.large_llm.name
        self.small_names = [m.name for m in config.models.small_llms]
        given = dict(backends or {})
        self.proxies: dict[str, TierProxy] = {}
        for model in models:
            backend = given.get(model.name)
            if backend is None:
                backend = make_backend(model)
                self.owned.append(backend)
            serialize = self.server.serialize_local and model.backend == "local"
            self.proxies[model.name] = TierProxy(model.name, backend, serialize)
        self.tiers: Tiers | None = None
        self.strategies: dict[str, Strategy] = {}
        self.default_strategy = config.router.strategy
        self.known_models: set[str] = set()
        self.sandbox: Any = None
        self.ready = False
        self.started = time.time()

    def _api_keys(self) -> list[str]:
        keys = list(self.server.api_keys)
        if self.server.api_keys_env:
            keys += [k.strip() for k in os.environ.get(self.server.api_keys_env, "").split(",") if k.strip()]
        return keys

    # --- start-up --------------------------------------------------------------------------------

    def load(self) -> None:
        """Load every tier (errors are logged and leave the tier unready), then build the strategies."""
        for name, proxy in self.proxies.items():
            if proxy.loaded:
                continue
            try:
                proxy.load()
                proxy.loaded = True
            except Exception as exc:  # noqa: BLE001 - a tier that cannot load makes /health 503
                proxy.load_error = str(exc)
                logger.error("tier %s did not load: %s", name, exc)
        self.build_strategies()
        self.known_models = {ROUTER_ALIAS, *self.strategies, *self.proxies}
        self.ready = True

    def build_strategies(self) -> None:
        from routerllm.routing import Tiers, build_strategy

        self.tiers = Tiers(
            small=[(n, self.proxies[n]) for n in self.small_names],
            large=(self.large_name, self.proxies[self.large_name]),
            configs=dict(self.tier_configs),
        )
        names = list(dict.fromkeys([*self.config.router.strategies, self.default_strategy]))
        # the cascade checks small answers against the prompt's visible examples in the sandbox
        sandbox = self.sandbox = self._sandbox() if "cascade" in names else None
        for name in names:
            try:
                self.strategies[name] = build_strategy(name, self.tiers, self.config.router, sandbox=sandbox)
            except RouterLLMError as exc:
                if name == self.default_strategy:
                    raise
                logger.warning("strategy %s is not served: %s", name, exc)

    def _sandbox(self) -> Any:
        from routerllm.evaluation.sandbox import Sandbox

        return Sandbox(timeout_s=self.config.router.cascade.example_timeout_s,
                       workers=max(1, min(self.server.max_concurrency, self.config.benchmark.workers)))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.fallback_pool.shutdown(wait=False, cancel_futures=True)
        for backend in self.owned:
            with contextlib.suppress(Exception):
                backend.close()
        for strategy in self.strategies.values():
            close = getattr(strategy, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                self.sandbox.close()

    # --- requests --------------------------------------------------------------------------------

    def model_cards(self) -> list[p.ModelCard]:
        created = int(self.started)
        cards = [
            p.ModelCard(
                id=ROUTER_ALIAS, created=created, kind="strategy",
                description=f"the default strategy ({self.default_strategy})",
            )
        ]
        for name, strategy in self.strategies.items():
            cards.append(p.ModelCard(id=name, created=created, kind="strategy", description=strategy.description))
        for name in [*self.small_names, self.large_name]:
            role = "large tier" if name == self.large_name else "small tier"
            model = self.tier_configs[name]
            cards.append(
                p.ModelCard(id=name, created=created, kind="tier", description=f"{role} ({model.backend} backend)")
            )
        return cards

    def resolve(self, model: str) -> Target:
        name = self.default_strategy if model == ROUTER_ALIAS else model
        if name in self.strategies:
            return Target(model, "strategy", strategy=self.strategies[name])
        if name in self.proxies:
            return Target(model, "tier", tier=name)
        known = [ROUTER_ALIAS, *self.strategies, *self.proxies]
        raise ApiError(
            404, f"The model '{model}' does not exist. Use one of: {', '.join(known)} (GET /v1/models lists them).",
            "not_found_error", param="model", code="model_not_found",
        )

    def _execute(self, target: Target, request: GenerationRequest, entry_point: str | None) -> Outcome:
        """Runs in a pool thread."""
        trace = _TRACE.get()
        if target.kind == "tier":
            assert target.tier is not None
            (generation,) = self.proxies[target.tier].generate([request])
            info = p.RoutingInfo(tier=target.tier, reason=f"model {target.name!r} names this tier directly")
        else:
            assert target.strategy is not None
            answer = target.strategy.answer(request, entry_point=entry_point)
            generation = answer.generation
            d = answer.decision
            info = p.RoutingInfo(
                strategy=d.strategy, tier=d.tier, reason=d.reason, escalated=d.escalated,
                attempts=max(1, len(answer.attempts)), details=_jsonable(d.details),
            )
        if generation.finish_reason == "error":
            raise BackendError(f"tier {info.tier!r} returned an error: {generation.extra.get('error', '')}")
        info.calls = dict(trace.calls) if trace else {}
        return Outcome(generation, info)

    @staticmethod
    def traced_context() -> tuple[_Trace, contextvars.Context]:
        trace = _Trace()
        ctx = contextvars.copy_context()
        ctx.run(_TRACE.set, trace)
        return trace, ctx

    async def _run_in(self, pool: ThreadPoolExecutor, slot: Slot, fn: Any, *args: Any,
                      traced: tuple[_Trace, contextvars.Context] | None = None, timeout_s: float | None = None) -> Any:
        """Run fn in `pool` under the request time limit. Raises _Timeout or the function's
        exception, each with the request's tier trace attached as `.trace`."""
        trace, ctx = traced or self.traced_context()
        loop = asyncio.get_running_loop()
        slot.hold()
        future = loop.run_in_executor(pool, ctx.run, fn, *args)
        future.add_done_callback(slot.release)
        timeout = self.server.request_timeout_s if timeout_s is None else max(0.0, timeout_s)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            # the thread runs on; retrieve its result later so nothing logs "exception never retrieved"
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            exc = _Timeout()
            exc.trace = trace  # type: ignore[attr-defined]
            raise exc from None
        except Exception as exc:
            exc.trace = trace  # type: ignore[attr-defined]
            raise

    def admit(self) -> Slot:
        slot = self.admission.try_enter()
        if slot is None:
            raise ApiError(
                429, f"The server is at its limit of {self.server.max_queue} queued requests; retry after "
                f"{self.server.retry_after_s} s.", "rate_limit_error", code="queue_full",
                headers={"Retry-After": str(self.server.retry_after_s)},
            )
        return slot

    def streams_live(self, target: Target) -> bool:
        """True when `target` is a tier whose backend streams (the openai backend): its tokens are
        forwarded as they come. Strategies decide on whole answers, so their answers are streamed
        once chosen."""
        if target.kind != "tier" or target.tier is None:
            return False
        proxy = self.proxies[target.tier]
        return callable(getattr(proxy.backend, "stream", None)) and isinstance(proxy._lock, contextlib.nullcontext)

    async def answer(self, target: Target, request: GenerationRequest, entry_point: str | None) -> Outcome:
        """Admit, run, and fall back to the small tier when the large one fails or times out."""
        slot = self.admit()
        try:
            return await self._answer_admitted(slot, target, request, entry_point)
        finally:
            slot.release()

    async def _answer_admitted(self, slot: Slot, target: Target, request: GenerationRequest,
                               entry_point: str | None) -> Outcome:
        try:
            return await self._run_in(self.pool, slot, self._execute, target, request, entry_point)
        except ApiError:
            raise
        except Exception as exc:
            return await self.recover(slot, target, request, exc)

    async def recover(self, slot: Slot, target: Target, request: GenerationRequest, exc: Exception) -> Outcome:
        """After a failure or timeout: the small tier's answer when the large tier failed and the config
        allows a fallback; otherwise an ApiError (503 / 504). Unexpected errors propagate (-> 500)."""
        trace: _Trace = getattr(exc, "trace", _Trace())
        timed_out = isinstance(exc, _Timeout)
        large_failed = trace.failed == self.large_name or (timed_out and trace.active == self.large_name)
        if timed_out:
            why = f"no answer within server.request_timeout_s={self.server.request_timeout_s:g} s"
        else:
            why = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        if not large_failed:
            if timed_out:
                raise ApiError(504, f"The request timed out: {why}.", "timeout_error", code="timeout") from None
            if isinstance(exc, RouterLLMError):
                logger.warning("request failed: %s", exc)
                raise ApiError(503, f"The tier failed: {why}", "service_unavailable_error",
                               code="backend_error") from None
            raise exc
        reason = "timeout" if timed_out else "error"
        if not (self.server.fallback_to_small and self.small_names):
            logger.warning("large tier %s failed (%s); no fallback configured", self.large_name, why)
            self.metrics.large_failures.labels(self.large_name, reason).inc()
            raise ApiError(
                503, f"The large tier '{self.large_name}' is unavailable ({why}) and server.fallback_to_small is "
                "off (or there is no small tier).", "service_unavailable_error", code="large_tier_unavailable",
            ) from None
        return await self._fallback(slot, target, request, why, reason, trace)

    async def _fallback(self, slot: Slot, target: Target, request: GenerationRequest, why: str, reason: str,
                        failed: _Trace) -> Outcome:
        small = self.small_names[0]
        logger.warning("large tier %s failed (%s); falling back to %s", self.large_name, why, small)
        self.metrics.large_failures.labels(self.large_name, reason).inc()
        self.metrics.fallbacks.labels(self.large_name, small, reason).inc()
        fallback = Target(target.name, "tier", tier=small)
        try:
            outcome = await self._run_in(self.fallback_pool, slot, self._execute, fallback, request, None)
        except _Timeout:
            raise ApiError(504, f"The large tier failed ({why}) and the small tier '{small}' timed out too.",
                           "timeout_error", code="timeout") from None
        except Exception as exc:  # noqa: BLE001
            raise ApiError(503, f"The large tier failed ({why}) and the small tier '{small}' failed too: {exc}",
                           "service_unavailable_error", code="all_tiers_failed") from None
        info = outcome.info
        info.strategy = target.strategy.name if target.strategy else None
        info.reason = f"fallback: large tier {self.large_name!r} failed ({why}); answered by {small!r}"
        info.fallback, info.fallback_from, info.fallback_reason = True, self.large_name, why
        calls = dict(failed.calls)
        for name, count in info.calls.items():
            calls[name] = calls.get(name, 0) + count
        info.calls = calls
        return outcome

    def record(self, endpoint: str, model: str, status: int, elapsed_s: float, outcome: Outcome | None) -> None:
        m = self.metrics
        tier = outcome.info.tier if outcome else "none"
        m.requests.labels(endpoint, model, tier, str(status)).inc()
        m.latency.labels(endpoint, tier).observe(elapsed_s)
        if outcome is None:
            return
        info, gen = outcome.info, outcome.generation
        if info.strategy:
            m.decisions.labels(info.strategy, info.tier).inc()
            if info.escalated:
                m.escalations.labels(info.strategy).inc()
        m.tokens.labels(tier, "prompt").inc(gen.prompt_tokens)
        m.tokens.labels(tier, "completion").inc(gen.completion_tokens)
        if gen.ttft_s is not None:
            m.ttft.labels(tier).observe(gen.ttft_s)
        if gen.energy_kwh is not None:
            m.energy.labels(tier, gen.timing).inc(gen.energy_kwh)
            m.co2.labels(tier, gen.timing).inc(gen.energy_kwh * self.server.carbon_intensity_kg_per_kwh)

    async def health(self) -> tuple[bool, dict[str, Any]]:
        def check(proxy: TierProxy) -> bool:
            if not proxy.loaded:
                if self.tier_configs[proxy.name].backend != "openai":
                    raise BackendError(proxy.load_error or "not loaded")  # a local load is not retried per probe
                proxy.load()  # an endpoint that was down at start-up may be up now
                proxy.loaded, proxy.load_error = True, None
            return proxy.health()

        async def probe(name: str, proxy: TierProxy) -> dict[str, Any]:
            if not self.ready:
                return {"ready": False, "error": "loading"}
            try:
                ok = await asyncio.wait_for(asyncio.to_thread(check, proxy), self.server.health_timeout_s)
                return {"ready": bool(ok)} if ok else {"ready": False, "error": "health probe failed"}
            except asyncio.TimeoutError:
                return {"ready": False, "error": f"health probe took over {self.server.health_timeout_s:g} s"}
            except Exception as exc:  # noqa: BLE001
                return {"ready": False, "error": str(exc)}

        names = list(self.proxies)
        results = await asyncio.gather(*(probe(n, self.proxies[n]) for n in names))
        tiers = dict(zip(names, results))
        for name, result in tiers.items():
            role = "large" if name == self.large_name else "small"
            result["role"] = role
            self.metrics.tier_up.labels(name).set(1 if result["ready"] else 0)
        down = {name for name, r in tiers.items() if not r["ready"]}
        if self.ready and not down:
            status = "ok"
        elif (self.ready and down == {self.large_name} and self.server.fallback_to_small
              and any(tiers[n]["ready"] for n in self.small_names)):
            status = "degraded"  # every request is still answered: the large tier's by a small fallback
        else:
            status = "unavailable"
        return status != "unavailable", {"status": status, "tiers": tiers, "queue": self.admission.count}


def _max_body_bytes(config: "RouterLLMConfig") -> int:
    """Largest request body worth parsing: the prompt limit at JSON's worst case (a \\uXXXX escape,
    6 bytes, per character) plus room for the other fields. Beyond it: 413 before any parsing."""
    return 6 * config.server.max_prompt_chars + BODY_SLACK_BYTES


class BodySizeLimit:
    """Pure ASGI middleware: refuses a request whose Content-Length exceeds `max_bytes` with an
    OpenAI-style 413, before the body is read. (A chunked body without Content-Length is read and
    then checked field by field: max_prompt_chars.)"""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length":
                    try:
                        size = int(value)
                    except ValueError:
                        size = 0
                    if size > self.max_bytes:
                        response = ApiError(
                            413, f"The request body has {size} bytes; this server reads at most {self.max_bytes} "
                            "(from server.max_prompt_chars). Shorten the prompt.", "invalid_request_error",
                            param="prompt", code="request_too_large",
                        ).response()
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


# --- request helpers -----------------------------------------------------------------------------


def _headers(info: p.RoutingInfo) -> dict[str, str]:
    reason = " ".join(info.reason.split())
    reason = reason.encode("ascii", "replace").decode("ascii")[:REASON_HEADER_CHARS]
    return {
        "x-routerllm-tier": info.tier,
        "x-routerllm-strategy": info.strategy or "none",
        "x-routerllm-reason": reason,
        "x-routerllm-fallback": "true" if info.fallback else "false",
    }


def _complete_info(state: ServerState, outcome: Outcome) -> p.RoutingInfo:
    gen, info = outcome.generation, outcome.info
    info.timing = gen.timing
    info.ttft_s = gen.ttft_s
    info.generation_s = gen.total_s
    info.energy_kwh = gen.energy_kwh
    if gen.energy_kwh is not None:
        info.co2_kg = gen.energy_kwh * state.server.carbon_intensity_kg_per_kwh
    return info


def _check_limits(state: ServerState, max_tokens: int | None, max_tokens_param: str, text: str, text_param: str,
                  stop: list[str]) -> int:
    limit = state.server.max_tokens_limit
    if max_tokens is not None and not 1 <= max_tokens <= limit:
        raise ApiError(400, f"max_tokens must be between 1 and {limit} (server.max_tokens_limit); got {max_tokens}.",
                       "invalid_request_error", param=max_tokens_param, code="invalid_value")
    if len(text) > state.server.max_prompt_chars:
        raise ApiError(
            400, f"The {text_param} has {len(text)} characters; this server accepts at most "
            f"{state.server.max_prompt_chars} (server.max_prompt_chars). Shorten it.",
            "invalid_request_error", param=text_param, code="context_length_exceeded",
        )
    if len(stop) > 4:
        raise ApiError(400, f"At most 4 stop sequences are accepted; got {len(stop)}.", "invalid_request_error",
                       param="stop", code="invalid_value")
    return max_tokens if max_tokens is not None else min(state.server.default_max_tokens, limit)


def _sse(payload: Any) -> str:
    data = payload.model_dump_json(exclude_none=False) if hasattr(payload, "model_dump_json") else json.dumps(payload)
    return f"data: {data}\n\n"


def _pieces(text: str) -> Iterator[str]:
    for i in range(0, len(text), STREAM_CHUNK_CHARS):
        yield text[i : i + STREAM_CHUNK_CHARS]


def _usage(gen: Generation) -> p.Usage:
    return p.Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens,
                   total_tokens=gen.prompt_tokens + gen.completion_tokens)


# --- the app -------------------------------------------------------------------------------------


def build_app(config: "RouterLLMConfig", backends: dict[str, Backend] | None = None) -> FastAPI:
    """The service for `config`. `backends` may supply ready backends by tier name; the others are
    made from the config. Tiers are loaded at start-up (idempotent when already loaded)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state: ServerState = app.state.routerllm
        await asyncio.to_thread(state.load)
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="routerllm", description=__doc__, version="0.1.0", lifespan=lifespan)
    app.state.routerllm = ServerState(config, backends)
    app.add_middleware(BodySizeLimit, max_bytes=_max_body_bytes(config))

    def state_of(request: Request) -> ServerState:
        return request.app.state.routerllm

    async def authorize(request: Request) -> None:
        state = state_of(request)
        if not state.api_keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "Missing API key: send 'Authorization: Bearer <key>'.", "authentication_error",
                           code="missing_api_key")
        key = key.strip()
        if not any(hmac.compare_digest(key.encode(), k.encode()) for k in state.api_keys):
            raise ApiError(401, "Incorrect API key provided.", "authentication_error", code="invalid_api_key")

    # --- error handlers: every error is an OpenAI-style JSON body ----------------------------------

    def record_error(request: Request, status: int) -> None:
        endpoint = _ENDPOINTS.get(request.url.path, "other")
        state_of(request).record(endpoint, "unknown", status, 0.0, None)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if not getattr(exc, "recorded", False):
            record_error(request, exc.status)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        record_error(request, 400)
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": "invalid"}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return ApiError(400, f"The request body is not valid JSON ({detail}).", "invalid_request_error",
                            code="invalid_json").response()
        loc = [x for x in first.get("loc", ()) if x != "body"]
        # drop pydantic's union-member tags ('str', 'list[str]', 'function-...') from the path
        loc = [x for x in loc if not (isinstance(x, str) and ("[" in x or x in ("str", "int", "float", "bool")))]
        param = ".".join(str(x) for x in loc) or None
        if param is None:
            message = f"The request body is invalid: {first.get('msg')} (send a JSON object)."
        else:
            message = f"Invalid value for '{param}': {first.get('msg')}."
        return ApiError(400, message, "invalid_request_error", param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        record_error(request, exc.status_code)
        kind: p.ErrorType = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}", kind,
                        headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        record_error(request, 500)
        return ApiError(500, f"Internal error ({type(exc).__name__}); see the server log.", "server_error",
                        code="internal_error").response()

    # --- routes --------------------------------------------------------------------------------

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def list_models(request: Request) -> p.ModelList:
        return p.ModelList(data=state_of(request).model_cards())

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: p.CompletionRequest, request: Request) -> Response:
        state = state_of(request)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise ApiError(400, f"prompt must be one string (routerllm answers one prompt per request); got a list of "
                           f"{len(prompts)}.", "invalid_request_error", param="prompt", code="invalid_value")
        stop = p.stop_list(body.stop)
        max_tokens = _check_limits(state, body.max_tokens, "max_tokens", prompts[0], "prompt", stop)
        gen_request = _generation_request(body, prompts[0], None, max_tokens, stop)
        return await _serve(state, "completions", body, gen_request, chat=False)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(body: p.ChatCompletionRequest, request: Request) -> Response:
        state = state_of(request)
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        text = "\n".join(m["content"] for m in messages)
        stop = p.stop_list(body.stop)
        requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        max_tokens = _check_limits(state, requested, param, text, "messages", stop)
        user = [m["content"] for m in messages if m["role"] == "user"]
        gen_request = _generation_request(body, user[-1] if user else text, messages, max_tokens, stop)
        return await _serve(state, "chat", body, gen_request, chat=True)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        ok, body = await state_of(request).health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        m = state_of(request).metrics
        return Response(m.render(), media_type=m.content_type)

    return app


def _generation_request(body: Any, prompt: str, messages: list[dict[str, str]] | None, max_tokens: int,
                        stop: list[str]) -> GenerationRequest:
    opts = body.routerllm
    return GenerationRequest(
        prompt=prompt, messages=messages, max_new_tokens=max_tokens, temperature=body.temperature, stop=stop,
        task_id=opts.task_id if opts else None, sample=opts.sample if opts else 0, seed=body.seed,
    )


async def _serve(state: ServerState, endpoint: str, body: Any, gen_request: GenerationRequest, chat: bool) -> Response:
    start = time.perf_counter()
    outcome: Outcome | None = None
    status = 500
    model = "unknown"
    try:
        target = state.resolve(body.model)
        model = body.model  # a known name: a bounded label value
        if body.stream and state.streams_live(target):
            status = 0  # the live stream records itself when it ends
            return await _serve_live(state, endpoint, body, gen_request, chat, target, start)
        entry_point = body.routerllm.entry_point if body.routerllm else None
        outcome = await state.answer(target, gen_request, entry_point)
        status = 200
    except ApiError as exc:
        status = exc.status
        exc.recorded = True  # type: ignore[attr-defined]
        raise
    finally:
        if status != 0:
            state.record(endpoint, model, status, time.perf_counter() - start, outcome)
    return _respond(state, body, outcome, chat)


def _respond(state: ServerState, body: Any, outcome: Outcome, chat: bool) -> Response:
    """A finished answer as one JSON body, or (stream: true) as server-sent events."""
    info = _complete_info(state, outcome)
    headers = _headers(info)
    gen = outcome.generation
    rid = p.new_id("chatcmpl" if chat else "cmpl")
    created = p.now()
    finish = p.finish_reason(gen.finish_reason)
    if not body.stream:
        if chat:
            payload: Any = p.ChatCompletion(
                id=rid, created=created, model=body.model, usage=_usage(gen), routerllm=info,
                choices=[p.ChatChoice(message=p.ChatCompletionMessage(content=gen.text), finish_reason=finish)],
            )
        else:
            payload = p.Completion(
                id=rid, created=created, model=body.model, usage=_usage(gen), routerllm=info,
                choices=[p.CompletionChoice(text=gen.text, finish_reason=finish)],
            )
        return Response(payload.model_dump_json(), media_type="application/json", headers=headers)
    events = _Events(body, chat, rid, created)

    async def stream() -> AsyncIterator[str]:
        yield events.first(info)
        for piece in _pieces(gen.text):
            yield events.text(piece)
        for event in events.end(gen):
            yield event

    return StreamingResponse(stream(), media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})


class _Events:
    """Server-sent events of one answer, in the OpenAI API's shapes."""

    def __init__(self, body: Any, chat: bool, rid: str, created: int) -> None:
        self.body, self.chat, self.rid, self.created = body, chat, rid, created
        self.include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def _chunk(self, **kwargs: Any) -> str:
        cls = p.ChatCompletionChunk if self.chat else p.Completion
        return _sse(cls(id=self.rid, created=self.created, model=self.body.model, **kwargs))

    def first(self, info: p.RoutingInfo) -> str:
        """The opening event: the assistant role (chat) and the routing information."""
        if self.chat:
            return self._chunk(routerllm=info, choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(role="assistant", content=""))])
        return self._chunk(routerllm=info, choices=[p.CompletionChoice(text="", finish_reason=None)])

    def text(self, piece: str) -> str:
        if self.chat:
            return self._chunk(choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(content=piece))])
        return self._chunk(choices=[p.CompletionChoice(text=piece, finish_reason=None)])

    def end(self, gen: Generation, info: p.RoutingInfo | None = None) -> list[str]:
        finish = p.finish_reason(gen.finish_reason)
        if self.chat:
            out = [self._chunk(routerllm=info, choices=[p.ChatChunkChoice(delta=p.ChoiceDelta(), finish_reason=finish)])]
        else:
            out = [self._chunk(routerllm=info, choices=[p.CompletionChoice(text="", finish_reason=finish)])]
        if self.include_usage:
            out.append(self._chunk(choices=[], usage=_usage(gen)))
        return [*out, "data: [DONE]\n\n"]


async def _serve_live(state: ServerState, endpoint: str, body: Any, gen_request: GenerationRequest, chat: bool,
                      target: Target, start: float) -> Response:
    """Forward a streaming tier's tokens as they arrive. A failure before the first token is
    handled as for any request (fallback to the small tier, or an error status); a failure after
    it ends the stream with an OpenAI-style error event."""
    assert target.tier is not None
    slot = state.admit()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.server.request_timeout_s
    traced = state.traced_context()
    iterator = traced[1].run(state.proxies[target.tier].stream, gen_request)
    end = object()

    async def pull() -> Any:
        return await state._run_in(state.pool, slot, next, iterator, end, traced=traced,
                                   timeout_s=deadline - loop.time())

    def close_iterator() -> None:
        with contextlib.suppress(Exception):
            traced[1].run(iterator.close)

    try:
        first = await pull()
    except ApiError:
        slot.release()
        raise
    except Exception as exc:
        with contextlib.suppress(RuntimeError):
            state.pool.submit(close_iterator)
        try:
            outcome = await state.recover(slot, target, gen_request, exc)
        finally:
            slot.release()
        state.record(endpoint, body.model, 200, time.perf_counter() - start, outcome)
        return _respond(state, body, outcome, chat)

    info = p.RoutingInfo(tier=target.tier, reason=f"model {target.name!r} names this tier directly")
    events = _Events(body, chat, p.new_id("chatcmpl" if chat else "cmpl"), p.now())
    finished = threading.Event()

    def finish(status: int, outcome: Outcome | None) -> None:
        """Once: record the request, close the tier's stream, free the queue slot. Runs when the
        stream ends, or when the response is dropped unsent (a client gone before the first byte)."""
        if finished.is_set():
            return
        finished.set()
        state.record(endpoint, body.model, status, time.perf_counter() - start, outcome)
        with contextlib.suppress(RuntimeError):  # the pool is shut down at exit
            state.pool.submit(close_iterator)
        slot.release()

    async def stream() -> AsyncIterator[str]:
        status, outcome = 499, None  # 499: the client went away before the end
        try:
            yield events.first(info)
            item = first
            while not isinstance(item, Generation):
                if item is end:
                    raise BackendError(f"tier {target.tier!r} ended its stream without a result")
                yield events.text(item)
                item = await pull()
            outcome = Outcome(item, info)
            info.calls = dict(traced[0].calls)
            status = 200
            for event in events.end(item, _complete_info(state, outcome)):
                yield event
        except Exception as exc:  # noqa: BLE001 - the status line is sent; say it in the stream
            status = 504 if isinstance(exc, _Timeout) else 503
            message = (f"no answer within server.request_timeout_s={state.server.request_timeout_s:g} s"
                       if isinstance(exc, _Timeout) else str(getattr(exc, "message", None) or exc))
            logger.warning("stream from tier %s broke: %s", target.tier, message)
            error = p.error_body(f"The tier '{target.tier}' failed mid-answer: {message}",
                                 "timeout_error" if status == 504 else "service_unavailable_error",
                                 code="stream_interrupted")
            yield f"data: {json.dumps(error)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            finish(status, outcome)

    body_iterator = stream()
    weakref.finalize(body_iterator, finish, 499, None)
    return StreamingResponse(body_iterator, media_type="text/event-stream",
                             headers={**_headers(info), "cache-control": "no-cache"})

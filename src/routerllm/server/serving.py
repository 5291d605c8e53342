"""Serving one request: the `Service` behind the routes (vLLM's `serving_*` modules in one).

    body (validated by protocol.py) ──► limits (server.max_tokens_limit, max_prompt_chars)
        ──► GenerationRequest ──► resolve `model` (strategy or tier: 404 otherwise)
        ──► admit (429 beyond server.max_queue) ──► a pool thread: the strategy or the tier
        ──► on failure: the fallback policy (fallback.py) ──► JSON, or server-sent events (streaming.py)
        ──► metrics (every request, whatever its status)

`model` is a strategy name (`router` = the config's default strategy, `cascade`, `small`, ...) or a
tier name (e.g. `gemma3_270m`) that bypasses routing. Every answer carries a `routerllm` field and
the x-routerllm-* headers. Energy and CO2 are reported where the tier's backend gives energy (replay:
modelled, labelled so); they are not invented for tiers that do not.

All state lives on `app.state.routerllm` (a `Service`); nothing here is global.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response

from routerllm.backends.base import Backend, GenerationRequest
from routerllm.exceptions import BackendUnavailable, RouterLLMError
from routerllm.server import protocol as p
from routerllm.server import streaming
from routerllm.server.admission import Admission, Slot, WorkQueue
from routerllm.server.errors import ApiError
from routerllm.server.fallback import FallbackPolicy
from routerllm.server.metrics import ServerMetrics
from routerllm.server.tiers import Outcome, ServedTiers, Target, Trace, traced

if TYPE_CHECKING:
    from routerllm.config import RouterLLMConfig
    from routerllm.routing import Strategy

logger = logging.getLogger(__name__)

# Name of the strategy alias that means "the config's router.strategy".
ROUTER_ALIAS = "router"


class Service:
    """Everything a request needs: config, tiers, strategies, queue, fallback policy, metrics."""

    def __init__(self, config: "RouterLLMConfig", backends: dict[str, Backend] | None = None) -> None:
        self.config = config
        self.server = config.server
        self.metrics = ServerMetrics()
        self.tiers = ServedTiers(config, backends)
        self.admission = Admission(self.server.max_queue, self.server.retry_after_s, self.metrics)
        self.queue = WorkQueue(self.server)
        self.fallback = FallbackPolicy(self.tiers, self.metrics, self.server.fallback_to_small)
        self.api_keys = self._api_keys()
        self.strategies: dict[str, Strategy] = {}
        self.default_strategy = config.router.strategy
        self.known_models: list[str] = []
        self.judge: Any = None
        self.ready = False
        self.started = time.time()

    def _api_keys(self) -> list[str]:
        keys = list(self.server.api_keys)
        if self.server.api_keys_env:
            keys += [k.strip() for k in os.environ.get(self.server.api_keys_env, "").split(",") if k.strip()]
        return keys

    # --- start-up and shut-down ------------------------------------------------------------------

    def load(self) -> None:
        """Load every tier (errors are logged and leave the tier unready), then build the strategies."""
        self.tiers.load()
        self._build_strategies()
        self.known_models = list(dict.fromkeys([ROUTER_ALIAS, *self.strategies, *self.tiers.proxies]))
        self.ready = True

    def _build_strategies(self) -> None:
        from routerllm.routing import Tiers, build_strategy

        tiers = Tiers(
            small=[(n, self.tiers[n]) for n in self.tiers.small],
            large=(self.tiers.large, self.tiers[self.tiers.large]),
            configs=dict(self.tiers.configs),
        )
        names = list(dict.fromkeys([*self.config.router.strategies, self.default_strategy]))
        # the cascade checks small answers against the prompt's visible examples in the jail
        judge = self.judge = self._judge() if "cascade" in names else None
        for name in names:
            try:
                self.strategies[name] = build_strategy(name, tiers, self.config.router, judge=judge)
            except RouterLLMError as exc:
                if name == self.default_strategy:
                    raise
                logger.warning("strategy %s is not served: %s", name, exc)

    def _judge(self) -> Any:
        """The one place the server makes its Judge (jail pool). One worker per generation thread
        (server.max_concurrency): every request that is generating can check its answer at once,
        so slow checks (a program that runs to cascade.example_timeout_s) never queue others."""
        from routerllm.evaluation.judge import open_judge

        return open_judge(self.config.benchmark, timeout_s=self.config.router.cascade.example_timeout_s,
                          workers=self.server.max_concurrency)

    def close(self) -> None:
        self.queue.close()
        self.tiers.close()
        for strategy in self.strategies.values():
            try:
                strategy.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide other errors
                logger.debug("closing strategy %s: %s", strategy.name, exc)
        if self.judge is not None:
            try:
                self.judge.close()
            except Exception as exc:  # noqa: BLE001
                logger.debug("closing the judge: %s", exc)

    # --- models ------------------------------------------------------------------------------------

    def model_cards(self) -> list[p.ModelCard]:
        created = int(self.started)
        cards = [p.ModelCard(id=ROUTER_ALIAS, created=created, kind="strategy",
                             description=f"the default strategy ({self.default_strategy})")]
        for name, strategy in self.strategies.items():
            cards.append(p.ModelCard(id=name, created=created, kind="strategy", description=strategy.description))
        for name in [*self.tiers.small, self.tiers.large]:
            backend = self.tiers.configs[name].backend
            cards.append(p.ModelCard(id=name, created=created, kind="tier",
                                     description=f"{self.tiers.role(name)} tier ({backend} backend)"))
        return cards

    def model_card(self, model: str) -> p.ModelCard:
        for card in self.model_cards():
            if card.id == model:
                return card
        raise self._unknown_model(model)

    def _unknown_model(self, model: str) -> ApiError:
        return ApiError(
            404, f"The model '{model}' does not exist. Use one of: {', '.join(self.known_models)} "
            "(GET /v1/models lists them).", "not_found_error", param="model", code="model_not_found",
        )

    def resolve(self, model: str) -> Target:
        name = self.default_strategy if model == ROUTER_ALIAS else model
        if name in self.strategies:
            return Target(model, "strategy", strategy=self.strategies[name])
        if name in self.tiers:
            return Target(model, "tier", tier=name)
        raise self._unknown_model(model)

    # --- one request -------------------------------------------------------------------------------

    def completion_request(self, body: p.CompletionRequest) -> GenerationRequest:
        prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        max_tokens = self._check_limits(body.max_tokens, "max_tokens", prompt, "prompt")
        return _generation_request(body, prompt, None, max_tokens)

    def chat_request(self, body: p.ChatCompletionRequest) -> GenerationRequest:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        text = "\n".join(m["content"] for m in messages)
        if body.max_completion_tokens is not None:  # it wins, but a max_tokens sent with it must be valid too
            self._check_limits(body.max_tokens, "max_tokens", "", "messages")
        requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        max_tokens = self._check_limits(requested, param, text, "messages")
        user = [m["content"] for m in messages if m["role"] == "user"]
        return _generation_request(body, user[-1] if user else text, messages, max_tokens)

    def _check_limits(self, max_tokens: int | None, max_tokens_param: str, text: str, text_param: str) -> int:
        limit = self.server.max_tokens_limit
        if max_tokens is not None and not 1 <= max_tokens <= limit:
            raise ApiError(400, f"max_tokens must be between 1 and {limit} (server.max_tokens_limit); got {max_tokens}.",
                           "invalid_request_error", param=max_tokens_param, code="invalid_value")
        if len(text) > self.server.max_prompt_chars:
            raise ApiError(
                400, f"The {text_param} has {len(text)} characters; this server accepts at most "
                f"{self.server.max_prompt_chars} (server.max_prompt_chars). Shorten it.",
                "invalid_request_error", param=text_param, code="context_length_exceeded",
            )
        return max_tokens if max_tokens is not None else min(self.server.default_max_tokens, limit)

    async def serve(self, endpoint: str, body: Any, request: GenerationRequest, chat: bool) -> Response:
        """Answer one validated request: JSON, or server-sent events; counted whatever happens."""
        start = time.perf_counter()
        outcome: Outcome | None = None
        status = 500
        model = "unknown"
        try:
            target = self.resolve(body.model)
            model = body.model  # a known name: a bounded label value
            if body.stream and target.tier is not None and self.tiers[target.tier].streams:
                status = 0  # the live stream records itself when it ends
                return await streaming.serve_live(self, endpoint, body, request, chat, target, start)
            entry_point = body.routerllm.entry_point if body.routerllm else None
            outcome = await self.answer(target, request, entry_point)
            status = 200
        except ApiError as exc:
            status = exc.status
            exc.recorded = True
            raise
        finally:
            if status != 0:
                self.record(endpoint, model, status, time.perf_counter() - start, outcome)
        info = self.complete_info(outcome)
        if body.stream:
            return streaming.stream_answer(body, info, outcome.generation, chat)
        return _json_answer(body, info, outcome, chat)

    def execute(self, target: Target, request: GenerationRequest, entry_point: str | None) -> Outcome:
        """Runs in a pool thread: the tier, or the strategy, answers."""
        if target.kind == "tier":
            assert target.tier is not None
            (generation,) = self.tiers[target.tier].generate([request])
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
            raise BackendUnavailable(f"tier {info.tier!r} returned an error: {generation.extra.get('error', '')}",
                                     tier=info.tier)
        return Outcome(generation, info)

    async def answer(self, target: Target, request: GenerationRequest, entry_point: str | None) -> Outcome:
        """Admit, run, and let the fallback policy handle a failure."""
        slot = self.admission.admit()
        trace = traced()
        try:
            try:
                outcome = await self.queue.run(slot, self.execute, target, request, entry_point, trace=trace)
            except RouterLLMError as exc:
                return await self.recover(slot, target, request, exc, trace[0])
            outcome.info.calls = dict(trace[0].calls)
            return outcome
        finally:
            slot.release()

    async def recover(self, slot: Slot, target: Target, request: GenerationRequest, exc: BaseException,
                      failed: Trace) -> Outcome:
        """After a failure: the fallback tier's answer, or the ApiError the policy decides."""
        fallback = self.fallback.choose(exc)
        trace = traced()
        try:
            outcome = await self.queue.run(slot, self.execute, Target(target.name, "tier", tier=fallback.tier),
                                           request, None, trace=trace, fallback=True)
        except RouterLLMError as exc2:
            raise self.fallback.failed_too(fallback, exc2) from None
        outcome.info.calls = dict(trace[0].calls)
        self.fallback.annotate(outcome.info, fallback, target.strategy.name if target.strategy else None, failed.calls)
        return outcome

    def complete_info(self, outcome: Outcome) -> p.RoutingInfo:
        return p.with_costs(outcome.info, outcome.generation, self.server.carbon_intensity_kg_per_kwh)

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
        status, tiers = await self.tiers.health(self.ready, self.metrics)
        return status != "unavailable", {"status": status, "tiers": tiers, "queue": self.admission.count}


def _generation_request(body: Any, prompt: str, messages: list[dict[str, str]] | None,
                        max_tokens: int) -> GenerationRequest:
    opts = body.routerllm
    return GenerationRequest(
        prompt=prompt, messages=messages, max_new_tokens=max_tokens, temperature=body.temperature,
        stop=p.stop_list(body.stop), task_id=opts.task_id if opts else None, sample=opts.sample if opts else 0,
        seed=body.seed,
    )


def _json_answer(body: Any, info: p.RoutingInfo, outcome: Outcome, chat: bool) -> Response:
    gen = outcome.generation
    finish = p.finish_reason(gen.finish_reason)
    payload: Any
    if chat:
        payload = p.ChatCompletion(
            id=p.new_id("chatcmpl"), created=p.now(), model=body.model, usage=p.usage_of(gen), routerllm=info,
            choices=[p.ChatChoice(message=p.ChatCompletionMessage(content=gen.text), finish_reason=finish)],
        )
    else:
        payload = p.Completion(
            id=p.new_id("cmpl"), created=p.now(), model=body.model, usage=p.usage_of(gen), routerllm=info,
            choices=[p.CompletionChoice(text=gen.text, finish_reason=finish)],
        )
    return Response(payload.model_dump_json(), media_type="application/json", headers=p.routing_headers(info))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))

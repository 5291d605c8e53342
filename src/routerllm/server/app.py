"""routerllm's OpenAI-compatible HTTP service.

    GET  /v1/models              tiers and routing strategies (`model` of a request names one of them)
    GET  /v1/models/{model}      one of them
    POST /v1/completions         prompt -> routed completion   (stream: true -> server-sent events)
    POST /v1/chat/completions    messages -> routed chat answer (stream: true -> server-sent events)
    GET  /health                 200 "ok" when every tier answers its health probe; 200 "degraded" when
                                 only the large tier is down and a small tier answers for it; else 503
    GET  /metrics                Prometheus text

`model` is a strategy (`router` = the default strategy, `cascade`, `small`, ...) or a tier name,
which bypasses routing. Every answer carries a `routerllm` field and `x-routerllm-tier`,
`x-routerllm-strategy`, `x-routerllm-reason` and `x-routerllm-fallback` headers saying which tier
answered and why. Send `routerllm: {task_id, sample, entry_point}` in the body (the official
client: `extra_body`) for tiers that replay recorded HumanEval answers and for the cascade.

Every endpoint but /health needs `Authorization: Bearer <key>` when the server has keys (and
/metrics, /docs, /openapi.json unless the server opens them). Errors have the OpenAI shape
`{"error": {message, type, param, code}}`.
"""

# How the service is built (for readers of the code, not of the API document):
#   guard.py      auth before any body is read, streaming body limits, no keys in URLs
#   transport.py  uvicorn: connection limit, header timeout and size, redacted access log
#   protocol.py   the OpenAI wire models;  errors.py  errors and their handlers
#   serving.py    one request: limits, routing, admission (admission.py), fallback (fallback.py),
#                 tiers (tiers.py), streaming (streaming.py), metrics (metrics.py)
#   openapi.py    the OpenAPI document;  this module: thin routes in build_app.

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from routerllm.server import protocol as p
from routerllm.server.errors import install_handlers
from routerllm.server.guard import Guard
from routerllm.server.openapi import describe, route_docs
from routerllm.server.serving import Service

if TYPE_CHECKING:
    from routerllm.backends.base import Backend
    from routerllm.config import RouterLLMConfig

# Bytes allowed in a request body beyond the prompt itself (messages' JSON, other fields).
BODY_SLACK_BYTES = 64 * 1024
# Path -> `endpoint` label of the request metrics.
_ENDPOINTS = {"/v1/completions": "completions", "/v1/chat/completions": "chat", "/v1/models": "models"}
DOCS_PATHS = {"/docs", "/docs/oauth2-redirect", "/openapi.json"}


def max_body_bytes(config: "RouterLLMConfig") -> int:
    """Largest request body worth reading: the prompt limit at JSON's worst case (a \\uXXXX escape,
    6 bytes, per character) plus room for the other fields. Beyond it: 413."""
    return 6 * config.server.max_prompt_chars + BODY_SLACK_BYTES


def endpoint_label(path: str) -> str:
    return _ENDPOINTS.get(path) or ("models" if path.startswith("/v1/models/") else "other")


def build_app(config: "RouterLLMConfig", backends: "dict[str, Backend] | None" = None) -> FastAPI:
    """The service for `config`. `backends` may supply ready backends by tier name; the others are
    made from the config. Tiers are loaded at start-up (idempotent when already loaded)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.load)
        try:
            yield
        finally:
            service.close()

    service = Service(config, backends)
    app = FastAPI(title="routerllm", description=__doc__, version="0.1.0", lifespan=lifespan, redoc_url=None)
    app.state.routerllm = service
    server = config.server
    open_paths = {"/health"} | ({"/metrics"} if server.open_metrics else set()) | (DOCS_PATHS if server.open_docs else set())

    def record(path: str, status: int) -> None:
        service.record(endpoint_label(path), "unknown", status, 0.0, None)

    app.add_middleware(Guard, keys=service.api_keys, open_paths=open_paths, max_body_bytes=max_body_bytes(config),
                       body_timeout_s=server.body_timeout_s, record=record)
    install_handlers(app, lambda request, status: record(request.url.path, status))
    app.openapi = lambda: describe(app, service, open_paths)  # type: ignore[method-assign]

    @app.get("/v1/models", **route_docs("models"))
    async def list_models() -> Response:
        return _json(p.ModelList(data=service.model_cards()))

    @app.get("/v1/models/{model:path}", **route_docs("model"))
    async def retrieve_model(model: str) -> Response:
        return _json(service.model_card(model))

    @app.post("/v1/completions", **route_docs("completions"))
    async def completions(body: p.CompletionRequest) -> Response:
        return await service.serve("completions", body, service.completion_request(body), chat=False)

    @app.post("/v1/chat/completions", **route_docs("chat"))
    async def chat_completions(body: p.ChatCompletionRequest) -> Response:
        return await service.serve("chat", body, service.chat_request(body), chat=True)

    @app.get("/health", **route_docs("health"))
    async def health() -> Response:
        ok, body = await service.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", **route_docs("metrics"))
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    return app


def _json(model: Any) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


__all__ = ["build_app", "max_body_bytes"]

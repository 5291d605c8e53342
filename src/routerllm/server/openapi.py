"""The OpenAPI document (GET /openapi.json, /docs): what the server really does.

FastAPI documents the request models; the routes answer with plain Responses (a pre-serialized
body is faster), so what they answer is declared here (`route_docs`) and the document is finished
from the running service (`describe`):
* 200 bodies: the response models, and `text/event-stream` for `stream: true`;
* every error status each route can answer, with the OpenAI error shape (errors.ERROR_STATUSES);
  FastAPI's default 422 is removed (validation errors are 400s here);
* the bearer security scheme, on every operation the guard protects (none when no key is set);
* `model` as an enum of the names served (strategies, `router`, tiers), known once the tiers are
  loaded; `max_tokens` up to server.max_tokens_limit and the prompt up to server.max_prompt_chars;
  when every tier replays recorded answers, `routerllm.task_id` required, among the recorded tasks.
The document is built after start-up and cached; before start-up it is built but not cached.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi

from routerllm.server import protocol as p
from routerllm.server.errors import ERROR_STATUSES

if TYPE_CHECKING:
    from fastapi import FastAPI

    from routerllm.server.serving import Service

BEARER = "bearerAuth"
SSE_DESCRIPTION = (
    "With `stream: true`: server-sent events, each `data: <chunk JSON>` (the same object as the JSON "
    "answer, with `choices[].text` or `choices[].delta` holding the next piece) and finally `data: [DONE]`. "
    "A failure after the first event ends the stream with `data: {\"error\": {...}}` and `data: [DONE]`."
)
ROUTING_HEADERS = {
    "x-routerllm-tier": "the tier whose answer this is",
    "x-routerllm-strategy": "the strategy that routed ('none' when a tier was named)",
    "x-routerllm-reason": "why (ASCII, at most 200 characters)",
    "x-routerllm-fallback": "'true' when the large tier failed and a small tier answered",
}
# The error statuses of each route (besides the guard's 400 for a key in the URL and its 401).
_ROUTE_ERRORS = {
    "models": [500],
    "model": [404, 500],
    "completions": [400, 404, 408, 413, 415, 429, 500, 503, 504],
    "chat": [400, 404, 408, 413, 415, 429, 500, 503, 504],
    "health": [500],
    "metrics": [500],
}
_SUMMARIES = {
    "models": "List the strategies and tiers a request's `model` can name",
    "model": "One strategy or tier",
    "completions": "A routed completion (stream: true for server-sent events)",
    "chat": "A routed chat completion (stream: true for server-sent events)",
    "health": "Whether every tier answers (200 ok or degraded, 503 unavailable)",
    "metrics": "Prometheus metrics",
}


def _sse_event(chunk: str) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1: the media type's schema describes each event): its data is
    a chunk's JSON, an error's JSON, or [DONE]."""
    json_data = {"type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
        {"$ref": f"#/components/schemas/{chunk}"}, {"$ref": "#/components/schemas/ErrorResponse"}]}}
    return {"type": "object", "required": ["data"], "description": SSE_DESCRIPTION,
            "properties": {"event": {"type": "string"}, "data": {"anyOf": [{"const": "[DONE]"}, json_data]}}}


def _error(status: int) -> dict[str, Any]:
    out: dict[str, Any] = {"model": p.ErrorResponse, "description": ERROR_STATUSES[status]}
    if status == 429:
        out["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


def route_docs(route: str) -> dict[str, Any]:
    """The decorator arguments that document `route` (see the module docstring)."""
    headers = {name: {"description": text, "schema": {"type": "string"}} for name, text in ROUTING_HEADERS.items()}
    ok: dict[str, Any]
    if route in ("completions", "chat"):
        model = p.Completion if route == "completions" else p.ChatCompletion
        chunk = "Completion" if route == "completions" else "ChatCompletionChunk"
        ok = {"model": model, "description": "The answer, with `routerllm` saying which tier answered and why",
              "headers": headers, "content": {"text/event-stream": {"schema": _sse_event(chunk)}}}
    elif route == "models":
        ok = {"model": p.ModelList, "description": "Strategies and tiers"}
    elif route == "model":
        ok = {"model": p.ModelCard, "description": "The strategy or tier"}
    elif route == "health":
        ok = {"model": p.Health, "description": "Every tier answers ('ok'), or a small tier answers for the large one"}
    else:
        ok = {"description": "Prometheus text exposition format",
              "content": {"text/plain": {"schema": {"type": "string"}}}}
    responses: dict[int | str, dict[str, Any]] = {200: ok}
    for status in _ROUTE_ERRORS[route]:
        responses[status] = _error(status)
    if route == "health":
        responses[503] = {"model": p.Health, "description": "A tier is down and no fallback answers for it"}
    return {"response_model": None, "responses": responses, "summary": _SUMMARIES[route]}


def describe(app: "FastAPI", service: "Service", open_paths: set[str]) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for model in (p.ChatCompletionChunk, p.Completion, p.ErrorResponse):  # referenced by the event streams
        defined = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        for name, definition in {**defined.pop("$defs", {}), model.__name__: defined}.items():
            schemas.setdefault(name, definition)
    if service.api_keys:
        components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer",
                                                  "description": "one of the server's API keys"}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if service.api_keys and path not in open_paths:
                operation["security"] = [{BEARER: []}]
                responses.setdefault("401", _error_ref(401))
            responses.setdefault("400", _error_ref(400))  # the guard refuses API keys in the URL
            if path == "/v1/models/{model}":
                for param in operation.get("parameters", []):
                    if param.get("name") == "model" and service.known_models:
                        param["schema"] = {"type": "string", "enum": list(service.known_models)}
    _limits(schemas, service)
    _recorded_tasks(schemas, service)
    if service.ready:
        app.openapi_schema = schema
    return schema


def _error_ref(status: int) -> dict[str, Any]:
    return {"description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _limits(schemas: dict[str, Any], service: "Service") -> None:
    """The config's limits and the served model names, in the request schemas."""
    server = service.server
    for name in ("CompletionRequest", "ChatCompletionRequest"):
        props = schemas.get(name, {}).get("properties", {})
        if service.known_models and "model" in props:
            model = copy.deepcopy(props["model"])
            model.pop("minLength", None)
            model.pop("maxLength", None)
            model["enum"] = list(service.known_models)
            props["model"] = model
        for field in ("max_tokens", "max_completion_tokens"):
            for branch in _branches(props.get(field)):
                if branch.get("type") == "integer":
                    branch["minimum"], branch["maximum"] = 1, server.max_tokens_limit
    prompt = schemas.get("CompletionRequest", {}).get("properties", {}).get("prompt")
    for branch in _branches(prompt):
        if branch.get("type") == "string":
            branch["maxLength"] = server.max_prompt_chars
        elif branch.get("type") == "array":
            branch.setdefault("items", {})["maxLength"] = server.max_prompt_chars


def _branches(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not schema:
        return []
    return list(schema.get("anyOf", [])) or [schema]


def _recorded_tasks(schemas: dict[str, Any], service: "Service") -> None:
    """When every tier replays recorded answers, a request must name a task they all record:
    `routerllm.task_id` is then required and an enum of those tasks, and `routerllm.sample` at most
    the last sample every tier records for every one of them."""
    from routerllm.backends.replay import ReplayBackend

    backends = [proxy.backend for proxy in service.tiers.proxies.values()]
    if not backends or not all(isinstance(b, ReplayBackend) for b in backends) or not service.ready:
        return
    common = sorted(set.intersection(*(set(b.task_ids()) for b in backends)), key=_task_order)
    options = schemas.get("RouterLLMOptions")
    if not common or options is None:
        return
    options["properties"]["task_id"] = {"type": "string", "enum": common,
                                        "description": "a HumanEval task every (replay) tier records"}
    options["required"] = ["task_id"]
    # replay never invents a sample: the schema admits only those every tier records for every task
    fewest = min(b.samples(task) for b in backends for task in common)
    if "sample" in options["properties"]:
        options["properties"]["sample"] = {**options["properties"]["sample"], "maximum": fewest - 1}
    for name in ("CompletionRequest", "ChatCompletionRequest"):
        request = schemas.get(name)
        if request is not None and "routerllm" in request.get("properties", {}):
            request["properties"]["routerllm"] = {"$ref": "#/components/schemas/RouterLLMOptions"}
            request["required"] = [*request.get("required", []), "routerllm"]


def _task_order(task_id: str) -> tuple[str, int]:
    prefix, _, number = task_id.rpartition("/")
    return (prefix, int(number)) if number.isdigit() else (task_id, -1)

"""`routerllm serve`: the OpenAI-compatible routing service (FastAPI + uvicorn)."""

from __future__ import annotations

import logging

import typer

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    config: str = typer.Option(..., "--config", "-c", help="YAML config: its tiers, router and server sections"),
    host: str | None = typer.Option(None, "--host", help="address to listen on (default: server.host, 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="TCP port (default: server.port, 8000)"),
    strategy: str | None = typer.Option(
        None, "--strategy", help="default strategy, what model='router' means (default: router.strategy)"
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn/routerllm log level: debug, info, warning"),
) -> None:
    """Serve the router over the OpenAI API.

    Loads every tier first (with progress), then listens on HOST:PORT:

    \b
      GET  /v1/models            tiers and routing strategies (GET /v1/models/ID: one of them)
      POST /v1/completions       routed completions (stream: true for server-sent events)
      POST /v1/chat/completions  routed chat completions (stream: true for server-sent events)
      GET  /health               200 when every tier is loaded and reachable, else 503
      GET  /metrics              Prometheus metrics (behind the API key unless server.open_metrics)
      GET  /docs, /openapi.json  the API (behind the API key unless server.open_docs)

    Clients send `Authorization: Bearer <key>` when server.api_keys (or the env var
    server.api_keys_env) holds keys. Connection, header, body and queue limits are in the server
    section of the config (max_connections, header_timeout_s, max_header_bytes, body_timeout_s,
    max_queue, request_timeout_s).

    A request's `model` is a strategy (`router` = the default, `cascade`, `small`, `large`, ...) or a
    tier name. Each answer says which tier answered and why (`routerllm` field, x-routerllm-* headers).
    Example: `routerllm serve --config configs/local_config.yaml --port 8000`, then
    `OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused").completions.create(model="router", prompt=...)`.
    """
    from routerllm.exceptions import BackendError, require

    require("fastapi", extra="server", purpose="`routerllm serve`")
    uvicorn = require("uvicorn", extra="server", purpose="`routerllm serve`")
    require("prometheus_client", package="prometheus-client", extra="server", purpose="`routerllm serve`")

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from routerllm.backends.base import make_backend
    from routerllm.config import load_config
    from routerllm.server.app import build_app
    from routerllm.server.transport import uvicorn_config

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(config)
    if strategy is not None:
        cfg.router.strategy = strategy
    from routerllm.exceptions import RoutingError
    from routerllm.routing import STRATEGIES

    if cfg.router.strategy not in STRATEGIES:
        raise RoutingError(
            f"unknown routing strategy {cfg.router.strategy!r} (--strategy or router.strategy)",
            fix=f"use one of: {', '.join(STRATEGIES)}",
        )
    host = host or cfg.server.host
    port = port or cfg.server.port
    console = Console(stderr=True)

    models = [*cfg.models.small_llms, cfg.models.large_llm]
    backends = {}
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
            for model in models:
                role = "large" if model is cfg.models.large_llm else "small"
                task = bar.add_task(f"loading {role} tier {model.name} ({model.backend})", total=1)
                backend = make_backend(model)
                backends[model.name] = backend
                try:
                    backend.load()
                except BackendError as exc:
                    if model.backend != "openai":
                        raise
                    # a remote endpoint may come up later: serve now, /health says 503 until it does
                    console.print(f"[yellow]warning:[/] {exc}")
                bar.update(task, completed=1)
        app = build_app(cfg, backends=backends)
        console.print(f"routerllm: serving {', '.join(backends)} on http://{host}:{port}/v1 "
                      f"(default strategy: {cfg.router.strategy})")
        uvicorn.Server(uvicorn_config(app, cfg.server, host, port, log_level)).run()
    finally:
        for backend in backends.values():
            try:
                backend.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the real error
                logger.debug("closing %s: %s", getattr(backend, "name", backend), exc)

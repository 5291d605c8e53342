"""routerllm as an OpenAI-compatible HTTP service (needs the `server` extra: fastapi, uvicorn,
prometheus-client). `build_app(config)` makes the FastAPI app; `routerllm serve` runs it.

Imports are lazy so that `import routerllm.server` works without the extra installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from routerllm.server.app import build_app

__all__ = ["build_app"]


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from routerllm.exceptions import require

        require("fastapi", extra="server", purpose="routerllm's HTTP service")
        require("prometheus_client", package="prometheus-client", extra="server", purpose="routerllm's /metrics")
        from routerllm.server.app import build_app

        return build_app
    raise AttributeError(name)

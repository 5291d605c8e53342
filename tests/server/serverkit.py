"""Helpers for the server tests (fixtures in conftest.py): a real uvicorn on 127.0.0.1 (in a thread, on a free port), replay
tiers over the recorded HumanEval generations, a real `routerllm serve` subprocess, and a gate
that holds a real backend's answers until a test lets them go (for queueing and timeouts)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.backends.replay import ReplayBackend
from routerllm.config import RouterLLMConfig, config_from_dict

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "humaneval-generations"
LARGE_FILE = DATA / "gpt-4-0613.jsonl"
SMALL_FILE = DATA / "Mistral-7B-Instruct-v0.1.jsonl"
TASK = {"routerllm": {"task_id": "HumanEval/2"}}  # extra_body naming a recorded task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay_config_dict(large: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
                       router: dict[str, Any] | None = None) -> dict[str, Any]:
    assert LARGE_FILE.is_file(), f"recorded generations missing at {DATA} (data/humaneval-generations in the repository)"
    return {
        "models": {
            "large_llm": large or {"name": "gpt4", "backend": "replay", "replay_file": str(LARGE_FILE)},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": router or {"strategy": "small", "strategies": ["small", "large", "random"]},
        "server": {"api_keys_env": None, **(server or {})},
    }


def replay_config(**kwargs: Any) -> RouterLLMConfig:
    return config_from_dict(replay_config_dict(**kwargs))


@contextlib.contextmanager
def running(config: RouterLLMConfig, backends: dict[str, Any] | None = None) -> Iterator[str]:
    """A real uvicorn serving build_app(config) on 127.0.0.1 with every limit `routerllm serve`
    sets (transport.uvicorn_config); yields the base URL (…/v1)."""
    from routerllm.server.app import build_app
    from routerllm.server.transport import uvicorn_config

    app = build_app(config, backends=backends)
    with serving(app, uvicorn_config(app, config.server, "127.0.0.1", free_port(), "warning")) as url:
        yield url


@contextlib.contextmanager
def serving(app: Any, config: Any = None) -> Iterator[str]:
    """A real uvicorn serving an ASGI `app` (or the uvicorn `config` given) on 127.0.0.1 in a
    thread; yields the base URL (…/v1)."""
    import uvicorn

    config = config or uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    config.timeout_graceful_shutdown = 2
    port = config.port
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class GatedBackend:
    """A real replay backend whose answers wait until `gate` is set (or `hold_s` passes).
    Counts the calls that are waiting, so a test knows when requests are in flight."""

    def __init__(self, inner: ReplayBackend, hold_s: float | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = threading.Event()
        self.hold_s = hold_s
        self.waiting = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        self.inner.load()

    def health(self) -> bool:
        return self.inner.health()

    def close(self) -> None:
        self.gate.set()
        self.inner.close()

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        with self._lock:
            self.waiting += 1
        try:
            self.gate.wait(self.hold_s)
        finally:
            with self._lock:
                self.waiting -= 1
        return self.inner.generate(requests)


def wait_for(predicate: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class ServeProcess:
    """`routerllm serve` in a subprocess (its own process group), serving `config` over HTTP."""

    def __init__(self, config: dict[str, Any], tmp_path: Path, name: str = "upstream",
                 extra_args: list[str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.path = tmp_path / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "routerllm.cli", "serve", "--config", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", *(extra_args or [])],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"routerllm serve exited: {self.log.read_text()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"routerllm serve not ready in {timeout_s} s: {self.log.read_text()}")

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

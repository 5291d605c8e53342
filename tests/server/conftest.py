"""Fixtures of the server tests; the helpers live in serverkit.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverkit import ServeProcess, replay_config, running


@pytest.fixture
def replay_server() -> Iterator[str]:
    with running(replay_config()) as url:
        yield url


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def start(config: dict[str, Any], name: str = "upstream") -> ServeProcess:
        proc = ServeProcess(config, tmp_path, name)
        started.append(proc)
        proc.wait_ready()
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.signal(signal.SIGCONT)
            proc.kill()

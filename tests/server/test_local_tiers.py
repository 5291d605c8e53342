"""The service over real local models: tiny random-weight checkpoints (written by the root
conftest's fixtures) loaded through the LargeModelManager, in this process and in a separate
`routerllm serve` process reached through the `openai` backend."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serverkit import SMALL_FILE, TASK, running

from routerllm.config import config_from_dict

pytestmark = pytest.mark.timeout(300)


def local_tier(name: str, path, **extra) -> dict:
    return {"name": name, "model_id": str(path), "dtype": "float32", "max_memory": {"cpu": "2GB"},
            "context_length": 256, "max_new_tokens": 16, **extra}


def test_local_tiers_answer_with_measured_timings_and_real_token_counts(tiny_llama):
    config = config_from_dict({
        "models": {"large_llm": local_tier("tiny_large", tiny_llama),
                   "small_llms": [local_tier("tiny_small", tiny_llama)]},
        "router": {"strategy": "small", "strategies": ["small", "large"]},
        "server": {"api_keys_env": None, "max_concurrency": 2},
    })
    with running(config) as url:
        assert httpx.get(url.removesuffix("/v1") + "/health").json()["status"] == "ok"
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        done = client.completions.create(model="large", prompt="def add(a, b):", max_tokens=8)
        info = done.model_extra["routerllm"]
        assert info["tier"] == "tiny_large" and info["timing"] == "measured"
        assert info["ttft_s"] is not None and 0 < info["ttft_s"] <= info["generation_s"]
        assert 1 <= done.usage.completion_tokens <= 8 and done.usage.prompt_tokens > 0
        chat = client.chat.completions.create(model="router", messages=[{"role": "user", "content": "add two ints"}],
                                              max_tokens=8)
        assert chat.model_extra["routerllm"]["tier"] == "tiny_small" and chat.usage.completion_tokens >= 1
        # concurrent requests to one in-process model are served one at a time, all answered
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: client.completions.create(
                model="tiny_small", prompt=f"def f{i}(x):", max_tokens=6), range(4)))
        assert all(1 <= a.usage.completion_tokens <= 6 for a in answers)
        streamed = list(client.completions.create(model="tiny_large", prompt="def add(a, b):", max_tokens=8,
                                                  stream=True))
        assert "".join(c.choices[0].text for c in streamed if c.choices) == done.choices[0].text  # greedy


def test_large_tier_served_by_another_routerllm_over_a_local_model(tiny_llama, serve_process):
    upstream = serve_process({
        "models": {"large_llm": local_tier("tiny", tiny_llama)},
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None},
    })
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote_tiny", "backend": "openai", "base_url": upstream.url, "model_id": "tiny",
                          "request_timeout_s": 30, "max_retries": 1},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None, "fallback_to_small": True},
    })
    with running(config) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        answer = client.completions.create(model="router", prompt="def add(a, b):", max_tokens=8, extra_body=TASK)
        info = answer.model_extra["routerllm"]
        assert info["tier"] == "remote_tiny" and not info["fallback"] and answer.usage.completion_tokens >= 1
        assert info["ttft_s"] is not None and info["timing"] == "measured"
        upstream.kill()
        start = time.monotonic()
        after = client.completions.create(model="router", prompt="def add(a, b):", max_tokens=8, extra_body=TASK)
        assert time.monotonic() - start < 8
        info = after.model_extra["routerllm"]
        assert info["fallback"] and info["tier"] == "mistral7b" and info["fallback_from"] == "remote_tiny"

"""A streamed answer whose upstream breaks after its first token: the client gets that token, then
an OpenAI-style error event (not a hang, not a silently short answer), and the request is counted
as failed and its queue slot freed.

The upstream is a real HTTP endpoint on 127.0.0.1 (FastAPI under uvicorn) that speaks the OpenAI
streaming protocol for one chunk and then drops the connection mid-body -- the fault under test.
Everything after it is the real service: OpenAIBackend over the official client, the router
service, and the official `openai` client reading the stream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from routerllm.config import config_from_dict
from serverkit import SMALL_FILE, running, serving

FIRST_TOKEN = "def add(a, b):"


def _breaking_upstream():
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": "breaker", "object": "model", "created": 0, "owned_by": "test"}]}

    def broken_stream(chat: bool):
        if chat:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "breaker",
                     "choices": [{"index": 0, "delta": {"content": FIRST_TOKEN}, "finish_reason": None}]}
        else:
            chunk = {"id": "c1", "object": "text_completion", "created": 0, "model": "breaker",
                     "choices": [{"index": 0, "text": FIRST_TOKEN, "finish_reason": None, "logprobs": None}]}
        yield f"data: {json.dumps(chunk)}\n\n"
        time.sleep(0.2)
        raise RuntimeError("upstream crashed mid-answer")  # uvicorn aborts the connection mid-body

    @app.post("/v1/completions")
    def completions() -> StreamingResponse:
        return StreamingResponse(broken_stream(chat=False), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    def chat() -> StreamingResponse:
        return StreamingResponse(broken_stream(chat=True), media_type="text/event-stream")

    return app


@pytest.fixture()
def upstream_url():
    with serving(_breaking_upstream()) as url:
        yield url


@pytest.mark.parametrize("chat", [False, True])
def test_stream_broken_after_first_token_ends_with_an_error_event(upstream_url, chat):
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote_large", "backend": "openai", "base_url": upstream_url,
                          "model_id": "breaker", "request_timeout_s": 5, "max_retries": 2},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "small", "strategies": ["small", "large"]},
        "server": {"api_keys_env": None, "request_timeout_s": 10},
    })
    with running(config) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        texts: list[str] = []
        started = time.monotonic()
        with pytest.raises(openai.APIError) as err:
            if chat:
                stream = client.chat.completions.create(model="remote_large", stream=True,
                                                        messages=[{"role": "user", "content": "add"}])
                for chunk in stream:
                    texts.extend(c.delta.content or "" for c in chunk.choices)
            else:
                stream = client.completions.create(model="remote_large", prompt="add", stream=True)
                for chunk in stream:
                    texts.extend(c.text for c in chunk.choices)
        assert "".join(texts) == FIRST_TOKEN  # the token that arrived was forwarded, once
        assert "failed mid-answer" in str(err.value)
        assert time.monotonic() - started < 10  # not retried after text was sent, no hang
        base = url.removesuffix("/v1")
        # the queue slot is released and the failure is counted as a 503 on that endpoint
        deadline = time.monotonic() + 5
        while httpx.get(f"{base}/health").json()["queue"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{base}/health").json()["queue"] == 0
        metrics = httpx.get(f"{base}/metrics").text
        endpoint = "chat" if chat else "completions"
        assert any(line.startswith("routerllm_requests_total") and 'status="503"' in line and endpoint in line
                   and line.rstrip().endswith("1.0") for line in metrics.splitlines()), metrics

"""OpenAIBackend against a real OpenAI-compatible endpoint: another routerllm, started with
`routerllm serve` in a subprocess (replay tiers over the recorded generations)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from serverkit import LARGE_FILE, free_port, replay_config_dict

from routerllm.backends.base import GenerationRequest, make_backend
from routerllm.backends.openai import OpenAIBackend
from routerllm.config import ModelConfig
from routerllm.exceptions import BackendError

pytestmark = pytest.mark.timeout(180)


def recorded(task_id: str, sample: int = 0) -> str:
    for line in LARGE_FILE.read_text().splitlines():
        row = json.loads(line)
        if row["task_id"] == task_id and row["sample"] == sample:
            return row["completion"]
    raise KeyError(task_id)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    from serverkit import ServeProcess

    config = replay_config_dict(server={"api_keys": ["upstream-key"]})
    proc = ServeProcess(config, tmp_path_factory.mktemp("upstream"))
    proc.wait_ready()
    yield proc
    proc.kill()


def backend_for(url: str, **overrides) -> OpenAIBackend:
    fields = {"name": "remote", "backend": "openai", "base_url": url, "model_id": "gpt4",
              "api_key_env": "UPSTREAM_KEY", "request_timeout_s": 10, "max_retries": 1, **overrides}
    backend = make_backend(ModelConfig(**fields))
    assert isinstance(backend, OpenAIBackend)
    return backend


def test_completions_and_chat_with_measured_ttft_and_reported_usage(upstream, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    backend = backend_for(upstream.url)
    backend.load()
    assert backend.health()
    prompt, chat = backend.generate([
        GenerationRequest(prompt="def truncate_number", task_id="HumanEval/2", max_new_tokens=256),
        GenerationRequest(prompt="", messages=[{"role": "user", "content": "write it"}], task_id="HumanEval/3"),
    ])
    assert prompt.text == recorded("HumanEval/2") and chat.text == recorded("HumanEval/3")
    for gen in (prompt, chat):
        assert gen.timing == "measured" and gen.extra["usage"] == "reported"
        assert gen.prompt_tokens > 0 and gen.completion_tokens > 0
        assert gen.ttft_s is not None and 0 < gen.ttft_s <= gen.total_s
    streamed = list(backend.stream(GenerationRequest(prompt="x", task_id="HumanEval/2")))
    assert "".join(s for s in streamed if isinstance(s, str)) == prompt.text and streamed[-1].text == prompt.text
    backend.close()


def test_streaming_off_measures_total_time_only_and_batches_keep_their_order(upstream, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    backend = backend_for(upstream.url, stream=False)
    ids = [f"HumanEval/{i}" for i in range(6)]
    gens = backend.generate([GenerationRequest(prompt="x", task_id=t) for t in ids])
    assert [g.text for g in gens] == [recorded(t) for t in ids]
    assert all(g.ttft_s is None and g.total_s > 0 and g.completion_tokens > 0 for g in gens)


def test_served_model_is_discovered_or_checked(upstream, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    discovered = backend_for(upstream.url, model_id=None)
    discovered.load()
    assert discovered.served_model == "router"
    with pytest.raises(BackendError) as exc:
        backend_for(upstream.url, model_id="llama-9000").load()
    assert "llama-9000" in str(exc.value) and "gpt4" in str(exc.value) and "model_id" in exc.value.fix


def test_api_key_missing_or_wrong(upstream, monkeypatch):
    monkeypatch.delenv("UPSTREAM_KEY", raising=False)
    with pytest.raises(BackendError) as missing:
        backend_for(upstream.url).generate([GenerationRequest(prompt="x", task_id="HumanEval/2")])
    assert "UPSTREAM_KEY" in str(missing.value) and "export UPSTREAM_KEY" in missing.value.fix
    monkeypatch.setenv("UPSTREAM_KEY", "wrong")
    with pytest.raises(BackendError) as wrong:
        backend_for(upstream.url).generate([GenerationRequest(prompt="x", task_id="HumanEval/2")])
    assert "401" in str(wrong.value) and upstream.url in str(wrong.value)


def _count(metrics_url: str, line: str, key: str | None = None) -> float:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(metrics_url, headers=headers)
    assert response.status_code == 200, response.text
    for row in response.text.splitlines():
        if row.startswith(line):
            return float(row.split()[-1])
    return 0.0


def test_a_request_the_endpoint_refuses_is_rejected_once_not_retried(upstream, monkeypatch):
    """The upstream's 400 (its replay tier knows no such task) is the request's fault: BackendRejected
    carrying the upstream's client-facing message and param, sent once."""
    from routerllm.exceptions import BackendRejected

    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    metrics = f"http://127.0.0.1:{upstream.port}/metrics"
    line = 'routerllm_requests_total{endpoint="completions",model="gpt4",status="400",tier="none"}'
    before = _count(metrics, line, "upstream-key")
    with pytest.raises(BackendRejected) as exc:
        backend_for(upstream.url, max_retries=2).generate([GenerationRequest(prompt="x", task_id="HumanEval/999")])
    assert exc.value.tier == "remote" and exc.value.param == "routerllm.task_id" and exc.value.code == "unknown_task"
    assert "HumanEval/999" in exc.value.message and upstream.url not in exc.value.message
    assert _count(metrics, line, "upstream-key") - before == 1


def test_5xx_is_retried_then_reported():
    """A real routerllm whose large tier is down and which has no fallback answers 503: the
    backend retries max_retries times, then raises BackendUnavailable naming the attempts."""
    from serverkit import replay_config, running

    from routerllm.exceptions import BackendUnavailable

    dead = {"name": "dead", "backend": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model_id": "x",
            "max_retries": 0, "request_timeout_s": 2}
    with running(replay_config(large=dead, server={"fallback_to_small": False})) as url:
        metrics = url.removesuffix("/v1") + "/metrics"
        line = 'routerllm_requests_total{endpoint="completions",model="dead",status="503",tier="none"}'
        backend = backend_for(url, model_id="dead", max_retries=2, api_key_env=None)
        with pytest.raises(BackendUnavailable) as exc:
            backend.generate([GenerationRequest(prompt="x", task_id="HumanEval/2")])
        assert "503" in str(exc.value) and "3 attempt" in str(exc.value) and exc.value.tier == "remote"
        assert _count(metrics, line) == 3


def test_unreachable_endpoint_fails_fast_with_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = backend_for(url, max_retries=2, api_key_env=None)
    start = time.monotonic()
    assert backend.health() is False
    with pytest.raises(BackendError) as exc:
        backend.generate([GenerationRequest(prompt="x")])
    assert time.monotonic() - start < 5
    assert "cannot connect" in str(exc.value) and url in str(exc.value)
    assert "base_url" in exc.value.fix and "vllm" in exc.value.fix
    with pytest.raises(BackendError):
        backend.load()


def test_a_hung_endpoint_times_out(upstream, monkeypatch):
    import signal

    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    backend = backend_for(upstream.url, request_timeout_s=1, health_timeout_s=0.5)
    backend.load()
    upstream.signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        assert backend.health() is False
        with pytest.raises(BackendError) as exc:
            backend.generate([GenerationRequest(prompt="x", task_id="HumanEval/2")])
        assert "within 1 s" in str(exc.value) and "request_timeout_s" in exc.value.fix
        assert time.monotonic() - start < 6
    finally:
        upstream.signal(signal.SIGCONT)
    assert backend.health()


def test_the_service_streams_an_openai_tier_live_and_falls_back_before_the_first_token(upstream, monkeypatch):
    """A routerllm whose large tier is the upstream routerllm: a stream for that tier forwards the
    upstream's tokens with a measured time to first token; a frozen upstream falls back."""
    import signal

    import openai
    from serverkit import SMALL_FILE, TASK, running

    from routerllm.config import config_from_dict

    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote", "backend": "openai", "base_url": upstream.url, "model_id": "gpt4",
                          "api_key_env": "UPSTREAM_KEY", "request_timeout_s": 1, "max_retries": 0},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None, "request_timeout_s": 5},
    })
    with running(config) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)
        chunks = list(client.chat.completions.create(
            model="remote", messages=[{"role": "user", "content": "x"}], stream=True,
            stream_options={"include_usage": True}, extra_body=TASK))
        assert chunks[0].model_extra["routerllm"]["tier"] == "remote"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == recorded("HumanEval/2")
        final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1].model_extra["routerllm"]
        assert final["timing"] == "measured" and 0 < final["ttft_s"] <= final["generation_s"]
        assert chunks[-1].usage.completion_tokens > 0
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert 'routerllm_requests_total{endpoint="chat",model="remote",status="200",tier="remote"} 1.0' in metrics
        assert 'routerllm_time_to_first_token_seconds_count{tier="remote"} 1.0' in metrics
        assert "routerllm_queue_depth 0.0" in metrics

        upstream.signal(signal.SIGSTOP)
        try:
            stream = client.completions.create(model="remote", prompt="x", stream=True, extra_body=TASK)
            chunks = list(stream)
        finally:
            upstream.signal(signal.SIGCONT)
        info = chunks[0].model_extra["routerllm"]
        assert info["fallback"] is True and info["tier"] == "mistral7b" and info["fallback_from"] == "remote"
        assert "def truncate_number" in "".join(c.choices[0].text for c in chunks if c.choices)
        time.sleep(0.2)
        assert "routerllm_queue_depth 0.0" in httpx.get(url.removesuffix("/v1") + "/metrics").text


def test_the_service_time_limit_covers_a_live_stream_that_never_starts(upstream, monkeypatch):
    """The upstream freezes and the backend's own timeout is long: the server's request_timeout_s
    ends the wait and the small tier answers (the stuck thread keeps its queue slot until it ends)."""
    import signal

    import openai
    from serverkit import SMALL_FILE, TASK, running

    from routerllm.config import config_from_dict

    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote", "backend": "openai", "base_url": upstream.url, "model_id": "gpt4",
                          "api_key_env": "UPSTREAM_KEY", "request_timeout_s": 3, "max_retries": 0},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None, "request_timeout_s": 0.5},
    })
    with running(config) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)
        upstream.signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            chunks = list(client.completions.create(model="remote", prompt="x", stream=True, extra_body=TASK))
            assert time.monotonic() - start < 2.5
        finally:
            upstream.signal(signal.SIGCONT)
        info = chunks[0].model_extra["routerllm"]
        assert info["fallback"] is True and "request_timeout_s" in info["fallback_reason"]


def test_an_endpoint_down_at_start_up_is_unready_then_joins_when_it_comes_up(tmp_path):
    import openai
    from serverkit import SMALL_FILE, TASK, ServeProcess, running

    from routerllm.config import config_from_dict

    port = free_port()
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote", "backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                          "model_id": "gpt4", "request_timeout_s": 5, "max_retries": 0},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large"]},
        "server": {"api_keys_env": None},
    })
    with running(config) as url:
        base = url.removesuffix("/v1")
        down = httpx.get(f"{base}/health")
        assert "cannot connect" in down.json()["tiers"]["remote"]["error"]
        assert (down.status_code, down.json()["status"]) == (200, "degraded")  # the small tier answers for it
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=30)
        early = client.completions.create(model="router", prompt="x", extra_body=TASK).model_extra["routerllm"]
        assert early["fallback"] and early["tier"] == "mistral7b"
        upstream = ServeProcess(replay_config_dict(), tmp_path, port=port)
        try:
            upstream.wait_ready()
            up = httpx.get(f"{base}/health")
            assert up.status_code == 200 and up.json()["tiers"]["remote"]["ready"] is True
            late = client.completions.create(model="router", prompt="x", extra_body=TASK).model_extra["routerllm"]
            assert not late["fallback"] and late["tier"] == "remote"
        finally:
            upstream.kill()


def test_a_base_url_without_v1_is_reported_with_the_fix(upstream, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "upstream-key")
    root = upstream.url.removesuffix("/v1")
    with pytest.raises(BackendError) as exc:
        backend_for(root).generate([GenerationRequest(prompt="x", task_id="HumanEval/2")])
    assert "404" in str(exc.value) and "/v1" in exc.value.fix

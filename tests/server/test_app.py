"""The OpenAI-compatible service through a real uvicorn on 127.0.0.1 and the official `openai`
client: completions, chat, streaming, routing information, and every bad input the issue lists."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from routerllm.backends.replay import ReplayBackend
from routerllm.config import config_from_dict
from serverkit import LARGE_FILE, SMALL_FILE, TASK, GatedBackend, replay_config, replay_config_dict, running, wait_for

pytestmark = pytest.mark.timeout(120)


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def test_models_lists_strategies_and_tiers(replay_server):
    models = {m.id: m.model_extra["kind"] for m in client(replay_server).models.list().data}
    assert models == {"router": "strategy", "small": "strategy", "large": "strategy", "random": "strategy",
                      "mistral7b": "tier", "gpt4": "tier"}


def test_completion_says_which_tier_answered_and_why(replay_server):
    raw = client(replay_server).completions.with_raw_response.create(
        model="router", prompt="def truncate_number(number: float) -> float:", max_tokens=512, extra_body=TASK)
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.model == "router"
    assert "def truncate_number" in completion.choices[0].text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    info = completion.model_extra["routerllm"]
    assert info["strategy"] == "small" and info["tier"] == "mistral7b" and info["reason"]
    assert info["calls"] == {"mistral7b": 1} and info["timing"] == "modelled" and info["co2_kg"] > 0
    assert raw.headers["x-routerllm-tier"] == "mistral7b"
    assert raw.headers["x-routerllm-strategy"] == "small"
    assert raw.headers["x-routerllm-reason"] == info["reason"]
    assert raw.headers["x-routerllm-fallback"] == "false"


def test_chat_completion_and_tier_selected_by_name(replay_server):
    c = client(replay_server)
    chat = c.chat.completions.create(model="gpt4", messages=[{"role": "user", "content": "Write truncate_number"}],
                                     extra_body=TASK)
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert "def truncate_number" in chat.choices[0].message.content
    info = chat.model_extra["routerllm"]
    assert info["tier"] == "gpt4" and info["strategy"] is None and "directly" in info["reason"]
    routed = c.chat.completions.create(model="large", messages=[{"role": "user", "content": "x"}], extra_body=TASK)
    assert routed.model_extra["routerllm"]["strategy"] == "large"
    assert routed.choices[0].message.content == chat.choices[0].message.content


def test_chat_streaming_matches_the_whole_answer(replay_server):
    c = client(replay_server)
    messages = [{"role": "user", "content": "Write truncate_number"}]
    whole = c.chat.completions.create(model="gpt4", messages=messages, extra_body=TASK)
    chunks = list(c.chat.completions.create(model="gpt4", messages=messages, stream=True,
                                            stream_options={"include_usage": True}, extra_body=TASK))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].model_extra["routerllm"]["tier"] == "gpt4"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) > 2
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens and not chunks[-1].choices


def test_completion_streaming_is_server_sent_events_as_openai_sends_them(replay_server):
    body = {"model": "router", "prompt": "def truncate_number", "stream": True, **TASK}
    with httpx.stream("POST", f"{replay_server}/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-routerllm-tier"] == "mistral7b"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert all(pl["object"] == "text_completion" for pl in payloads)
    assert "def truncate_number" in "".join(pl["choices"][0]["text"] for pl in payloads)
    # the official client reads the same stream
    streamed = client(replay_server).completions.create(model="router", prompt="x", stream=True, extra_body=TASK)
    assert "def truncate_number" in "".join(ch.choices[0].text for ch in streamed)


def test_api_keys_from_config_and_environment(monkeypatch):
    monkeypatch.setenv("ROUTERLLM_TEST_KEYS", "env-key-1, env-key-2")
    cfg = replay_config(server={"api_keys": ["cfg-key"], "api_keys_env": "ROUTERLLM_TEST_KEYS"})
    with running(cfg) as url:
        for good in ("cfg-key", "env-key-2"):
            assert client(url, good).completions.create(model="router", prompt="x", extra_body=TASK).choices
        with pytest.raises(openai.AuthenticationError) as wrong:
            client(url, "wrong-key").completions.create(model="router", prompt="x", extra_body=TASK)
        assert wrong.value.status_code == 401 and wrong.value.code == "invalid_api_key"
        missing = httpx.post(f"{url}/completions", json={"model": "router", "prompt": "x"})
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        assert missing.json()["error"]["code"] == "missing_api_key"
        assert httpx.get(f"{url}/models").status_code == 401
        # health stays open for probes; metrics and the API document need the key
        base = url.removesuffix("/v1")
        assert httpx.get(f"{base}/health").status_code == 200
        for path in ("/metrics", "/openapi.json", "/docs", "/v1/models/router", "/v1/nothing"):
            refused = httpx.get(f"{base}{path}")
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
        assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer cfg-key"}).status_code == 200
        assert httpx.get(f"{base}/openapi.json", headers={"Authorization": "Bearer cfg-key"}).json()["openapi"]
    with running(replay_config(server={"api_keys": ["k"], "open_metrics": True, "open_docs": True})) as url:
        base = url.removesuffix("/v1")
        assert [httpx.get(f"{base}{path}").status_code for path in ("/metrics", "/openapi.json", "/docs")] == [200] * 3
        assert httpx.get(f"{url}/models").status_code == 401


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_malformed_json_is_a_400_naming_json(replay_server):
    for raw in (b'{"model": "router", "prompt": ', b"not json at all", b'{"model": "router",}'):
        err = _error(httpx.post(f"{replay_server}/completions", content=raw,
                                headers={"content-type": "application/json"}), 400)
        assert err["code"] == "invalid_json" and "JSON" in err["message"]
    err = _error(httpx.post(f"{replay_server}/chat/completions", content=b"[1, 2]",
                            headers={"content-type": "application/json"}), 400)
    assert "JSON object" in err["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("completions", {"model": "router", "prompt": 5}, "prompt"),
        ("completions", {"model": "router", "prompt": "x", "max_tokens": "100"}, "max_tokens"),
        ("completions", {"model": "router", "prompt": "x", "temperature": "hot"}, "temperature"),
        ("completions", {"model": "router", "prompt": "x", "temperature": 7}, "temperature"),
        ("completions", {"model": "router", "prompt": "x", "stream": "yes"}, "stream"),
        ("completions", {"model": 3, "prompt": "x"}, "model"),
        ("completions", {"prompt": "x"}, "model"),
        ("completions", {"model": "router"}, "prompt"),
        ("completions", {"model": "router", "prompt": "x", "n": 3}, "n"),
        ("completions", {"model": "router", "prompt": ["a", "b"]}, "prompt"),
        ("completions", {"model": "router", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("chat/completions", {"model": "router", "messages": "hello"}, "messages"),
        ("chat/completions", {"model": "router", "messages": []}, "messages"),
        ("chat/completions", {"model": "router", "messages": [{"role": "alien", "content": "x"}]}, "messages.0.role"),
        ("chat/completions", {"model": "router", "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ("chat/completions", {"model": "router", "messages": [{"role": "user", "content": "x"}],
                              "routerllm": {"sample": "one"}}, "routerllm.sample"),
    ],
)
def test_wrong_types_and_values_are_400_naming_the_field(replay_server, path, body, param):
    err = _error(httpx.post(f"{replay_server}/{path}", json=body), 400)
    assert err["type"] == "invalid_request_error" and err["param"] == param, err


def test_unknown_model_is_404_listing_the_models(replay_server):
    with pytest.raises(openai.NotFoundError) as exc:
        client(replay_server).completions.create(model="gpt-5", prompt="x")
    assert exc.value.code == "model_not_found" and exc.value.body["param"] == "model"
    assert "cascade" not in exc.value.message and "router" in exc.value.message and "gpt4" in exc.value.message


def test_max_tokens_out_of_range_is_400(replay_server):
    c = client(replay_server)
    for value in (0, -1, 4097):
        with pytest.raises(openai.BadRequestError) as exc:
            c.completions.create(model="router", prompt="x", max_tokens=value, extra_body=TASK)
        assert exc.value.body["param"] == "max_tokens" and "4096" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="router", messages=[{"role": "user", "content": "x"}],
                                  max_completion_tokens=10**6, extra_body=TASK)
    assert exc.value.body["param"] == "max_completion_tokens"
    assert c.completions.create(model="router", prompt="x", max_tokens=4096, extra_body=TASK).choices


def test_prompt_over_the_limit_is_400():
    with running(replay_config(server={"max_prompt_chars": 1000})) as url:
        c = client(url)
        with pytest.raises(openai.BadRequestError) as exc:
            c.completions.create(model="router", prompt="x" * 1001, extra_body=TASK)
        assert exc.value.body["param"] == "prompt" and exc.value.code == "context_length_exceeded"
        with pytest.raises(openai.BadRequestError) as exc:
            c.chat.completions.create(model="router", messages=[{"role": "system", "content": "y" * 600},
                                                                {"role": "user", "content": "x" * 600}])
        assert exc.value.body["param"] == "messages"
        assert c.completions.create(model="router", prompt="x" * 1000, extra_body=TASK).choices


def test_unknown_routes_and_methods_answer_openai_style_errors(replay_server):
    base = replay_server.removesuffix("/v1")
    assert _error(httpx.get(f"{base}/v1/nothing"), 404)["type"] == "not_found_error"
    assert _error(httpx.get(f"{replay_server}/completions"), 405)["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["router", "large", "gpt4"])
def test_a_task_the_replay_tier_does_not_know_is_the_clients_error(model):
    """An unknown or missing task id is a 400 naming routerllm.task_id: not a 503, not a large-tier
    failure, no fallback, and no file path or operator hint in the message."""
    with running(replay_config(server={"fallback_to_small": True})) as url:
        unknown = _error(httpx.post(f"{url}/completions", json={
            "model": model, "prompt": "x", "routerllm": {"task_id": "HumanEval/999"}}), 400)
        assert (unknown["param"], unknown["code"]) == ("routerllm.task_id", "unknown_task")
        assert "HumanEval/999" in unknown["message"]
        missing = _error(httpx.post(f"{url}/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "x"}]}), 400)
        assert (missing["param"], missing["code"]) == ("routerllm.task_id", "missing_task_id")
        for err in (unknown, missing):
            assert "/" + str(LARGE_FILE.parent).strip("/") not in err["message"] and ".jsonl" not in err["message"]
            assert "Fix" not in err["message"] and "fix" not in err["message"].lower()
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert "routerllm_large_tier_failures_total{" not in metrics and "routerllm_fallbacks_total{" not in metrics
        assert f'routerllm_requests_total{{endpoint="completions",model="{model}",status="400",tier="none"}} 1.0' in metrics


def _gated_large(hold_s: float | None = None) -> tuple[GatedBackend, dict]:
    cfg = replay_config()
    gated = GatedBackend(ReplayBackend(cfg.models.large_llm), hold_s=hold_s)
    return gated, {"gpt4": gated}


def test_full_queue_answers_429_with_retry_after_and_loses_nothing():
    cfg = replay_config(server={"max_queue": 3, "max_concurrency": 2, "retry_after_s": 2})
    gated, backends = _gated_large()
    with running(cfg, backends) as url:
        c = client(url)

        def ask() -> str:
            return c.completions.create(model="large", prompt="x", extra_body=TASK).model_extra["routerllm"]["tier"]

        with ThreadPoolExecutor(3) as pool:
            admitted = [pool.submit(ask) for _ in range(3)]
            # 2 generating (max_concurrency) + 1 waiting for a thread = the queue of 3 is full
            wait_for(lambda: gated.waiting == 2, what="two generations in flight")
            metrics_url = url.removesuffix("/v1") + "/metrics"
            wait_for(lambda: "routerllm_queue_depth 3.0" in httpx.get(metrics_url).text, what="three admitted")
            refused = httpx.post(f"{url}/completions", json={"model": "large", "prompt": "x", **TASK})
            err = _error(refused, 429)
            assert refused.headers["retry-after"] == "2"
            assert err["type"] == "rate_limit_error" and err["code"] == "queue_full"
            with pytest.raises(openai.RateLimitError):
                c.completions.create(model="large", prompt="x", extra_body=TASK)
            gated.gate.set()
            assert [f.result(timeout=30) for f in admitted] == ["gpt4"] * 3
        # after the queue drains the server admits again
        assert ask() == "gpt4"
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert 'routerllm_requests_total{endpoint="completions",model="large",status="429",tier="none"} 2.0' in metrics
        assert 'routerllm_requests_total{endpoint="completions",model="large",status="200",tier="gpt4"} 4.0' in metrics


def test_large_tier_timeout_falls_back_to_small_and_is_recorded():
    cfg = replay_config(server={"request_timeout_s": 0.5, "fallback_to_small": True})
    gated, backends = _gated_large(hold_s=5)
    with running(cfg, backends) as url:
        start = time.monotonic()
        raw = client(url).completions.with_raw_response.create(model="large", prompt="x", extra_body=TASK)
        assert time.monotonic() - start < 4
        info = raw.parse().model_extra["routerllm"]
        assert info["fallback"] is True and info["tier"] == "mistral7b" and info["fallback_from"] == "gpt4"
        assert "request_timeout_s" in info["fallback_reason"] and info["strategy"] == "large"
        assert info["calls"] == {"gpt4": 1, "mistral7b": 1}
        assert raw.headers["x-routerllm-fallback"] == "true" and raw.headers["x-routerllm-tier"] == "mistral7b"
        metrics = httpx.get(url.removesuffix("/v1") + "/metrics").text
        assert 'routerllm_fallbacks_total{from_tier="gpt4",reason="timeout",to_tier="mistral7b"} 1.0' in metrics
        gated.gate.set()


def test_large_tier_timeout_without_fallback_is_503():
    cfg = replay_config(server={"request_timeout_s": 0.5, "fallback_to_small": False})
    gated, backends = _gated_large(hold_s=5)
    with running(cfg, backends) as url:
        start = time.monotonic()
        with pytest.raises(openai.InternalServerError) as exc:
            client(url).completions.create(model="large", prompt="x", extra_body=TASK)
        assert exc.value.status_code == 503 and exc.value.code == "large_tier_unavailable"
        assert time.monotonic() - start < 4
        gated.gate.set()


def test_small_tier_timeout_is_504():
    cfg = replay_config(server={"request_timeout_s": 0.3})
    inner = ReplayBackend(cfg.models.small_llms[0])
    gated = GatedBackend(inner, hold_s=3)
    with running(cfg, {"mistral7b": gated}) as url:
        err = _error(httpx.post(f"{url}/completions", json={"model": "router", "prompt": "x", **TASK}), 504)
        assert err["type"] == "timeout_error"
        gated.gate.set()


@pytest.mark.parametrize("fallback", [True, False])
def test_health_when_the_large_tier_is_not_reachable(tmp_path, fallback):
    """Large tier down: 200 "degraded" while a small tier can answer for it (fallback on), else 503."""
    copy = tmp_path / "gpt4.jsonl"
    copy.write_bytes(LARGE_FILE.read_bytes())
    cfg = replay_config(large={"name": "gpt4", "backend": "replay", "replay_file": str(copy)},
                        server={"fallback_to_small": fallback})
    with running(cfg) as url:
        base = url.removesuffix("/v1")
        ok = httpx.get(f"{base}/health")
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        assert ok.json()["tiers"]["gpt4"] == {"ready": True, "role": "large"}
        copy.unlink()
        down = httpx.get(f"{base}/health")
        assert down.json()["tiers"]["gpt4"]["ready"] is False
        assert down.json()["tiers"]["mistral7b"]["ready"] is True
        if fallback:
            assert (down.status_code, down.json()["status"]) == (200, "degraded")
            # and it is true: a request for the large tier is still answered (the replay tier keeps its
            # records in memory; test_large_tier_killed covers a fallback after a real failure)
            r = httpx.post(f"{url}/completions", json={"model": "large", "prompt": "x", **TASK})
            assert r.status_code == 200
        else:
            assert (down.status_code, down.json()["status"]) == (503, "unavailable")
        assert "routerllm_tier_up{tier=\"gpt4\"} 0.0" in httpx.get(f"{base}/metrics").text


def test_health_is_503_when_a_small_tier_is_not_reachable(tmp_path):
    copy = tmp_path / "mistral7b.jsonl"
    copy.write_bytes(SMALL_FILE.read_bytes())
    raw = replay_config_dict()
    raw["models"]["small_llms"][0]["replay_file"] = str(copy)
    cfg = config_from_dict(raw)
    with running(cfg) as url:
        base = url.removesuffix("/v1")
        assert httpx.get(f"{base}/health").status_code == 200
        copy.unlink()
        down = httpx.get(f"{base}/health")
        assert (down.status_code, down.json()["status"]) == (503, "unavailable")
        assert down.json()["tiers"]["mistral7b"]["ready"] is False


def test_metrics_count_requests_decisions_tokens_latency_and_co2(replay_server):
    c = client(replay_server)
    for _ in range(3):
        c.completions.create(model="router", prompt="x", extra_body=TASK)
    c.chat.completions.create(model="large", messages=[{"role": "user", "content": "x"}], extra_body=TASK)
    httpx.post(f"{replay_server}/completions", json={"model": "router", "prompt": 1})
    response = httpx.get(replay_server.removesuffix("/v1") + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'routerllm_requests_total{endpoint="completions",model="router",status="200",tier="mistral7b"} 3.0' in text
    assert 'routerllm_requests_total{endpoint="chat",model="large",status="200",tier="gpt4"} 1.0' in text
    assert 'routerllm_requests_total{endpoint="completions",model="unknown",status="400",tier="none"} 1.0' in text
    assert 'routerllm_routing_decisions_total{strategy="small",tier="mistral7b"} 3.0' in text
    assert 'routerllm_routing_decisions_total{strategy="large",tier="gpt4"} 1.0' in text
    assert 'routerllm_request_latency_seconds_count{endpoint="completions",tier="mistral7b"} 3.0' in text
    assert 'routerllm_time_to_first_token_seconds_count{tier="gpt4"} 1.0' in text
    assert 'routerllm_tokens_total{kind="completion",tier="mistral7b"}' in text
    assert 'routerllm_co2_kg_total{tier="gpt4",timing="modelled"}' in text
    assert "routerllm_queue_depth 0.0" in text


def test_two_apps_keep_separate_metrics(replay_server):
    client(replay_server).completions.create(model="router", prompt="x", extra_body=TASK)
    with running(replay_config()) as other:
        text = httpx.get(other.removesuffix("/v1") + "/metrics").text
        assert 'status="200"' not in text


def test_requests_run_off_the_event_loop():
    """While every generation thread is blocked, the loop still answers /health and /metrics."""
    cfg = replay_config(server={"max_queue": 4, "max_concurrency": 2})
    gated, backends = _gated_large()
    with running(cfg, backends) as url:
        c = client(url)
        threads = [threading.Thread(target=lambda: c.completions.create(model="large", prompt="x", extra_body=TASK))
                   for _ in range(2)]
        for t in threads:
            t.start()
        wait_for(lambda: gated.waiting == 2, what="two blocked generations")
        start = time.monotonic()
        assert httpx.get(url.removesuffix("/v1") + "/metrics", timeout=5).status_code == 200
        assert time.monotonic() - start < 1
        gated.gate.set()
        for t in threads:
            t.join(timeout=30)


def test_a_body_far_over_the_limit_is_refused_before_parsing():
    with running(replay_config(server={"max_prompt_chars": 1000})) as url:
        huge = b'{"model": "router", "prompt": "' + b"x" * 2_000_000 + b'"}'
        err = _error(httpx.post(f"{url}/completions", content=huge, headers={"content-type": "application/json"}), 413)
        assert err["code"] == "request_too_large" and err["param"] == "prompt"
        # a body just over the prompt limit still gets the precise 400 naming the field
        assert _error(httpx.post(f"{url}/completions", json={"model": "router", "prompt": "x" * 1001}), 400)["param"] \
            == "prompt"

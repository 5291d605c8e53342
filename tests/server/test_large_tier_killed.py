"""The large tier as a separate server process (another `routerllm serve`, reached through the
`openai` backend), killed in the middle of a run: with requests in flight and clients still
sending. Every request gets an answer within a bounded time: the small tier's (marked as a
fallback) when server.fallback_to_small is on, else a 503."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serverkit import SMALL_FILE, TASK, replay_config_dict, running, wait_for

from routerllm.config import config_from_dict

pytestmark = pytest.mark.timeout(240)

CLIENTS = 6
REQUESTS_PER_CLIENT = 30
# Bound on any one request: upstream timeout (2 s) + retry backoff + fallback, with margin.
MAX_LATENCY_S = 8.0


def _run_and_kill(serve_process, fallback: bool) -> tuple[list[dict], float]:
    upstream = serve_process(replay_config_dict())  # serves tiers gpt4 / mistral7b over HTTP
    config = config_from_dict({
        "models": {
            "large_llm": {"name": "remote_large", "backend": "openai", "base_url": upstream.url, "model_id": "gpt4",
                          "request_timeout_s": 2, "max_retries": 1, "health_timeout_s": 0.5},
            "small_llms": [{"name": "mistral7b", "backend": "replay", "replay_file": str(SMALL_FILE)}],
        },
        "router": {"strategy": "large", "strategies": ["large", "small"]},
        "server": {"api_keys_env": None, "fallback_to_small": fallback, "request_timeout_s": 10,
                   "max_queue": 64, "max_concurrency": 8},
    })
    results: list[dict] = []
    lock = threading.Lock()
    killed_at: list[float] = []
    frozen_at: list[float] = []

    with running(config) as url:
        base = url.removesuffix("/v1")
        assert httpx.get(f"{base}/health").json()["tiers"]["remote_large"]["ready"] is True

        def client(i: int) -> None:
            with httpx.Client(timeout=30) as http:
                for n in range(REQUESTS_PER_CLIENT):
                    start = time.monotonic()
                    try:
                        r = http.post(f"{url}/completions", json={"model": "router", "prompt": "x", **TASK})
                        body = r.json()
                        row = {"status": r.status_code, "body": body, "fallback": r.headers.get("x-routerllm-fallback")}
                    except httpx.HTTPError as exc:  # a lost request: no answer at all
                        row = {"status": None, "error": repr(exc)}
                    row.update(start=start, latency=time.monotonic() - start, client=i, n=n)
                    with lock:
                        results.append(row)
                    time.sleep(0.02)

        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, i) for i in range(CLIENTS)]
            wait_for(lambda: len(results) >= 40, 60, "40 answers from the healthy large tier")
            # freeze the upstream so requests pile up in flight, then kill it under them
            frozen_at.append(time.monotonic())
            upstream.signal(signal.SIGSTOP)
            time.sleep(0.5)
            killed_at.append(time.monotonic())
            upstream.kill()
            for f in futures:
                f.result(timeout=180)
        health = httpx.get(f"{base}/health")
        assert health.json()["tiers"]["remote_large"]["ready"] is False
        # with a fallback every request is still answered, so the service is degraded, not down
        assert (health.status_code, health.json()["status"]) == ((200, "degraded") if fallback else (503, "unavailable"))
        metrics = httpx.get(f"{base}/metrics").text
    return results, (frozen_at[0], killed_at[0]), metrics


def _check_common(results: list[dict], times: tuple[float, float]) -> tuple[list[dict], list[dict]]:
    frozen, killed = times
    assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
    lost = [r for r in results if r["status"] is None]
    assert not lost, lost[:3]
    slow = [r["latency"] for r in results if r["latency"] > MAX_LATENCY_S]
    assert not slow, f"requests took {slow} s"
    # answered before the freeze (the clients answer ~200 requests/s, so this is timed by the
    # freeze itself, not by the kill less a margin)
    before = [r for r in results if r["start"] + r["latency"] < frozen]
    after = [r for r in results if r["start"] > killed + 0.1]
    assert len(before) >= 20 and len(after) >= 30
    assert all(r["status"] == 200 and r["body"]["routerllm"]["tier"] == "remote_large" for r in before)
    return before, after


def test_killed_large_tier_falls_back_to_small(serve_process):
    results, times, metrics = _run_and_kill(serve_process, fallback=True)
    before, after = _check_common(results, times)
    killed = times[1]
    assert all(r["status"] == 200 for r in results), [r for r in results if r["status"] != 200][:3]
    for r in after:
        info = r["body"]["routerllm"]
        assert info["fallback"] is True and info["tier"] == "mistral7b" and info["fallback_from"] == "remote_large"
        assert r["fallback"] == "true" and "def truncate_number" in r["body"]["choices"][0]["text"]
    # requests caught in flight by the kill fell back too
    in_flight = [r for r in results if r["start"] < killed < r["start"] + r["latency"]]
    assert in_flight and all(r["body"]["routerllm"]["fallback"] for r in in_flight)
    fallbacks = sum(1 for r in results if r["body"]["routerllm"]["fallback"])
    recorded = sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("routerllm_fallbacks_total{"))
    assert recorded == fallbacks


def test_killed_large_tier_without_fallback_answers_503(serve_process):
    results, times, metrics = _run_and_kill(serve_process, fallback=False)
    before, after = _check_common(results, times)
    assert all(r["status"] == 503 for r in after)
    for r in after:
        assert r["body"]["error"]["code"] == "large_tier_unavailable" and "remote_large" in r["body"]["error"]["message"]
    assert {r["status"] for r in results} <= {200, 503}
    assert 'routerllm_fallbacks_total{' not in metrics

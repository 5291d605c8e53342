"""Server bench, both sides measured in one run on this machine.

1. Added latency: the replay backend called directly (in-process `generate`) against the same
   request through the service (`routerllm serve` in a subprocess on 127.0.0.1, the official
   `openai` client with keep-alive). Prints p50/p95 of both and the difference.
   Goal: the service adds under 5 ms at p50.
2. Bounded load: 50 concurrent clients for 30 s against 127.0.0.1 only. Clients that get a 429
   wait the Retry-After the server sends, as a well-behaved client does. Prints requests, 429s,
   other errors and p50/p99 latency. Goal: zero errors other than the deliberate 429s.

    python bench/bench_server.py [--requests 500] [--clients 50] [--seconds 30] [--max-queue 32]

Uses the recorded generations in data/humaneval-generations.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "humaneval-generations"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(max_queue: int, max_concurrency: int) -> dict:
    return {
        "models": {
            "large_llm": {"name": "gpt4", "backend": "replay", "replay_file": str(DATA / "gpt-4-0613.jsonl")},
            "small_llms": [{"name": "mistral7b", "backend": "replay",
                            "replay_file": str(DATA / "Mistral-7B-Instruct-v0.1.jsonl")}],
        },
        "router": {"strategy": "random", "strategies": ["small", "large", "random"], "random_p": 0.3},
        "server": {"api_keys_env": None, "max_queue": max_queue, "max_concurrency": max_concurrency},
    }


def start_server(cfg: dict, tmp: Path) -> tuple[subprocess.Popen, int]:
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "routerllm.cli", "serve", "--config", str(path), "--port", str(port),
         "--log-level", "error"],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("routerllm serve did not become ready in 60 s")


def added_latency(port: int, cfg: dict, n: int) -> None:
    from routerllm.backends.base import GenerationRequest
    from routerllm.backends.replay import ReplayBackend
    from routerllm.config import config_from_dict

    small = config_from_dict(cfg).models.small_llms[0]
    backend = ReplayBackend(small)
    backend.load()
    tasks = [f"HumanEval/{i % 164}" for i in range(n)]
    direct: list[float] = []
    for task in tasks:
        start = time.perf_counter()
        backend.generate([GenerationRequest(prompt="def f():", task_id=task, max_new_tokens=256)])
        direct.append(time.perf_counter() - start)

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    for task in tasks[:50]:  # warm-up: connection, code paths
        client.completions.create(model="mistral7b", prompt="def f():", max_tokens=256,
                                  extra_body={"routerllm": {"task_id": task}})
    served: dict[str, list[float]] = {"mistral7b": [], "router": [], "mistral7b via httpx": []}
    bare: list[float] = []  # GET /v1/models: the HTTP stack and client alone, no generation, no thread hop
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}/v1")
    for task in tasks:
        for model in ("mistral7b", "router"):
            start = time.perf_counter()
            client.completions.create(model=model, prompt="def f():", max_tokens=256,
                                      extra_body={"routerllm": {"task_id": task}})
            served[model].append(time.perf_counter() - start)
        start = time.perf_counter()  # the same request from a minimal HTTP client (no openai client work)
        http.post("/completions", json={"model": "mistral7b", "prompt": "def f():", "max_tokens": 256,
                                        "routerllm": {"task_id": task}}).raise_for_status()
        served["mistral7b via httpx"].append(time.perf_counter() - start)
        start = time.perf_counter()
        client.models.list()
        bare.append(time.perf_counter() - start)

    ms = 1e3
    print(f"== added latency ({n} requests each, replay backend, keep-alive openai client)")
    print(f"  direct ReplayBackend.generate        p50 {pct(direct, 50) * ms:7.3f} ms   p95 {pct(direct, 95) * ms:7.3f} ms")
    for model, values in served.items():
        label = f"service, model={model}"
        print(f"  {label:36s} p50 {pct(values, 50) * ms:7.3f} ms   p95 {pct(values, 95) * ms:7.3f} ms")
    print(f"  (reference) GET /v1/models, no generation p50 {pct(bare, 50) * ms:7.3f} ms   p95 {pct(bare, 95) * ms:7.3f} ms"
          f"   load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for model, values in served.items():
        added = (pct(values, 50) - pct(direct, 50)) * ms
        added95 = (pct(values, 95) - pct(direct, 95)) * ms
        verdict = "meets" if added < 5 else "MISSES"
        print(f"  added by the service (model={model}): p50 {added:.3f} ms, p95 {added95:.3f} ms "
              f"-> {verdict} the < 5 ms p50 goal")


async def load(port: int, clients: int, seconds: float) -> None:
    url = f"http://127.0.0.1:{port}/v1/completions"
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    retry_after_seen: set[str] = set()
    stop_at = time.monotonic() + seconds

    async def one_client(i: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            n = 0
            while time.monotonic() < stop_at:
                body = {"model": "router", "prompt": "def f():", "max_tokens": 256,
                        "routerllm": {"task_id": f"HumanEval/{(i * 7 + n) % 164}"}}
                n += 1
                start = time.perf_counter()
                try:
                    r = await http.post(url, json=body)
                    key: int | str = r.status_code
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                    r = None
                statuses[key] = statuses.get(key, 0) + 1
                if key == 200:
                    latencies.append(time.perf_counter() - start)
                elif key == 429 and r is not None:
                    retry_after = r.headers.get("retry-after", "1")
                    retry_after_seen.add(retry_after)
                    await asyncio.sleep(float(retry_after))

    started = time.monotonic()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    total = sum(statuses.values())
    rejected = statuses.get(429, 0)
    errors = total - statuses.get(200, 0) - rejected
    print(f"== load: {clients} concurrent clients for {seconds:g} s against 127.0.0.1 (model=router)")
    print(f"  requests {total}   answered 200: {statuses.get(200, 0)}   429 (queue full): {rejected} "
          f"(Retry-After {', '.join(sorted(retry_after_seen)) or '-'} s)   other errors: {errors}")
    print(f"  statuses {statuses}")
    if latencies:
        print(f"  throughput {statuses.get(200, 0) / elapsed:.1f} answers/s   latency of answers: "
              f"p50 {pct(latencies, 50) * 1e3:.1f} ms   p99 {pct(latencies, 99) * 1e3:.1f} ms   "
              f"max {max(latencies) * 1e3:.1f} ms   mean {statistics.fmean(latencies) * 1e3:.1f} ms")
    print(f"  -> {'meets' if errors == 0 else 'MISSES'} the goal of zero errors other than deliberate 429s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="requests per side for the added latency")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-queue", type=int, default=32, help="server.max_queue (beyond it: 429)")
    parser.add_argument("--max-concurrency", type=int, default=4, help="server.max_concurrency")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"recorded generations not found at {DATA}")
    cfg = config(args.max_queue, args.max_concurrency)
    print(f"machine: {os.cpu_count()} CPU cores; server.max_queue={args.max_queue}, "
          f"server.max_concurrency={args.max_concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(cfg, Path(tmp))
        try:
            added_latency(port, cfg, args.requests)
            asyncio.run(load(port, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()

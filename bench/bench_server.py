"""Server bench: what the service adds to a request, and how it holds under load, measured side by
side in one run on this machine.

The server is a real `routerllm serve` stack in a subprocess (build_app + the uvicorn config of
`routerllm serve`: auth on, access log on, written to a file), over replay tiers, with one extra
route added by this bench only: a no-op at /noop/v1/completions that goes through the same guard
(auth, body read), the same uvicorn and the same client, and answers with the same JSON the
service would (prepared in advance), without validating, routing or generating.

1. Added latency, in rounds; each round makes, in a shuffled order:
     direct   ReplayBackend.generate in this process   (the generation itself)
     noop     the official openai client -> the no-op route   (HTTP, server stack, client parsing)
     served   the same client -> /v1/completions (model=router: the 'random' strategy; and model=mistral7b: a tier)
   added = served - noop - direct, per round; prints its p50 and p95 (goal: p50 < 2 ms), and the
   p50 of each side. Interleaving within rounds keeps drift on a shared machine off the difference.
2. Load: 50 clients for 30 s (each one connection, keep-alive), model=router. A client that gets a
   429 waits the Retry-After the server sends, as a well-behaved client does. Prints requests,
   429s, other errors (goal: 0) and the p50/p99 latency of answers.

    python bench/bench_server.py [--rounds 400] [--clients 50] [--seconds 30] [--max-queue 32]

Uses the recorded generations in data/humaneval-generations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
from fastapi import Request  # module level: the no-op route's annotation is resolved from these globals

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "humaneval-generations"
KEY = "bench-key"
TASKS = [f"HumanEval/{i}" for i in range(164)]
MS = 1e3


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
        "server": {"api_keys": [KEY], "api_keys_env": None, "max_queue": max_queue,
                   "max_concurrency": max_concurrency},
    }


def request(task: str) -> dict:
    return {"prompt": "def f():", "max_tokens": 512, "extra_body": {"routerllm": {"task_id": task}}}


# --- the server process ------------------------------------------------------------------------


def serve(config_path: str, port: int) -> None:
    """The server side (run in a subprocess): routerllm's app and uvicorn config, plus the no-op."""
    import logging

    import uvicorn
    from fastapi.responses import Response

    from routerllm.backends.base import GenerationRequest
    from routerllm.backends.replay import ReplayBackend
    from routerllm.config import config_from_dict
    from routerllm.server import protocol as p
    from routerllm.server.app import build_app
    from routerllm.server.transport import uvicorn_config

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = config_from_dict(json.loads(Path(config_path).read_text()))
    app = build_app(cfg)
    small = ReplayBackend(cfg.models.small_llms[0])
    canned: dict[str, bytes] = {}
    for task in TASKS:  # what the service answers for model=mistral7b, prepared once
        (gen,) = small.generate([GenerationRequest(prompt="def f():", task_id=task, max_new_tokens=512)])
        info = p.with_costs(p.RoutingInfo(tier="mistral7b", reason="model 'mistral7b' names this tier directly",
                                          calls={"mistral7b": 1}), gen, 0.475)
        canned[task] = p.Completion(
            id=p.new_id("cmpl"), created=p.now(), model="mistral7b", usage=p.usage_of(gen), routerllm=info,
            choices=[p.CompletionChoice(text=gen.text, finish_reason=p.finish_reason(gen.finish_reason))],
        ).model_dump_json().encode()
    headers = p.routing_headers(p.RoutingInfo(tier="mistral7b", reason="model 'mistral7b' names this tier directly"))

    @app.post("/noop/v1/completions")
    async def noop(req: Request):  # no return annotation: FastAPI would take it for a response model
        task = json.loads(await req.body())["routerllm"]["task_id"]
        return Response(canned[task], media_type="application/json", headers=headers)

    uvicorn.Server(uvicorn_config(app, cfg.server, "127.0.0.1", port, "info")).run()


def start_server(cfg: dict, tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    path = tmp / "bench.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    log = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(path), str(port)], cwd=ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, port, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the bench server exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the bench server did not become ready in 60 s")


# --- 1. added latency --------------------------------------------------------------------------


def added_latency(port: int, cfg: dict, rounds: int) -> None:
    from routerllm.backends.base import GenerationRequest
    from routerllm.backends.replay import ReplayBackend
    from routerllm.config import config_from_dict

    backend = ReplayBackend(config_from_dict(cfg).models.small_llms[0])
    backend.load()
    base = f"http://127.0.0.1:{port}"
    served = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
    noop = openai.OpenAI(base_url=f"{base}/noop/v1", api_key=KEY, max_retries=0)

    def direct(task: str) -> None:
        backend.generate([GenerationRequest(prompt="def f():", task_id=task, max_new_tokens=512)])

    calls = {
        "direct": direct,
        "noop": lambda task: noop.completions.create(model="mistral7b", **request(task)),
        "served router": lambda task: served.completions.create(model="router", **request(task)),
        "served mistral7b": lambda task: served.completions.create(model="mistral7b", **request(task)),
    }
    for task in TASKS[:60]:  # warm-up: connections, code paths
        for call in calls.values():
            call(task)
    times: dict[str, list[float]] = {name: [] for name in calls}
    rng = random.Random(0)
    for i in range(rounds):
        task = TASKS[i % len(TASKS)]
        order = list(calls)
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            calls[name](task)
            times[name].append(time.perf_counter() - start)

    print(f"== added latency: {rounds} rounds, each direct / noop / served in a shuffled order "
          f"(auth on, access log on; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for name, values in times.items():
        print(f"  {name:18s} p50 {pct(values, 50) * MS:7.3f} ms   p95 {pct(values, 95) * MS:7.3f} ms")
    for model in ("router", "mistral7b"):
        added = [s - n - d for s, n, d in zip(times[f"served {model}"], times["noop"], times["direct"])]
        p50, p95 = pct(added, 50) * MS, pct(added, 95) * MS
        print(f"  added by the service, model={model:9s}: p50 {p50:.3f} ms   p95 {p95:.3f} ms   "
              f"-> {'meets' if p50 < 2 else 'MISSES'} the < 2 ms p50 goal")


# --- 2. load -------------------------------------------------------------------------------------


async def load(port: int, clients: int, seconds: float) -> None:
    url = f"http://127.0.0.1:{port}/v1/completions"
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    retry_after_seen: set[str] = set()
    stop_at = time.monotonic() + seconds

    async def one_client(i: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=60, limits=limits, headers={"Authorization": f"Bearer {KEY}"}) as http:
            n = 0
            while time.monotonic() < stop_at:
                body = {"model": "router", "prompt": "def f():", "max_tokens": 512,
                        "routerllm": {"task_id": TASKS[(i * 7 + n) % len(TASKS)]}}
                n += 1
                start = time.perf_counter()
                try:
                    r = await http.post(url, json=body)
                    key: int | str = r.status_code
                except httpx.HTTPError as exc:
                    key, r = type(exc).__name__, None
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
    print(f"== load: {clients} concurrent clients for {seconds:g} s against 127.0.0.1 (model=router, auth on)")
    print(f"  requests {total}   answered 200: {statuses.get(200, 0)}   429 (queue full): {rejected} "
          f"(Retry-After {', '.join(sorted(retry_after_seen)) or '-'} s)   other errors: {errors}")
    print(f"  statuses {statuses}")
    if latencies:
        print(f"  throughput {statuses.get(200, 0) / elapsed:.1f} answers/s   latency of answers: "
              f"p50 {pct(latencies, 50) * MS:.1f} ms   p99 {pct(latencies, 99) * MS:.1f} ms   "
              f"max {max(latencies) * MS:.1f} ms   mean {statistics.fmean(latencies) * MS:.1f} ms")
    print(f"  -> {'meets' if errors == 0 else 'MISSES'} the goal of zero errors other than deliberate 429s")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400, help="rounds of the added-latency measurement")
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
        proc, port, log = start_server(cfg, Path(tmp))
        try:
            added_latency(port, cfg, args.rounds)
            asyncio.run(load(port, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            lines = log.read_text().count('HTTP/1.1"')
            print(f"  (server access log: {lines} request lines written)")


if __name__ == "__main__":
    main()

"""Cross-task batching on a disk-offloaded tier: measured tokens/s against the planner's prediction.

The embedded default's Gemma 3 270M tier (configs/local_config.yaml; bf16 on the CPU) is loaded
through LargeModelManager with a `max_memory` CPU budget that leaves only --resident-layers decoder
layers (and the embedding/head, which accelerate keeps on the execution device) on the CPU and puts
every other layer on `disk`, so each decoding step streams the offloaded layers from the offload
folder once, whatever the batch: the setup of a 405B on too little memory, in miniature.

1. Aggregate tokens/s through the manager at batch 1, 4, 16 and `auto` (planning.speed.
   what `batch_size: auto` picks under the same budget, on its own device map when the planner traded
   layers for the batch), in --rounds interleaved rounds (b1, b4, b16, auto, b1, ...)
   so the shared machine's load hits every batch alike; medians. Each batch is the first B HumanEval
   prompts, greedy, exactly --new-tokens tokens (no stop strings). Next to each: the planner's
   prediction (planning.speed.predict_tokens_per_s at the batch's padded prompt length) and the
   ratio. Goal (issue 10): batch 16 at least 4x batch 1, every figure within 30% of its prediction.
2. End to end: `routerllm benchmark` on --e2e-tasks tasks with that tier, once with `batch_size: 1`
   and once with the default `batch_size: auto`, hidden tests executed; wall times and their ratio (goal: at least
   3x less wall time batched), and how many completions match the batch-1 run token for token
   (greedy; bf16 with left padding may differ at near-ties: reported, not asserted).

    python bench/bench_offload.py [--rounds 3] [--new-tokens 24] [--e2e-tasks 32] [--skip-e2e]

The last line reads `offload speedup at batch 16: N.NNx`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CONTEXT = 320  # tokens planned per row: HumanEval prompts (<= ~250 Gemma tokens for the first 16) + output
DISK_BUDGET = "20GB"


def _tier(name: str):
    from routerllm.config import load_config

    return load_config(ROOT / "configs" / "local_config.yaml").models.tier(name)


def budget_for(tier, resident_layers: int, batch: int, offload: Path) -> tuple[int, object]:
    """The smallest CPU budget (1 MB steps, by bisection) whose plan keeps `resident_layers` decoder
    layers on the CPU and the rest on disk, at `batch` rows of CONTEXT tokens."""
    from routerllm.manager import LargeModelManager
    from routerllm.units import parse_size

    def plan(cpu: int):
        cfg = tier.model_copy(update={"max_memory": {"cpu": cpu, "disk": parse_size(DISK_BUDGET)},
                                      "offload_folder": str(offload), "batch_size": batch,
                                      "context_length": CONTEXT})
        return LargeModelManager(cfg).plan()

    def cpu_layers(p) -> int:
        if p.verdict == "cannot_run" or not any(d.device == "cpu" for d in p.devices):
            return -1
        return len(p.device("cpu").layers)

    lo, hi = 100 << 20, 8 << 30
    while hi - lo > 1 << 20:
        mid = (lo + hi) // 2
        if cpu_layers(plan(mid)) >= resident_layers:
            hi = mid
        else:
            lo = mid
    return hi, plan(hi)


def measure(manager, tokenizer, prompts: list[str], new_tokens: int) -> tuple[float, int, int]:
    """(tokens/s, tokens generated, padded prompt length) of one generate() over `prompts`."""
    from routerllm.backends.base import GenerationRequest

    requests = [GenerationRequest(prompt=p, max_new_tokens=new_tokens, stop=[]) for p in prompts]
    started = time.perf_counter()
    gens = manager.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(g.completion_tokens for g in gens)
    padded = max(len(tokenizer(p)["input_ids"]) for p in prompts)
    return tokens / seconds, tokens, padded


def part_one(args, tier, offload: Path) -> dict:
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.manager import LargeModelManager
    from routerllm.planning import speed

    budget, _ = budget_for(tier, args.resident_layers, 16, offload)
    from routerllm.units import parse_size

    common = {"max_memory": {"cpu": budget, "disk": parse_size(DISK_BUDGET)}, "offload_folder": str(offload),
              "context_length": CONTEXT, "max_new_tokens": args.new_tokens, "stop": []}
    manager = LargeModelManager(tier.model_copy(update={**common, "batch_size": 16}))
    # what `batch_size: auto` gives a user under the same budget (the planner may trade layers to
    # disk for a larger batch, and then it runs on its own device map)
    auto_manager = LargeModelManager(tier.model_copy(update={**common, "batch_size": "auto"}))
    auto = auto_manager.batch_size
    own_map = auto_manager.plan().device_map != manager.plan().device_map or auto > 16
    started = time.perf_counter()
    info = manager.load(progress=False)
    load_s = time.perf_counter() - started
    if own_map:
        auto_manager.load(progress=False)
    else:
        auto_manager = manager
    plans = {id(manager): manager.plan(), id(auto_manager): auto_manager.plan()}
    for label, m in (("batch 1/4/16", manager), (f"auto ({auto})", auto_manager)):
        p = plans[id(m)]
        where = {d.device: d for d in p.devices}
        disk_layers = len(where["disk"].layers) if "disk" in where else 0
        disk_mib = where["disk"].weight_bytes / 2**20 if "disk" in where else 0.0
        print(f"{label}: cpu budget {budget / 2**20:.0f} MiB -> {len(where['cpu'].layers)} layers on cpu, "
              f"{disk_layers} on disk ({disk_mib:.0f} MiB streamed per step; plan: {p.reason})"
              + (f"; {m.batch_size_reason}" if m is auto_manager else ""), flush=True)
        if m is auto_manager and not own_map:
            print("  auto runs on the same device map as batch 1/4/16")
    print(f"load {load_s:.1f} s", flush=True)
    for note in info.notes:
        print(f"  load note: {note}")
    tasks = load_tasks()
    prompts = [tasks[i % len(tasks)].prompt for i in range(max(16, auto))]
    runs = [("1", 1, manager), ("4", 4, manager), ("16", 16, manager), (f"auto={auto}", auto, auto_manager)]
    for m in {id(m): m for _, _, m in runs}.values():
        measure(m, m.tokenizer, prompts[:1], 2)  # warm-up: first touch of the offloaded pages
    seen: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    padded: dict[str, int] = {}
    for r in range(args.rounds):
        for label, b, m in runs:
            tps, tokens, pad = measure(m, m.tokenizer, prompts[:b], args.new_tokens)
            seen[label].append(tps)
            padded[label] = pad
            print(f"  round {r + 1} batch {label:>8}: {tps:7.2f} tok/s ({tokens} tokens)", flush=True)
    rows = {}
    for label, b, m in runs:
        measured = statistics.median(seen[label])
        predicted = speed.predict_tokens_per_s(plans[id(m)], b, prompt_tokens=padded[label], new_tokens=args.new_tokens)
        rows[label] = {"batch": b, "measured": measured, "predicted": predicted, "ratio": measured / predicted,
                       "all": seen[label]}
    manager.unload()
    auto_manager.unload()
    return {"rows": rows, "auto": auto, "budget": budget}


def _e2e_config(config_path: Path, tier, budget: int, batch: int, offload: Path, new_tokens: int) -> None:
    import yaml

    data = yaml.safe_load((ROOT / "configs" / "local_config.yaml").read_text())
    small = next(m for m in data["models"]["small_llms"] if m["name"] == tier.name)
    small.update(max_memory={"cpu": budget, "disk": DISK_BUDGET}, offload_folder=str(offload),
                 batch_size=batch, context_length=CONTEXT, max_new_tokens=new_tokens)
    data["benchmark"].update(track_co2=False, results_dir=str(config_path.parent / "results"))
    config_path.write_text(yaml.safe_dump(data))


def part_two(args, tier, budget: int, work: Path) -> dict:
    out = {}
    for label, batch in (("batch 1", 1), ("batch auto", "auto")):
        cfg = work / f"config-b{batch}.yaml"
        _e2e_config(cfg, tier, budget, batch, work / "offload", args.e2e_new_tokens)
        cmd = [sys.executable, "-m", "routerllm", "benchmark", "--config", str(cfg), "--model", tier.name,
               "--num-examples", str(args.e2e_tasks), "--run-name", f"b{batch}", "--no-progress"]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        records = [json.loads(line) for line in (work / "results" / f"b{batch}" / "results.jsonl").read_text().splitlines()]
        out[label] = {"wall_s": wall, "records": {r["task_id"]: r for r in records}}
        passed = sum((r["samples"][0].get("verdict") or {}).get("status") == "passed" for r in records)
        print(f"  e2e {label}: {wall:.1f} s wall, {len(records)} tasks, {passed} passed", flush=True)
    one, many = out["batch 1"]["records"], out["batch auto"]["records"]
    same = sum(one[t]["samples"][0]["completion"] == many[t]["samples"][0]["completion"] for t in one)
    used = sorted({(r.get("batch") or {}).get("size") for r in many.values()} - {None})
    return {"wall_1": out["batch 1"]["wall_s"], "wall_auto": out["batch auto"]["wall_s"], "same": same,
            "n": len(one), "auto_sizes": used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", default="gemma3_270m", help="a tier of configs/local_config.yaml")
    parser.add_argument("--resident-layers", type=int, default=3, help="decoder layers kept on the CPU; the rest on disk")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=24, help="tokens per row in part 1")
    parser.add_argument("--e2e-tasks", type=int, default=32)
    parser.add_argument("--e2e-new-tokens", type=int, default=64, help="the tier's max_new_tokens in part 2")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()

    tier = _tier(args.tier)
    work = Path(tempfile.mkdtemp(prefix="bench-offload-", dir=os.environ.get("ROUTERLLM_BENCH_DIR") or None))
    try:
        one = part_one(args, tier, work / "offload")
        two = None if args.skip_e2e else part_two(args, tier, one["budget"], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = one["rows"]
    base = rows["1"]["measured"]
    print()
    print(f"{'batch':>10} | {'measured tok/s':>14} | {'predicted':>9} | {'measured/pred':>13} | {'vs batch 1':>10}")
    for label, row in rows.items():
        print(f"{label:>10} | {row['measured']:14.2f} | {row['predicted']:9.2f} | {row['ratio']:13.2f} | "
              f"{row['measured'] / base:9.2f}x")
    within = all(0.7 <= row["ratio"] <= 1.3 for row in rows.values())
    speedup = rows["16"]["measured"] / base
    print(f"goal batch 16 >= 4x batch 1: {'met' if speedup >= 4 else 'NOT met'}; "
          f"every figure within 30% of its prediction: {'met' if within else 'NOT met'}")
    if two is not None:
        ratio = two["wall_1"] / two["wall_auto"]
        print(f"end to end, {two['n']} tasks: batch 1 {two['wall_1']:.1f} s, batch_size auto (batches of "
              f"{', '.join(map(str, two['auto_sizes'])) or '?'}) {two['wall_auto']:.1f} s, "
              f"{ratio:.2f}x less wall time ({'met' if ratio >= 3 else 'NOT met'}: goal 3x); "
              f"{two['same']} of {two['n']} completions identical to batch 1's")
    print(f"offload speedup at batch 16: {speedup:.2f}x")


if __name__ == "__main__":
    main()

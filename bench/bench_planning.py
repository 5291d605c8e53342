"""Planning time: routerllm's plan() vs accelerate's bare infer_auto_device_map, side by side.

Model llama3_405b, hardware 3xA100-80GB (+200 GB CPU RAM), NF4, context 4096. Each "cold" figure
comes from a fresh Python subprocess:

- imports: torch, transformers, accelerate, the Llama modeling module, routerllm;
- cold (after imports): the first plan() call, which builds the meta model, computes the map
  (iterating on KV/offload reservations), accounts bytes, speed and the TP x PP table;
- total: imports + cold, as a user of `routerllm plan` waits for it.

The accelerate baseline is what transformers does for `device_map="auto"` with 4-bit: build the
meta model under `init_empty_weights`, then one `infer_auto_device_map(model, max_memory,
no_split_module_classes, dtype=CustomDtype.INT4, special_dtypes={unquantized: bf16})`.
"Warm" repeats the call in the same process (meta model already built). Goal: plan() cold < 2 s.
Both run with the planning cache off (ROUTERLLM_PLANNING_CACHE=0): this part measures the planning.

First, the whole `routerllm plan` process cold vs cached (see whole_process below).

    python bench/bench_planning.py [--repeat 5] [--rounds 2] [--whole-process-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

BUDGET = "{0: 75 * 10**9, 1: 75 * 10**9, 2: 75 * 10**9, 'cpu': 180 * 10**9}"

ROUTERLLM = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import torch, transformers, accelerate
    import transformers.models.llama.modeling_llama  # the model class a plan instantiates
    from routerllm.catalog import get_spec
    from routerllm.hardware import get_profile
    from routerllm.planning import PlanOptions, plan
    t1 = time.perf_counter()
    hw = get_profile("3xA100-80GB").with_overrides(cpu_ram=200 * 10**9)
    opts = PlanOptions(quantization="nf4", context_length=4096)
    p = plan(get_spec("llama3_405b"), hw, opts)
    t2 = time.perf_counter()
    warm = []
    for _ in range(REPEAT):
        s = time.perf_counter(); plan(get_spec("llama3_405b"), hw, opts); warm.append(time.perf_counter() - s)
    print(json.dumps({"imports": t1 - t0, "cold": t2 - t1, "warm": min(warm), "verdict": p.verdict,
                      "layers": {str(d.device): d.num_layers for d in p.devices}}))
    """
)

ACCELERATE = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import torch, transformers, accelerate
    import transformers.models.llama.modeling_llama
    from accelerate import infer_auto_device_map, init_empty_weights
    from accelerate.utils import CustomDtype
    from transformers import AutoModelForCausalLM
    from routerllm.catalog import get_spec
    t1 = time.perf_counter()
    config = get_spec("llama3_405b").config
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    special = {n: torch.bfloat16 for n, _ in model.named_parameters()
               if not any(k in n for k in ("proj",))}  # embeddings, norms, lm_head stay bf16
    def once():
        return infer_auto_device_map(model, max_memory=BUDGET, no_split_module_classes=["LlamaDecoderLayer"],
                                     dtype=CustomDtype.INT4, special_dtypes=special)
    m = once()
    t2 = time.perf_counter()
    warm = []
    for _ in range(REPEAT):
        s = time.perf_counter(); once(); warm.append(time.perf_counter() - s)
    print(json.dumps({"imports": t1 - t0, "cold": t2 - t1, "warm": min(warm),
                      "devices": sorted({str(v) for v in m.values()})}))
    """
)


def _run(code: str, repeat: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "ROUTERLLM_PLANNING_CACHE": "0"}
    src = code.replace("REPEAT", str(repeat)).replace("BUDGET", BUDGET)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- whole process: `routerllm plan` as a user runs it, cold vs cached ----------------------------
#
# `python -m routerllm.cli plan --model llama3_405b --hardware 2xA100-80GB --cpu-ram 200GB --quant nf4`
# (the command; batch auto, so it also searches batch x layers offloaded), each a fresh
# process, interleaved in one run:
# - cold: planning cache off (ROUTERLLM_PLANNING_CACHE=0): imports torch + transformers, builds the
#   meta model, plans;
# - walk: a fresh cache folder holding only the module walk (other options were planned before):
#   torch + accelerate, no transformers, the model rebuilt from the walk;
# - cached: the same command again: the whole plan from the cache, neither torch nor transformers.
# Every output must equal the cold one (the JSON plan, byte for byte). Goal: cached < 5 s.

CLI_ARGS = ["plan", "--model", "llama3_405b", "--hardware", "2xA100-80GB", "--cpu-ram", "200GB", "--quant", "nf4",
            "--json"]


def _cli(env_extra: dict, args: list[str] = CLI_ARGS) -> tuple[float, str]:
    import time

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **env_extra}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "routerllm.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return elapsed, proc.stdout


def whole_process(rounds: int) -> None:
    import shutil
    import tempfile

    times: dict[str, list[float]] = {"cold": [], "walk": [], "cached": []}
    outputs: dict[str, set[str]] = {k: set() for k in times}
    for _ in range(rounds):
        root = tempfile.mkdtemp(prefix="routerllm-bench-cache-")
        try:
            cache_env = {"ROUTERLLM_CACHE": root, "ROUTERLLM_PLANNING_CACHE": "1"}
            t, out = _cli({"ROUTERLLM_PLANNING_CACHE": "0"})
            times["cold"].append(t)
            outputs["cold"].add(out)
            # fill the walk with another setting, then drop every cached plan: only the walk is left
            _cli(cache_env, [a if a != "200GB" else "190GB" for a in CLI_ARGS])
            shutil.rmtree(os.path.join(root, "planning", "plan"), ignore_errors=True)
            t, out = _cli(cache_env)
            times["walk"].append(t)
            outputs["walk"].add(out)
            t, out = _cli(cache_env)
            times["cached"].append(t)
            outputs["cached"].add(out)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    same = all(o == outputs["cold"] for o in outputs.values()) and len(outputs["cold"]) == 1
    best = {k: min(v) for k, v in times.items()}
    print(f"whole process: routerllm {' '.join(CLI_ARGS[:-1])}; best of {rounds} interleaved rounds")
    print(f"{'':34}{'cold (no cache)':>18}{'walk cached':>14}{'plan cached':>14}")
    print(f"{'wall time (s)':34}{best['cold']:18.2f}{best['walk']:14.2f}{best['cached']:14.2f}")
    print(f"{'speedup over cold':34}{'1.00x':>18}{best['cold'] / best['walk']:13.2f}x{best['cold'] / best['cached']:13.2f}x")
    print(f"outputs identical to the uncached plan: {'yes' if same else 'NO'}")
    goal = "met" if best["cached"] < 5.0 else "NOT met"
    print(f"goal cached whole process < 5 s: {goal} ({best['cached']:.2f} s; walk-only {best['walk']:.2f} s); "
          f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"cold vs cached whole-process ratio: {best['cold'] / best['cached']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions (the minimum is reported)")
    parser.add_argument("--runs", type=int, default=2, help="fresh subprocesses per side (the best is reported)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved whole-process rounds (cold / walk / cached)")
    parser.add_argument("--whole-process-only", action="store_true", help="only the whole-process comparison")
    args = parser.parse_args()
    whole_process(args.rounds)
    if args.whole_process_only:
        return
    print()

    ours = min((_run(ROUTERLLM, args.repeat) for _ in range(args.runs)), key=lambda r: r["cold"])
    base = min((_run(ACCELERATE, args.repeat) for _ in range(args.runs)), key=lambda r: r["cold"])

    print("llama3_405b on 3xA100-80GB (+200 GB CPU), NF4, context 4096; best of", args.runs, "fresh processes")
    print(f"{'':34}{'routerllm plan()':>18}{'accelerate bare':>18}{'ratio':>8}")
    for key, label in (("cold", "cold, after imports (s)"), ("warm", "warm (s)")):
        print(f"{label:34}{ours[key]:18.3f}{base[key]:18.3f}{ours[key] / base[key]:8.2f}x")
    tot_o, tot_b = ours["imports"] + ours["cold"], base["imports"] + base["cold"]
    print(f"{'imports (s)':34}{ours['imports']:18.3f}{base['imports']:18.3f}")
    print(f"{'total incl. imports (s)':34}{tot_o:18.3f}{tot_b:18.3f}{tot_o / tot_b:8.2f}x")
    print(f"plan verdict: {ours['verdict']}, layers per device: {ours['layers']}; accelerate devices: {base['devices']}")
    goal = "met" if ours["cold"] < 2.0 else "NOT met"
    print(f"goal plan() cold < 2 s after imports: {goal} ({ours['cold']:.2f} s); "
          f"machine load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

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

    python bench/bench_planning.py [--repeat 5]
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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    src = code.replace("REPEAT", str(repeat)).replace("BUDGET", BUDGET)
    proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions (the minimum is reported)")
    parser.add_argument("--runs", type=int, default=2, help="fresh subprocesses per side (the best is reported)")
    args = parser.parse_args()

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

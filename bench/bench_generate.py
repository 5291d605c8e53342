"""Decode speed of the embedded CPU tiers against their memory-bandwidth bound, and what closes the gap.

For every local tier of the config (configs/local_config.yaml: Gemma 3 270M small, Qwen2.5-Coder-
1.5B-Instruct large), through LargeModelManager (the code path the demo and the server use):

1. This machine's memory read bandwidth, MEASURED: torch `sum` over a 1 GiB float32 tensor (reads
   every byte once), best of 5, with 1 thread and with torch's default thread count.
2. Decode bound of each variant = bandwidth / weight bytes read per generated token (every weight
   once, except the input embedding, of which a lookup reads one row; a head tied to the embedding
   reads all of it). Measured decode tokens/s = (new tokens - 1) / (wall time - time to first
   token), greedy, the tier's own prompt format (chat for Qwen) on HumanEval/0, --new-tokens tokens.
3. Variants, each measured interleaved with the reference (bf16, sdpa, default threads) in rounds
   (reference, variant, reference, variant, ...) so machine load hits both alike; the ratio is of
   the medians. Variants: bf16 on 1 thread; fp32; eager attention; int8_dynamic (the
   `cpu_quantization` setting: torch.ao dynamic int8 Linear) on default and 1 thread; torchao int8
   weight-only and int8 dynamic when torchao is installed; torch.compile with --compile.
4. Unchanged answers: for the reference and the variants named by --check (default: the tier as
   configured), greedy answers to the first --check-tasks HumanEval tasks with the tier's own
   max_new_tokens and stops: token agreement with the reference (common prefix / reference
   tokens, and how many answers are identical) and pass@1 by the hidden tests (the Judge).

    python bench/bench_generate.py [--tiers qwen2_5_coder_1_5b] [--rounds 3] [--new-tokens 32]
                                   [--variants bf16-1t,int8_dynamic] [--check int8_dynamic] [--check-tasks 4]

The 2 cores of a shared machine are noisy: read the ratios (measured side by side), not the
absolute figures; with other processes on the cores, torch's 2 OpenMP threads wait on each other
(bf16 Qwen measured 0.3 tok/s at 2 threads against 2.1 at 1 thread while other jobs ran).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
BANDWIDTH_BYTES = 1 << 30  # 1 GiB read per bandwidth measurement
SPEED_TASK = "HumanEval/0"


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields
    threads: int | None = None  # None: torch's default
    after_load: Callable[[Any], str] | None = None  # extra in-place change of the loaded model
    needs: str | None = None  # an importable module this variant needs


def _torchao_weight_only(model) -> str:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(model, Int8WeightOnlyConfig())
    return "torchao Int8WeightOnlyConfig"


def _torchao_dynamic(model) -> str:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return "torchao Int8DynamicActivationInt8WeightConfig"


def _eager(model) -> str:
    model.set_attn_implementation("eager")
    return "eager attention"


def _compile(model) -> str:
    import torch

    model.forward = torch.compile(model.forward, dynamic=True)
    return "torch.compile(model.forward, dynamic=True)"


REFERENCE = Variant("bf16", {"dtype": "bfloat16", "cpu_quantization": "none"})
VARIANTS = [
    Variant("bf16-1t", {"dtype": "bfloat16", "cpu_quantization": "none"}, threads=1),
    Variant("fp32", {"dtype": "float32", "cpu_quantization": "none"}),
    Variant("bf16-eager", {"dtype": "bfloat16", "cpu_quantization": "none"}, after_load=_eager),
    Variant("int8_dynamic", {"dtype": "bfloat16", "cpu_quantization": "int8_dynamic"}),
    Variant("int8_dynamic-1t", {"dtype": "bfloat16", "cpu_quantization": "int8_dynamic"}, threads=1),
    Variant("torchao-int8wo", {"dtype": "bfloat16", "cpu_quantization": "none"}, after_load=_torchao_weight_only,
            needs="torchao"),
    Variant("torchao-int8dyn", {"dtype": "float32", "cpu_quantization": "none"}, after_load=_torchao_dynamic,
            needs="torchao"),
]
COMPILE = Variant("bf16-compile", {"dtype": "bfloat16", "cpu_quantization": "none"}, after_load=_compile)


# --- machine -------------------------------------------------------------------------------------


def cpu_facts() -> str:
    import platform

    import torch

    flags: set[str] = set()
    name = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and name in ("", "cpu", "x86_64"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return (f"{name}; torch {torch.__version__}, kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {'yes (' + ', '.join(bf16) + ')' if bf16 else 'no'}, default threads {torch.get_num_threads()}")


def read_bandwidth(threads: int, repeats: int = 5) -> float:
    """Bytes/s of a torch sum over 1 GiB of float32 (each byte read once), best of `repeats`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = torch.ones(BANDWIDTH_BYTES // 4, dtype=torch.float32)
        data.sum()  # fault the pages in
        best = 0.0
        for _ in range(repeats):
            started = time.perf_counter()
            data.sum().item()
            best = max(best, BANDWIDTH_BYTES / (time.perf_counter() - started))
        return best
    finally:
        del data
        torch.set_num_threads(before)


def bytes_per_token(model) -> int:
    """Weight bytes one decode step reads: parameters, buffers and packed int8 weights, less the
    input embedding (a lookup reads one row) unless the output head is tied to it."""
    import torch

    def tensor_bytes(t) -> int:
        if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "__tensor_flatten__"):
            inner, _ = t.__tensor_flatten__()  # a quantized tensor subclass (torchao): its real storage
            return sum(tensor_bytes(getattr(t, name)) for name in inner)
        return t.numel() * t.element_size()

    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen and t.device.type != "meta":
            seen.add(id(t))
            total += tensor_bytes(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        except ImportError:  # pragma: no cover
            DynamicLinear = ()
    for module in model.modules():
        if DynamicLinear and isinstance(module, DynamicLinear):
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size() + weight.q_per_channel_scales().numel() * 8
            total += 0 if bias is None else bias.numel() * bias.element_size()
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and getattr(head, "weight", None) is embedding
    if not tied:
        total -= embedding.numel() * embedding.element_size()
    return total


# --- one tier ------------------------------------------------------------------------------------


class Built:
    """A loaded variant: its manager, bound and label."""

    def __init__(self, tier, variant: Variant) -> None:
        from routerllm.manager import LargeModelManager

        config = tier.model_copy(update=variant.overrides)
        self.variant = variant
        started = time.perf_counter()
        self.manager = LargeModelManager(config)
        self.manager.load(progress=False)
        self.note = variant.after_load(self.manager.model) if variant.after_load else ""
        self.load_s = time.perf_counter() - started
        self.bytes = bytes_per_token(self.manager.model)

    def generate(self, requests, threads: int | None):
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            return self.manager.generate(requests)
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        self.manager.unload()
        gc.collect()


def _decode_speed(gen) -> float:
    decode_s = gen.total_s - (gen.ttft_s or 0.0)
    return (gen.completion_tokens - 1) / decode_s if decode_s > 0 and gen.completion_tokens > 1 else 0.0


def _speed_request(tier, new_tokens: int):
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.prompting import build_request

    (task,) = load_tasks(task_ids=[SPEED_TASK])
    request = build_request(task, tier)
    request.max_new_tokens, request.stop = new_tokens, []
    return request


def _check(built: Built, tasks, tier, judge, threads) -> dict[str, Any]:
    """Greedy answers with the tier's own limits and stops; token ids (re-encoded) and verdicts."""
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.prompting import build_request, mode_for, postprocess

    mode = mode_for(tier)
    requests = [build_request(t, tier) for t in tasks]
    gens = [built.generate([r], threads)[0] for r in requests]
    tokenizer = built.manager.tokenizer
    ids = [tokenizer(g.text, add_special_tokens=False)["input_ids"] for g in gens]
    programs = [build(t, postprocess(t, g.text, mode, r.stop), mode) for t, g, r in zip(tasks, gens, requests)]
    verdicts = judge.judge_many(programs)
    return {"ids": ids, "passed": [v.passed for v in verdicts], "texts": [g.text for g in gens]}


def _agreement(ref_ids: list[list[int]], ids: list[list[int]]) -> tuple[float, int]:
    """(tokens before the first difference / reference tokens, over all answers; identical answers)."""
    common = total = same = 0
    for a, b in zip(ref_ids, ids):
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        common += k
        total += len(a)
        same += a == b
    return (common / total if total else 1.0), same


def bench_tier(tier, variants: list[Variant], args, bandwidth: dict[int, float], default_threads: int) -> None:
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.judge import Judge

    request = _speed_request(tier, args.new_tokens)
    configured = Variant("configured", {})
    print(f"\n== tier {tier.name} ({tier.model_id}; configured: dtype {tier.dtype}, cpu_quantization "
          f"{tier.cpu_quantization}, {'chat' if tier.chat else 'continuation'}): {SPEED_TASK}, "
          f"{args.new_tokens} new tokens, greedy, {args.rounds} interleaved rounds per variant", flush=True)
    reference = Built(tier, REFERENCE)
    rows: list[tuple[str, Built, float, float, float | None]] = []  # name, built, median tok/s, ref median, ratio
    tasks = load_tasks(num_examples=args.check_tasks) if args.check_tasks else []
    checks: dict[str, dict[str, Any]] = {}
    judge = Judge(timeout_s=10, workers=1) if tasks else None
    try:
        reference.generate([request], None)  # warm-up
        ref_speeds_all: list[float] = []
        for variant in [configured, *variants]:
            same_as_ref = variant is configured and tier.dtype == "bfloat16" and tier.cpu_quantization == "none"
            if same_as_ref:
                continue
            built = Built(tier, variant)
            built.generate([request], variant.threads)  # warm-up (and compilation)
            ref_speeds, speeds = [], []
            for _ in range(args.rounds):
                ref_speeds.append(_decode_speed(reference.generate([request], None)[0]))
                speeds.append(_decode_speed(built.generate([request], variant.threads)[0]))
            ref_speeds_all += ref_speeds
            med, ref_med = statistics.median(speeds), statistics.median(ref_speeds)
            label = variant.name if variant is not configured else f"configured ({tier.cpu_quantization}, {tier.dtype})"
            rows.append((label, built, med, ref_med, med / ref_med if ref_med else None))
            print(f"  measured {label}: {med:.2f} tok/s vs reference {ref_med:.2f} (load {built.load_s:.0f} s)",
                  flush=True)
            if tasks and (variant.name in args.check or (variant is configured and "configured" in args.check)):
                checks[label] = _check(built, tasks, tier, judge, variant.threads)
            built.close()
        if tasks:
            checks["bf16 (reference)"] = _check(reference, tasks, tier, judge, None)
        ref_med = statistics.median(ref_speeds_all) if ref_speeds_all else 0.0
        print(f"\n  {'variant':28s} {'MB/token':>9s} {'bound':>8s} {'tok/s':>7s} {'of bound':>8s} {'vs bf16':>8s}")
        rows.insert(0, ("bf16 (reference)", reference, ref_med, ref_med, 1.0))
        for label, built, med, _, ratio in rows:
            threads = built.variant.threads or default_threads
            bound = bandwidth[threads] / built.bytes
            print(f"  {label + (f' [{threads}t]'):28s} {built.bytes / 1e6:9.0f} {bound:8.1f} {med:7.2f} "
                  f"{med / bound:8.0%} {ratio:8.2f}x")
        if checks:
            ref = checks["bf16 (reference)"]
            print(f"\n  unchanged answers on {len(tasks)} tasks ({tasks[0].task_id}..{tasks[-1].task_id}), "
                  f"greedy, max_new_tokens {tier.max_new_tokens}:")
            print(f"  {'variant':28s} {'token agreement':>16s} {'identical':>10s} {'pass@1':>7s}")
            for label, result in checks.items():
                agree, same = _agreement(ref["ids"], result["ids"])
                print(f"  {label:28s} {agree:16.1%} {same:>6d}/{len(tasks):<3d} "
                      f"{sum(result['passed']) / len(tasks):7.2f}")
            if args.dump:
                import json

                dump = Path(args.dump)
                old = json.loads(dump.read_text()) if dump.is_file() else {}
                old[tier.name] = {label: {"task_ids": [t.task_id for t in tasks], "passed": r["passed"], "texts": r["texts"]}
                                  for label, r in checks.items()}
                dump.write_text(json.dumps(old, indent=1))
    finally:
        reference.close()
        if judge is not None:
            judge.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "local_config.yaml"))
    parser.add_argument("--tiers", default="", help="comma-separated tier names (default: every local tier)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--variants", default="", help="comma-separated subset of: "
                        + ", ".join(v.name for v in [*VARIANTS, COMPILE]) + " (default: all but compile)")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant (minutes to compile)")
    parser.add_argument("--check", default="configured", help="variants whose answers are checked (comma-separated)")
    parser.add_argument("--check-tasks", type=int, default=4, help="first N HumanEval tasks for the answer check (0: none)")
    parser.add_argument("--dump", default="", help="write every checked answer to this JSON file")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of the reference and of every variant without its own (0: torch's default)")
    args = parser.parse_args()
    args.check = set(filter(None, args.check.split(",")))

    import importlib.util

    import torch

    from routerllm.config import load_config

    config = load_config(args.config)
    tiers = [t for t in [*config.models.small_llms, config.models.large_llm] if t.backend == "local"]
    if args.tiers:
        wanted = set(args.tiers.split(","))
        tiers = [t for t in tiers if t.name in wanted]
    pool = [*VARIANTS, COMPILE]
    names = set(filter(None, args.variants.split(","))) or {v.name for v in VARIANTS} | ({COMPILE.name} if args.compile else set())
    variants = []
    for v in pool:
        if v.name not in names:
            continue
        if v.needs and importlib.util.find_spec(v.needs) is None:
            print(f"(skipping {v.name}: needs {v.needs}, not installed: pip install {v.needs})")
            continue
        variants.append(v)
    if args.threads:
        torch.set_num_threads(args.threads)
    default_threads = torch.get_num_threads()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars, one per load
    print("machine:", cpu_facts())
    bandwidth = {t: read_bandwidth(t) for t in sorted({1, default_threads})}
    print("memory read bandwidth (torch sum over 1 GiB float32, best of 5): "
          + ", ".join(f"{t} thread{'s' if t > 1 else ''} {b / 1e9:.1f} GB/s" for t, b in bandwidth.items()), flush=True)
    for tier in tiers:
        bench_tier(tier, variants, args, bandwidth, default_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())

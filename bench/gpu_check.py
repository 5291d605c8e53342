"""GPU checks of the loading paths CI cannot run (CI has no GPU): run by bench/gpu_check.sh.

On one CUDA GPU, through LargeModelManager (the code path of benchmark, compare and serve):

1. a 4-bit NF4 load entirely on GPU 0, and one whose `max_memory` holds about half the layers on
   GPU 0 and CPU-offloads the rest (bitsandbytes keeps offloaded modules unquantized);
2. for each: planned against measured memory: the plan's weights and total for GPU 0 next to
   `torch.cuda.memory_allocated` after the load, `torch.cuda.max_memory_allocated` over generation,
   and NVML's used memory (the CUDA context and allocator cache on top);
3. aggregate tokens/s at batch 1 and 16 (greedy, --new-tokens tokens, HumanEval prompts) against the
   planner's ceiling (planning.speed.predict_tokens_per_s).

The model: the embedded large tier (Qwen2.5-Coder-1.5B-Instruct, from its PyPI parts) when those
parts are installed, else --model-id, else a random-weight Llama of ~1.1B parameters written here
(the memory and speed checks need a real size, not its answers).

    python bench/gpu_check.py [--model-id DIR] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
MiB = 2**20


def random_llama(directory: Path) -> Path:
    """A ~1.1B-parameter Llama with random bf16 weights and the tests' real BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from conftest import build_tiny_tokenizer  # the tests' tokenizer (trained here, no hub)

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def base_tier(model_id: str | None, work: Path):
    from routerllm.config import ModelConfig, load_config

    config = load_config(ROOT / "configs" / "local_config.yaml")
    large = config.models.large_llm
    if model_id is None:
        try:
            from routerllm.split_source import _locate_parts, builtin_sources

            name = large.model_id.removeprefix("pypi://")
            _locate_parts(name, builtin_sources()[name])  # raises when the PyPI parts are not installed
            return large.model_copy(update={"cpu_quantization": "none", "dtype": "bfloat16"})
        except Exception as exc:  # noqa: BLE001 - any reason the parts are not here
            print(f"embedded large tier unavailable here ({type(exc).__name__}: {exc}); using a random 1.1B Llama")
            model_id = str(random_llama(work / "random-llama-1b"))
    return ModelConfig(name="gpu-check", model_id=model_id, dtype="bfloat16", context_length=1024, max_new_tokens=64)


def nvml_used() -> int | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used)
    except Exception:  # noqa: BLE001
        return None


def check(label: str, tier, new_tokens: int) -> None:
    import torch

    from routerllm.backends.base import GenerationRequest
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.manager import LargeModelManager
    from routerllm.planning import speed

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    manager = LargeModelManager(tier)
    plan = manager.plan()
    started = time.perf_counter()
    info = manager.load(progress=False)
    load_s = time.perf_counter() - started
    places = sorted({str(v) for v in info.device_map.values()})
    gpu = plan.device(0)
    after_load = torch.cuda.memory_allocated(0)
    print(f"\n== {label}: {tier.model_id} (verdict {plan.verdict}; placed on {places}; load {load_s:.1f} s, "
          f"planned load floor {plan.predicted_load_time_s:.1f} s)")
    print(f"   GPU 0 planned: weights {gpu.weight_bytes / MiB:.0f} MiB, total {gpu.total_bytes / MiB:.0f} MiB "
          f"(kv {gpu.kv_bytes / MiB:.0f}, activations {gpu.activation_bytes / MiB:.0f}, overhead {gpu.overhead_bytes / MiB:.0f})")
    print(f"   GPU 0 measured after load: memory_allocated {after_load / MiB:.0f} MiB "
          f"({after_load / max(gpu.weight_bytes, 1):.2f}x planned weights)")
    prompts = [t.prompt for t in load_tasks(16)]
    for batch in (1, 16):
        requests = [GenerationRequest(prompt=p, max_new_tokens=new_tokens, stop=[]) for p in prompts[:batch]]
        manager.generate(requests[:1])  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        started = time.perf_counter()
        gens = manager.generate(requests)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        tokens = sum(g.completion_tokens for g in gens)
        padded = max(g.prompt_tokens for g in gens)
        ceiling = speed.predict_tokens_per_s(plan, batch, prompt_tokens=padded, new_tokens=new_tokens)
        print(f"   batch {batch:>2}: {tokens / seconds:8.1f} tok/s measured, ceiling {ceiling:8.1f} "
              f"({tokens / seconds / ceiling:.2f} of it)")
    peak = torch.cuda.max_memory_allocated(0)
    used = nvml_used()
    print(f"   GPU 0 peak max_memory_allocated {peak / MiB:.0f} MiB vs planned total {gpu.total_bytes / MiB:.0f} MiB "
          f"({'within' if peak <= gpu.total_bytes else 'OVER'} the plan); NVML used "
          f"{'n/a' if used is None else f'{used / MiB:.0f} MiB'}")
    manager.unload()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-id", default=None)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible to torch; run it on a machine with a GPU")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    from routerllm.units import parse_size

    with tempfile.TemporaryDirectory() as tmp:
        tier = base_tier(args.model_id, Path(tmp))
        whole = tier.model_copy(update={"use_4bit": True, "max_memory": {0: parse_size("40GB"), "cpu": parse_size("16GB")},
                                        "batch_size": 16})
        check("4-bit NF4, all on GPU 0", whole, args.new_tokens)
        from routerllm.manager import LargeModelManager

        probe = LargeModelManager(whole).plan().device(0)
        half = probe.overhead_bytes + probe.kv_bytes + probe.activation_bytes + probe.weight_bytes // 2
        offload = tier.model_copy(update={"use_4bit": True, "max_memory": {0: half, "cpu": parse_size("16GB")},
                                          "batch_size": 16})
        check("4-bit NF4, about half the layers CPU-offloaded", offload, args.new_tokens)


if __name__ == "__main__":
    main()

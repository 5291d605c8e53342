"""Does batching help the int8_dynamic CPU tier, and does it change its answers?

`cpu_quantization: int8_dynamic` (routerllm.cpu_quant) quantizes each Linear's INPUT on the fly with
one scale per input tensor: rows decoded together share that scale, so a row's answer may depend
on which other rows share its batch. This bench measures both sides on a real tier, through
LargeModelManager, greedy, the tier's own prompt format and stops, interleaved in rounds (batch 1,
batch B, batch 1, ...) so machine load hits both alike:

1. aggregate tokens/s (generated tokens / wall time of the generate calls) at batch 1 and batch B,
   and their ratio (medians over rounds);
2. token agreement: how many of the answers at batch B are identical, token for token, to the same
   task's answer at batch 1, and the same figure for the tier WITHOUT int8_dynamic (fp32), where left
   padding alone is the only difference.

    python bench/bench_int8_batch.py [--tier gemma3_270m] [--tasks 8] [--batch 4] [--rounds 2] [--new-tokens 48]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _answers(manager, requests, batch: int) -> tuple[list[list[int]], float, int]:
    manager._batch_size = batch  # the bench sets the batch the way batch_size: <int> would
    started = time.perf_counter()
    gens = manager.generate(requests)
    wall = time.perf_counter() - started
    tokens = [manager.tokenizer(g.text, add_special_tokens=False)["input_ids"] for g in gens]
    return tokens, wall, sum(g.completion_tokens for g in gens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "local_config.yaml"))
    parser.add_argument("--tier", default="gemma3_270m")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()

    from routerllm.config import load_config
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.prompting import build_request
    from routerllm.manager import LargeModelManager

    cfg = load_config(args.config)
    base = cfg.models.tier(args.tier)
    tasks = load_tasks(args.tasks)
    results = {}
    for label, quant, dtype in (("int8_dynamic", "int8_dynamic", base.dtype), ("fp32", "none", "float32")):
        model = base.model_copy(update={"cpu_quantization": quant, "dtype": dtype, "max_new_tokens": args.new_tokens,
                                        "use_4bit": False, "use_8bit": False})
        manager = LargeModelManager(model)
        manager.load()
        requests = [build_request(t, model, sample=0, temperature=0.0, seed=0) for t in tasks]
        for r in requests:
            r.max_new_tokens = args.new_tokens
        _answers(manager, requests[:1], 1)  # warm-up
        speeds: dict[int, list[float]] = {1: [], args.batch: []}
        answers: dict[int, list[list[int]]] = {}
        for _ in range(args.rounds):
            for b in (1, args.batch):
                toks, wall, n = _answers(manager, requests, b)
                speeds[b].append(n / wall)
                answers[b] = toks
        same = sum(a == b for a, b in zip(answers[1], answers[args.batch]))
        s1, sb = statistics.median(speeds[1]), statistics.median(speeds[args.batch])
        results[label] = (s1, sb, same)
        print(f"{label}: batch 1 {s1:.2f} tok/s, batch {args.batch} {sb:.2f} tok/s, ratio {sb / s1:.2f}x; "
              f"answers identical to batch 1: {same}/{len(tasks)}", flush=True)
        manager.unload()
    s1, sb, same = results["int8_dynamic"]
    print(f"int8_dynamic batch {args.batch} vs 1: {sb / s1:.2f}x tokens/s, {same}/{args.tasks} answers identical "
          f"(fp32: {results['fp32'][2]}/{args.tasks})")


if __name__ == "__main__":
    sys.exit(main())

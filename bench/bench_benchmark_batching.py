"""The benchmark command end to end with cross-task batches against one task at a time.

Runs `runner.run_benchmark` on the same tier and tasks twice in one process, `batch_size: 1` then
the tier's own batch size (auto: the planner's choice), generate only (--skip-execution, so the
ratio is the generation's), and prints for each: wall time of the generation (sum of the batches'
generate calls), tasks/hour, mean queue wait and mean answer time, then the wall-time ratio and how
many completions match the batch-1 run token for token (greedy; the tier's dtype: left padding can
shift bf16 numerics, fp32 is pinned by tests/test_batch_invariance.py).

    python bench/bench_benchmark_batching.py [--tier gemma3_270m] [--tasks 8] [--dtype float32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "local_config.yaml"))
    parser.add_argument("--tier", default="gemma3_270m")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--dtype", default=None, help="override the tier's dtype (e.g. float32)")
    args = parser.parse_args()

    from routerllm.config import load_config
    from routerllm.runner import BenchmarkOptions, run_benchmark

    cfg = load_config(args.config)
    base = cfg.models.tier(args.tier)
    if args.dtype:
        base = base.model_copy(update={"dtype": args.dtype})
    cfg.benchmark.track_co2 = False
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("batch 1", 1), (f"batch {base.batch_size}", base.batch_size)):
            model = base.model_copy(update={"batch_size": size})
            run = run_benchmark(BenchmarkOptions(config=cfg, model=model, num_examples=args.tasks, skip_execution=True,
                                                 results_dir=Path(tmp), run_name=label.replace(" ", ""), progress=False))
            s = run.summary
            out[label] = (s, [r["samples"][0]["completion"] for r in run.records])
            print(f"{label} (resolved {s['sessions'][-1]['batch_size']}): generation {s['batch_clock_s']:.1f} s, "
                  f"{s['tasks_per_hour']:.0f} tasks/hour, queue wait mean {s['queue_wait_s']['mean']:.1f} s, "
                  f"answer mean {s['latency_s']['mean']:.1f} s, {s['batches']} batches", flush=True)
    (s1, c1), (sb, cb) = out.values()
    same = sum(a == b for a, b in zip(c1, cb))
    print(f"completions identical to batch 1: {same}/{len(c1)} ({base.dtype})")
    print(f"benchmark generation wall time, batch 1 / batched: {s1['batch_clock_s'] / sb['batch_clock_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())

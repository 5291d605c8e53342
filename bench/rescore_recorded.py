#!/usr/bin/env python3
"""Re-score the recorded generations (data/humaneval-generations/*.jsonl) and compare verdicts
(issue 9.8): evalplus's recorded `passed` (base HumanEval tests, run in the judged process) against
`evaluation.judge.Judge` (trusted checker + jail). Prints per file the agreement and every
task/sample where they differ, with the Judge's reason.

Usage: HF_HUB_OFFLINE=1 python bench/rescore_recorded.py [--files gpt-4-0613,...] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "humaneval-generations"


def main() -> None:
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.judge import Judge
    from routerllm.evaluation.programs import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default=",".join(sorted(p.stem for p in DATA.glob("*.jsonl"))))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tasks = {t.task_id: t for t in load_tasks()}
    rows_total = agree_total = 0
    with Judge(workers=args.workers, timeout_s=10) as judge:
        print(f"judge: {judge.isolation}")
        for name in args.files.split(","):
            rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text().splitlines()]
            programs = [build(tasks[r["task_id"]], r["completion"], "program") for r in rows]
            start = time.perf_counter()
            verdicts = judge.judge_many(programs)
            took = time.perf_counter() - start
            agree = sum(bool(r["passed"]) == v.passed for r, v in zip(rows, verdicts))
            rows_total += len(rows)
            agree_total += agree
            print(f"{name}: {len(rows)} programs, judge {took:.1f} s; judge vs evalplus agree {agree}/{len(rows)}")
            for r, v in zip(rows, verdicts):
                if bool(r["passed"]) != v.passed:
                    print(f"  {r['task_id']} sample {r['sample']}: evalplus {'passed' if r['passed'] else 'failed'}, "
                          f"judge {v.status} ({v.reason})")
    print(f"TOTAL judge=evalplus {agree_total}/{rows_total}")


if __name__ == "__main__":
    main()

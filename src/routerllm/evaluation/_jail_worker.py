"""The jailed worker: runs ONE program (module "solution") and answers calls on it.

Started by jail.py inside bubblewrap (or as a plain subprocess in unsafe mode) as
`python -I -S _jail_worker.py`, with wire.py beside it. Protocol on fd 0 (requests) and fd 1
(replies), moved to private fds at start; fds 0/1/2 then point at /dev/null so nothing the program
prints reaches the reply channel. Frame: 8-byte big-endian length + wire.encode(message).
Requests: {"id": str, "op": "load", "source": str} / {"id", "op": "call", "name", "args", "kwargs",
"timeout_s": float|None} (an interval timer bounds the call: error "timeout: ...") /
{"id", "op": "callable", "name"} (value: does the program define a callable of that name).
Replies: {"id": str, "ok": bool, "value": ..., "error": str|None}. Exits on EOF of requests.
Everything here is untrusted once the program runs: the trusted side checks ids and sizes.
"""

import os
import signal
import struct
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

# Never outlive the owner: bwrap --die-with-parent sets PDEATHSIG, but setpriv's uid change (root
# mode) clears it (prctl(2): credentials change), so set it again here (PR_SET_PDEATHSIG=1, SIGKILL).
try:
    import ctypes

    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
except Exception:  # noqa: BLE001  (no ctypes: the EOF exit below still applies)
    pass

REQ = os.dup(0)
REP = os.dup(1)
_null = os.open("/dev/null", os.O_RDWR)
for _fd in (0, 1, 2):
    os.dup2(_null, _fd)
os.close(_null)


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(REQ, n - len(buf))
        if not chunk:
            os._exit(0)  # owner gone (EOF): never outlive it
        buf += chunk
    return buf


def _send(msg):
    try:
        data = wire.encode(msg)
    except wire.WireError as exc:
        data = wire.encode({"id": msg["id"], "ok": False, "value": None, "error": str(exc)})
    data = struct.pack(">Q", len(data)) + data
    view = memoryview(data)
    while view:
        view = view[os.write(REP, view):]


def _describe(exc):
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class _CallTimeout(BaseException):
    pass


def _alarm(*_):
    raise _CallTimeout()


def main():
    module = None
    while True:
        (size,) = struct.unpack(">Q", _read_exact(8))
        req = wire.decode(_read_exact(size))
        rid = req["id"]
        try:
            if req["op"] == "load":
                module = types.ModuleType("solution")
                module.__file__ = "solution.py"
                sys.modules["solution"] = module
                exec(compile(req["source"], "solution.py", "exec"), module.__dict__)
                value = None
            elif req["op"] == "callable":
                value = module is not None and callable(getattr(module, req["name"], None))
            else:
                if module is None:
                    raise RuntimeError("no program loaded")
                fn = getattr(module, req["name"])
                limit = req.get("timeout_s")
                if limit:
                    signal.signal(signal.SIGALRM, _alarm)
                    signal.setitimer(signal.ITIMER_REAL, limit)
                try:
                    value = fn(*req["args"], **req["kwargs"])
                finally:
                    if limit:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            try:
                wire.encode(value)
            except wire.WireError as exc:
                msg = str(exc)
                if not msg.startswith("not plain data"):
                    msg = f"not plain data: {msg}"
                _send({"id": rid, "ok": False, "value": None, "error": msg})
                continue
            _send({"id": rid, "ok": True, "value": value, "error": None})
        except _CallTimeout:
            _send({"id": rid, "ok": False, "value": None, "error": "timeout: the call ran past its limit"})
        except BaseException as exc:  # noqa: BLE001  (SystemExit, KeyboardInterrupt too)
            try:
                err = _describe(exc)
            except BaseException:  # noqa: BLE001  (a hostile __str__)
                err = type(exc).__name__ if isinstance(type(exc).__name__, str) else "error"
            _send({"id": rid, "ok": False, "value": None, "error": err})


main()

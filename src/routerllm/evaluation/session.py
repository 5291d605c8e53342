"""One jail session's channel and protocol, the trusted side (used by jail.py and, in its own
process, by the Judge's checker: this module stays light to import, stdlib + wire.py only).

    session = JailSession(channel, source, timeout_s)     # channel: requests in, replies out
    session.load                                          # CallResult of loading the program
    session.call("add", (1, 2), timeout_s=1.0)            # CallResult(ok=True, value=3)

Frames are length-prefixed wire.py data; every request carries a random id and a reply with
another id, a malformed frame, one over MAX_REPLY_BYTES, more than MAX_SESSION_BYTES in a session,
or a dead program ends THAT session with an error result (and kills its program). Nothing the
jailed program writes can make this side raise. `call(..., timeout_s=t)` bounds one call: the
worker arms an interval timer (a timed-out call is an error `timeout: ...` and the session goes
on), and this side stops waiting t + CALL_GRACE_S later whatever the program did to its timer (the
session then ends, `ended` says why).
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
from collections import namedtuple

from routerllm.evaluation import wire

MAX_REPLY_BYTES = wire.MAX_BYTES  # one reply frame, bytes
MAX_SESSION_BYTES = 64 * 1024 * 1024  # all replies of one session, bytes
CALL_GRACE_S = 0.5  # beyond a call's own limit, s, before this side stops waiting (the worker's timer failed)

# ok: the call returned plain data `value` (decoded here); else `error` says what happened
CallResult = namedtuple("CallResult", ["ok", "value", "error"], defaults=(None, None))


class FdChannel:
    """A session's channel as two fds: requests (wfd), replies (rfd). What the Judge's checker
    process gets for a session opened by its owner (JailSession.attached)."""

    def __init__(self, wfd: int, rfd: int) -> None:
        self.wfd, self.rfd = wfd, rfd
        self.received = 0
        self._closed = False

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.wfd, view):]

    def death(self) -> str:
        return "jail died (reply channel closed)"

    def close_fds(self) -> bool:
        if self._closed:
            return False
        self._closed = True
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        return True

    def kill(self) -> None:
        self.close_fds()


class JailSession:
    """One program in one fresh worker. Use as a context manager; close() kills everything."""

    def __init__(self, worker, source: str | None, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        self._w = worker
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        self._dead: str | None = None
        self._call_deadline: float | None = None
        self._buf = bytearray()  # reply bytes read ahead
        self._lock = threading.Lock()
        self.load: CallResult = CallResult(True) if source is None else self.start(source)

    def start(self, source: str) -> CallResult:
        """Load the program (once, first): what `Jail.session(source)` does; a session opened with
        source=None is loaded by whoever it is handed to (the Judge's checker)."""
        self.load = self._request({"op": "load", "source": source})
        return self.load

    @classmethod
    def attached(cls, channel: FdChannel, timeout_s: float) -> "JailSession":
        """A session over a program another process loaded (the Judge's checker: module judge.py)."""
        return cls(channel, None, timeout_s)

    @property
    def fds(self) -> tuple[int, int]:
        """(requests, replies): to hand the session to a checker process (send_fds)."""
        return self._w.wfd, self._w.rfd

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    @property
    def ended(self) -> str | None:
        """Why this side ended the session (timeout, death, limit, malformed reply), else None."""
        return self._dead

    def call(self, name: str, args: tuple = (), kwargs: dict | None = None, *,
             timeout_s: float | None = None) -> CallResult:
        """Call `name(*args, **kwargs)` in the jail; `timeout_s` bounds this call (module docstring)."""
        if not self.load.ok:
            return CallResult(False, error=f"program did not load: {self.load.error}")
        try:
            msg = {"op": "call", "name": str(name), "args": tuple(args), "kwargs": dict(kwargs or {}),
                   "timeout_s": None if timeout_s is None else float(timeout_s)}
        except TypeError as exc:
            return CallResult(False, error=f"arguments are not plain data: {exc}")
        return self._request(msg, None if timeout_s is None else float(timeout_s) + CALL_GRACE_S)

    def defines(self, name: str) -> bool:
        """Does the loaded program define a callable `name`? (the program's own answer: untrusted,
        used only to word a failure)"""
        if not self.load.ok:
            return False
        result = self._request({"op": "callable", "name": str(name)})
        return result.ok and result.value is True

    def _end(self, error: str) -> CallResult:
        self._dead = error
        self._w.kill()
        return CallResult(False, error=error)

    def _request(self, msg: dict, wait_s: float | None = None) -> CallResult:
        with self._lock:
            if self._dead:
                return CallResult(False, error=self._dead)
            self._call_deadline = None if wait_s is None else time.monotonic() + wait_s
            rid = os.urandom(8).hex()
            try:
                frame = wire.encode({"id": rid, **msg})
            except wire.WireError as exc:  # the caller's arguments (nothing was sent)
                return CallResult(False, error=f"arguments are not plain data: {exc}")
            try:
                self._w.send(struct.pack(">Q", len(frame)) + frame)
            except (BrokenPipeError, OSError, ValueError):
                return self._end(self._w.death())
            header = self._read(8)
            if isinstance(header, CallResult):
                return header
            (size,) = struct.unpack(">Q", header)
            if size > MAX_REPLY_BYTES or self._w.received + size > MAX_SESSION_BYTES:
                return self._end("output limit")
            body = self._read(size)
            if isinstance(body, CallResult):
                return body
            try:
                reply = wire.decode(body)
            except wire.WireError as exc:
                return self._end(f"malformed reply ({exc})")
            if (type(reply) is not dict or reply.get("id") != rid or type(reply.get("ok")) is not bool
                    or not (reply.get("error") is None or type(reply.get("error")) is str)):
                return self._end("malformed reply (wrong id or shape)")
            if reply["ok"]:
                return CallResult(True, value=reply.get("value"))
            return CallResult(False, error=reply["error"][:500] or "error")

    def _read(self, n: int) -> bytes | CallResult:
        """n bytes of the reply stream (read ahead in chunks: a header and its body in one read)."""
        fd = self._w.rfd
        while len(self._buf) < n:
            now = time.monotonic()
            remaining = self._deadline - now
            if remaining <= 0:
                return self._end(f"timeout after {self.timeout_s:g} s")
            if self._call_deadline is not None:
                if self._call_deadline <= now:
                    return self._end("timeout: the call ran past its limit")
                remaining = min(remaining, self._call_deadline - now)
            try:
                ready, _, _ = select.select([fd], [], [], remaining)
            except (OSError, ValueError):
                return self._end(self._w.death())
            if not ready:
                continue
            try:
                chunk = os.read(fd, min(max(n - len(self._buf), 65536), 1 << 20))
            except OSError:
                chunk = b""
            if not chunk:
                return self._end(self._w.death())
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._w.received += n
        return out

    def close(self) -> None:
        with self._lock:
            if not self._dead:
                self._dead = "session closed"
            self._w.kill()

    def __enter__(self) -> "JailSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Run untrusted generated code with the hidden tests, and say what happened.

    with Sandbox(timeout_s=10, workers=2) as sb:
        verdicts = sb.run_many(programs)          # list[Verdict], in order
        print(sb.run("assert 1 + 1 == 2"))        # "passed"

How (see _sandbox_worker.py for the per-program details):

* `workers` pre-started worker processes, each `python3 -I _sandbox_worker.py` under util-linux
  `unshare --pid --fork --kill-child --mount --mount-proc --net` (as root) or the same with
  `--map-root-user` (user namespaces) — detected once per process. Each worker is PID 1 of its own
  PID namespace, so when it dies every process in it dies; it sees its own /proc only; its network
  namespace has no route out (not even loopback: lo is down); its /tmp is a private tmpfs.
* Per program, the worker forks a fresh child (the worker is a fresh interpreter with an empty
  environment, never a fork of the runner), which gets its own session, a private temporary
  working directory (removed afterwards), stdin on /dev/null, capped stdout/stderr pipes, a minimal
  environment, rlimits (RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, no core)
  and, when the runner is root, an unprivileged uid of its own (so RLIMIT_NPROC counts only its
  processes and root's files are read-only to it). After the program every other process in the
  namespace is SIGKILLed and reaped: no grandchild survives.
* Without `unshare` (or where namespaces are forbidden) `Sandbox()` refuses (SandboxError with the
  fix) unless `unsafe_no_sandbox=True` (config `benchmark.unsafe_no_sandbox`): then it falls back to
  setsid + killpg + a child subreaper that kills every descendant; that mode has NO network
  isolation and a shared /tmp, which `Sandbox.isolation` and every Verdict's `isolation` say
  ("UNSAFE ..."), and a warning is logged.

This is defence against runaway and careless code, not a security boundary against code written
to escape it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from routerllm.exceptions import SandboxError

if TYPE_CHECKING:
    from routerllm.config import BenchmarkSection

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "timed out", "resource limit"]
WORKER_FILE = Path(__file__).with_name("_sandbox_worker.py")
WORKER_START_TIMEOUT_S = 30.0  # a worker answers "ready" in ~0.1-0.3 s; generous for loaded CI
REPLY_GRACE_S = 10.0  # beyond the program's timeout, how long to wait for the worker's reply
# Sandbox uids: a random block far above any real account, one uid per worker, so RLIMIT_NPROC
# counts only that worker's programs (several sandboxes on one machine do not share a count).
_UID_BASE_RANGE = (2_000_000, 3_000_000_000)
_UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--net"]


@dataclass
class Verdict:
    status: Status
    detail: str = ""  # exception ("AssertionError: ...") or which limit
    duration_s: float = 0.0
    stdout: str = ""  # first CAPTURE_BYTES of each stream
    stderr: str = ""
    isolation: str = field(default="", repr=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        if self.status in ("passed", "timed out"):
            return self.status
        return f"{self.status}: {self.detail}" if self.detail else self.status

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        return cls(**{k: data[k] for k in ("status", "detail", "duration_s", "stdout", "stderr", "isolation") if k in data})


@functools.lru_cache(maxsize=1)
def isolation_mode() -> str:
    """'root-ns', 'user-ns' or 'none'; probed once per process."""
    if sys.platform != "linux":
        return "none"
    unshare = shutil.which("unshare")
    if unshare is None:
        log.warning("util-linux `unshare` not found: sandbox falls back to setsid+killpg, NO network isolation")
        return "none"
    candidates = (["root-ns", []], ["user-ns", ["--map-root-user"]]) if os.geteuid() == 0 else (["user-ns", ["--map-root-user"]],)
    for mode, extra in candidates:
        try:
            proc = subprocess.run([unshare, *extra, *_UNSHARE_FLAGS, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return mode
        log.debug("unshare %s failed: %s", mode, proc.stderr.decode(errors="replace").strip())
    log.warning(
        "namespaces unavailable (unshare failed): sandbox falls back to setsid+killpg and has NO network "
        "isolation. Fix: run as root, or enable user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    )
    return "none"


class _Worker:
    """One pre-started isolated worker process; one program at a time."""

    def __init__(self, settings: dict, mode: str) -> None:
        self.settings = settings
        self.mode = mode
        self._log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-I", str(WORKER_FILE), json.dumps(settings)]
        if mode != "none":
            cmd = [shutil.which("unshare") or "unshare", *([] if mode == "root-ns" else ["--map-root-user"]),
                   *_UNSHARE_FLAGS, "--", *cmd]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # no runner secrets
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
            cwd="/", start_new_session=True, close_fds=True,
        )
        self._buf = b""
        hello = self._read_line(WORKER_START_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            self.kill()
            raise SandboxError(
                f"sandbox worker did not start ({' '.join(cmd[:3])} ...): {self.log_tail()}",
                fix="check that `unshare` works here (`unshare --pid --fork --net true`) or report the log above",
            )
        notes = hello.get("notes", [])
        if mode == "none":
            self.isolation = "UNSAFE (unsafe_no_sandbox): setsid+killpg+subreaper; NO network isolation; shared /tmp"
        else:
            ns = "user+pid+mount+net" if mode == "user-ns" else "pid+mount+net"
            self.isolation = f"{ns} namespaces" + (f"; {'; '.join(notes)}" if notes else "")

    def log_tail(self) -> str:
        try:
            self._log.seek(0)
            return self._log.read()[-2000:].decode(errors="replace") or "(no output)"
        except (OSError, ValueError):
            return "(log unavailable)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read_line(self, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not sel.select(timeout=remaining):
                    return None
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, program: str, timeout_s: float) -> dict | None:
        request = json.dumps({"program": program, "timeout_s": timeout_s}).encode() + b"\n"
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        return self._read_line(timeout_s + REPLY_GRACE_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # unshare's --kill-child takes the namespace down
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._log.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the worker exits after its current program
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class Sandbox:
    """Bounded pool of isolated workers. Thread-safe; use as a context manager or call close()."""

    def __init__(
        self,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        max_procs: int = 64,
        max_output_bytes: int = 1 << 20,
        workers: int = 2,
        max_file_bytes: int = 16 << 20,
        max_open_files: int = 256,
        tmpfs_mb: int = 256,
        unsafe_no_sandbox: bool = False,
    ) -> None:
        if timeout_s <= 0:
            raise SandboxError(f"timeout_s={timeout_s} must be positive", fix="pass timeout_s=10 (seconds)")
        if workers < 1:
            raise SandboxError(f"workers={workers} must be at least 1", fix="pass workers=2")
        if memory_mb < 64:
            raise SandboxError(f"memory_mb={memory_mb} is too small for a Python process", fix="pass memory_mb=1024")
        self.timeout_s = float(timeout_s)
        self.num_workers = workers
        self.mode = isolation_mode()
        self.unsafe_no_sandbox = bool(unsafe_no_sandbox)
        if self.mode == "none" and not self.unsafe_no_sandbox:
            raise SandboxError(
                "this machine cannot isolate generated code (util-linux `unshare` with PID/mount/network "
                "namespaces failed), and running it unisolated was not asked for",
                fix="install util-linux and run as root or enable user namespaces (sysctl "
                    "kernel.unprivileged_userns_clone=1); or, knowing the code then sees this host, set "
                    "benchmark.unsafe_no_sandbox: true (Sandbox(unsafe_no_sandbox=True))",
            )
        # real root: every worker runs programs as its own unprivileged uid (not possible in user-ns mode)
        uid_base = random.randrange(*_UID_BASE_RANGE) if self.mode != "user-ns" and os.geteuid() == 0 else None
        # a unique tag in every worker's command line: `ps`/tests can find this sandbox's processes
        self.tag = f"routerllm-sandbox-{uuid.uuid4().hex[:12]}"
        self._settings = [
            {
                "timeout_s": self.timeout_s, "memory_mb": memory_mb, "max_procs": max_procs,
                "max_output_bytes": max_output_bytes, "max_file_bytes": max_file_bytes,
                "max_open_files": max_open_files, "tmpfs_mb": tmpfs_mb,
                "uid": None if uid_base is None else uid_base + i, "tag": self.tag,
            }
            for i in range(workers)
        ]
        self._idle: queue.Queue[int] = queue.Queue()
        self._workers: list[_Worker | None] = [None] * workers
        for i in range(workers):
            self._idle.put(i)
        self._lock = threading.Lock()
        self._closed = False
        self.isolation = ""

    # -- lifecycle ---------------------------------------------------------------------------------
    def _worker(self, index: int) -> _Worker:
        worker = self._workers[index]
        if worker is None or not worker.alive():
            if worker is not None:
                log.warning("sandbox worker %d died; restarting it. Log: %s", index, worker.log_tail())
                worker.kill()
            worker = _Worker(self._settings[index], self.mode)
            self._workers[index] = worker
            if not self.isolation:
                self.isolation = worker.isolation
                if self.mode == "none":
                    log.warning("sandbox isolation: %s", worker.isolation)
        return worker

    def start(self) -> "Sandbox":
        """Start every worker now (otherwise each starts on first use)."""
        for i in range(self.num_workers):
            self._worker(i)
        return self

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for i, worker in enumerate(self._workers):
            if worker is not None:
                worker.close()
                self._workers[i] = None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- running ---------------------------------------------------------------------------------------
    def run(self, program: str, timeout_s: float | None = None) -> Verdict:
        if self._closed:
            raise SandboxError("the sandbox is closed", fix="create a new Sandbox() or use it inside its `with` block")
        if not isinstance(program, str):
            raise SandboxError(f"program must be str, got {type(program).__name__}", fix="pass the program text")
        timeout = float(timeout_s or self.timeout_s)
        index = self._idle.get()
        try:
            for attempt in range(2):
                worker = self._worker(index)
                start = time.monotonic()
                try:
                    reply = worker.run(program, timeout)
                except BaseException:
                    # interrupted while waiting (KeyboardInterrupt): the worker may still answer
                    # later, and that reply must not be taken for the next program's
                    worker.kill()
                    self._workers[index] = None
                    raise
                if reply is not None and reply.get("status") != "error":
                    return Verdict(
                        status=reply["status"], detail=reply.get("detail", ""),
                        duration_s=float(reply.get("duration_s", 0.0)), stdout=reply.get("stdout", ""),
                        stderr=reply.get("stderr", ""), isolation=worker.isolation,
                    )
                elapsed = time.monotonic() - start
                tail = worker.log_tail()
                detail = reply.get("detail") if reply else "no reply"
                worker.kill()
                self._workers[index] = None
                if reply is None and elapsed >= timeout:
                    # the worker itself got stuck past the program's time limit: the program timed out
                    return Verdict(status="timed out", detail=f"over {timeout:g} s (worker restarted)",
                                   duration_s=elapsed, isolation=worker.isolation)
                log.warning("sandbox worker failed (%s), attempt %d; log: %s", detail, attempt + 1, tail)
            raise SandboxError(
                f"the sandbox worker failed twice on one program: {detail}",
                fix="see the log above; check `unshare` and that /tmp is writable",
            )
        finally:
            self._idle.put(index)

    def run_many(self, programs: list[str], timeout_s: float | None = None,
                 on_done: "callable | None" = None) -> list[Verdict]:
        """Run programs on the worker pool; verdicts come back in input order.
        `on_done(index, verdict)` is called as each finishes (e.g. to advance a progress bar)."""
        programs = list(programs)
        results: list[Verdict | None] = [None] * len(programs)

        def one(i: int) -> None:
            results[i] = self.run(programs[i], timeout_s)
            if on_done is not None:
                on_done(i, results[i])

        with ThreadPoolExecutor(max_workers=self.num_workers, thread_name_prefix="sandbox") as pool:
            for future in [pool.submit(one, i) for i in range(len(programs))]:
                future.result()
        return results  # type: ignore[return-value]


def open_sandbox(bench: "BenchmarkSection | None" = None, *, timeout_s: float | None = None,
                 workers: int | None = None) -> Sandbox:
    """The one place a run makes its sandbox from config (`benchmark` section: execution_timeout_s,
    workers, unsafe_no_sandbox); `timeout_s`/`workers` override (serve: the cascade's limit, one
    worker per generation thread). The opt-out is logged as a warning every time."""
    sandbox = Sandbox(
        timeout_s=timeout_s if timeout_s is not None else (bench.execution_timeout_s if bench else 10.0),
        workers=workers if workers is not None else (bench.workers if bench else 2),
        unsafe_no_sandbox=bool(bench and bench.unsafe_no_sandbox),
    )
    if sandbox.unsafe_no_sandbox:
        log.warning("benchmark.unsafe_no_sandbox is set: generated code %s", "runs WITHOUT isolation on this host"
                    if sandbox.mode == "none" else f"is isolated anyway ({sandbox.mode}: this machine can)")
    return sandbox

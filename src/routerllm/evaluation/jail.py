"""Run MODEL code in a jail that sees nothing of the host; talk to it in plain data only.

    with Jail(workers=2, timeout_s=10) as jail:
        with jail.session(source) as s:          # one fresh jailed program per session
            if s.load.ok:
                r = s.call("add", (1, 2))          # CallResult(ok=True, value=3)

Guarantees (the trusted side is this module and session.py; everything in the jail is hostile):
* Values cross as plain data (wire.py: tagged JSON, no pickle); anything else is an error result
  naming the type. Frames, ids, size caps, per-call timeouts: session.py. Nothing the jailed
  program writes can make this side raise. The program's stdout/stderr are /dev/null.
* The jail (bubblewrap): new pid, net, ipc, uts, cgroup (and user, unprivileged) namespaces,
  --die-with-parent, --new-session, --clearenv, an empty read-only root with read-only binds of the
  system libraries (/usr/lib, /usr/lib64), the interpreter binary and its stdlib directory
  (site-packages hidden under an empty tmpfs), the worker and wire.py; minimal /dev. As root: no
  user namespace; util-linux `setpriv` (bound read-only) drops to a random uid/gid of its own
  (>= 2,000,000) with empty bounding, inheritable, ambient, effective and permitted sets and
  no_new_privs. Unprivileged: a user namespace with uid/gid 65534 inside and `--cap-drop ALL`.
* One fresh program per session, never reused. Where the kernel allows nested user namespaces
  (probed once, `per_program == "zygote"`): each jail holds a pre-started zygote that never runs
  model code and clone(2)s every program into new user, mount, pid (pid 1 there), ipc and uts
  namespaces with its own size-capped tmpfs /tmp, /var/tmp, /dev/shm (TMPFS_BYTES, TMPFS_INODES),
  an empty /proc, /dev read-only, no capabilities, no_new_privs (_jail_worker.py); the zygote
  starts the next program as soon as the last is killed. Else one bwrap per program
  (`"bwrap"`, fresh --size-capped tmpfs each, its own /proc). rlimits per program: CPU, AS
  (memory_mb), NPROC (root mode: the uid is the jail's own), FSIZE 64 MiB, NOFILE 256, core 0.
* seccomp (where libseccomp2 is installed: Debian's apt depends on it): before any model code the
  program installs a filter (compiled by libseccomp through ctypes, _jail_worker.DENIED_SYSCALLS)
  refusing ptrace, process_vm_*, mount and the new mount API, unshare, setns, clone with any
  CLONE_NEW* flag (clone3: ENOSYS), keyctl, bpf, perf_event_open, userfaultfd, io_uring, module and
  kexec calls, personality... : the kernel surfaces no answer needs (no new user namespace from
  inside the jail, above all). Without the library the jail runs without it and `isolation` says so.
* Nothing outlives the owner: bwrap --die-with-parent, PDEATHSIG re-armed inside, EOF exits. Every
  session kills its program's whole pid namespace on close. --die-with-parent is PR_SET_PDEATHSIG,
  which fires when the THREAD that started bwrap exits: every bwrap is started by one dedicated
  thread that lives as long as the Jail (`_spawner`), so any thread may open and close sessions
  (handing a program back to its zygote is only messages, done on `_recycler` threads).
* unsafe_no_sandbox=True: a plain subprocess per program with the same rlimits and seccomp filter,
  empty environment, own session. NO isolation from the host (files, network); for machines without
  bubblewrap, opted into by name.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from routerllm.evaluation import wire
from routerllm.evaluation.session import CALL_GRACE_S, MAX_REPLY_BYTES, MAX_SESSION_BYTES, CallResult, FdChannel, JailSession
from routerllm.exceptions import SandboxUnavailable

__all__ = ["CALL_GRACE_S", "MAX_REPLY_BYTES", "MAX_SESSION_BYTES", "CallResult", "FdChannel", "Jail", "JailSession"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
WORKER_FILE = HERE / "_jail_worker.py"
WIRE_FILE = HERE / "wire.py"
JAIL_DIR = "/jail"  # where the worker and wire.py appear inside the jail (read-only)
FSIZE_BYTES = 64 * 1024 * 1024  # largest file the program may write (tmpfs), bytes
TMPFS_BYTES = 64 * 1024 * 1024  # each of /tmp, /var/tmp, /dev/shm, bytes (tmpfs size=)
TMPFS_INODES = 16384  # files + directories per tmpfs (zygote mode: nr_inodes=)
ZYGOTE_REPLY_S = 10.0  # how long the zygote may take to start or end a program, s (~ms normally)
ZYGOTE_EXIT_S = 2.0  # how long a closed zygote's jail may take to exit before SIGKILL, s
NOFILE = 256
NPROC_ROOT_MODE = 64  # processes of the worker's own uid
_UID_RANGE = (2_000_000, 3_000_000_000)  # root mode: random uid block far above real accounts
INSTALL_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`, Debian/Ubuntu) and allow user namespaces when not "
    "root (`sysctl kernel.unprivileged_userns_clone=1`, `sysctl user.max_user_namespaces=15000`), or opt out "
    "explicitly with the config key `benchmark.unsafe_no_sandbox: true` (NO isolation from the host)"
)


def _interpreter() -> tuple[str, str]:
    """(real path of the base interpreter, its stdlib directory)."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    return exe, stdlib


def _argv(mode: str, command: list[str] | None = None, *, zygote: bool = False) -> list[str]:
    """bwrap's command line. `zygote`: /tmp, /var/tmp, /dev/shm are read-only directories here (the
    zygote's programs mount a fresh tmpfs on each for every program); otherwise a fresh
    size-capped tmpfs each (one bwrap per program)."""
    root_mode = mode == "root"
    exe, stdlib = _interpreter()
    bwrap = shutil.which("bwrap")
    argv = [bwrap, "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/bin",
            "--setenv", "LANG", "C.UTF-8", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try"]
    if not root_mode:
        argv += ["--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL"]
    # sticky world-writable tmpfs (root mode: the uid is not the owner). Not --as-pid-1: the worker as pid 1
    # would not get PDEATHSIG from outside (found: an orphan spinning after its owner was SIGKILLed)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for tmp in ("/dev/shm", "/tmp", "/var/tmp"):
        if zygote:
            argv += ["--perms", "0755", "--dir", tmp]
        else:  # bwrap >= 0.8: --size applies to the next --tmpfs
            argv += ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", tmp]
    made: set[str] = {"/", "/proc", "/dev", "/dev/shm", "/tmp", "/var/tmp"}

    def dirs(path: str) -> None:  # bwrap would create missing parents 0700: make them 0755 explicitly
        parts = Path(path).parts
        for i in range(2, len(parts)):
            d = str(Path(*parts[:i]))
            if d not in made:
                made.add(d)
                argv.extend(["--perms", "0755", "--dir", d])

    def bind(src: str, dst: str | None = None) -> None:
        dst = dst or src
        dirs(dst)
        argv.extend(["--ro-bind", src, dst])
        made.add(dst)

    for lib in ("/usr/lib", "/usr/lib64"):
        if os.path.isdir(lib):
            bind(lib)
    for link, target in (("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/bin", "usr/bin")):
        argv.extend(["--symlink", target, link])
    if not exe.startswith("/usr/lib/"):
        bind(exe)
    if not stdlib.startswith("/usr/lib/"):
        bind(stdlib)
        libdir = os.path.dirname(stdlib)  # libpythonX.Y.so of a shared build (pyenv) lives here
        for name in sorted(os.listdir(libdir)):
            if name.startswith("libpython") and ".so" in name:
                bind(os.path.realpath(os.path.join(libdir, name)), os.path.join(libdir, name))
    for hidden in (os.path.join(stdlib, "site-packages"), os.path.join(stdlib, "dist-packages"), "/usr/lib/python3/dist-packages"):
        if os.path.isdir(hidden):
            argv.extend(["--tmpfs", hidden])
    bind(str(WORKER_FILE), f"{JAIL_DIR}/_jail_worker.py")
    bind(str(WIRE_FILE), f"{JAIL_DIR}/wire.py")
    if root_mode:
        bind(shutil.which("setpriv"), "/usr/bin/setpriv")
    argv.extend(["--remount-ro", "/", "--chdir", "/tmp", "--"])
    if root_mode:
        uid = random.randrange(*_UID_RANGE)
        argv.extend(["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"])
    argv.extend(command or [exe, "-I", "-S", "-B", f"{JAIL_DIR}/_jail_worker.py"])
    return argv


@functools.lru_cache(maxsize=1)
def _probe() -> str:
    """'root' or 'user' (the bwrap mode that works here); raises SandboxUnavailable."""
    if sys.platform != "linux" or shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed: the jail for model code cannot start",
                                 fix=INSTALL_HINT)
    modes = ((["root"] if shutil.which("setpriv") else []) + ["user"]) if os.geteuid() == 0 else ["user"]
    errors = []
    for mode in modes:
        argv = _argv(mode, [_interpreter()[0], "-I", "-S", "-c", "pass"])
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{mode}: {exc}")
            continue
        if proc.returncode == 0:
            return mode
        errors.append(f"{mode}: {proc.stderr.decode(errors='replace').strip()[:300]}")
    raise SandboxUnavailable(f"bubblewrap cannot isolate here ({'; '.join(errors)})", fix=INSTALL_HINT)


@functools.lru_cache(maxsize=1)
def _seccomp_available() -> bool:
    """Can the jail's programs compile their seccomp filter (libseccomp2 present)?"""
    import ctypes

    try:
        ctypes.CDLL("libseccomp.so.2")
        return True
    except OSError:
        return False


def _own_processes() -> int:
    """Processes (threads count too for RLIMIT_NPROC, roughly) of this uid now."""
    me, n = os.geteuid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == me:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


class _Worker:
    def __init__(self, argv: list[str], limits: dict, cwd: str | None, tmpdir: str | None) -> None:
        self.tmpdir = tmpdir
        self._log = tempfile.TemporaryFile()  # bwrap's own errors; the worker points fd 2 at /dev/null

        def preexec() -> None:
            for res, value in limits.items():
                try:
                    resource.setrlimit(res, (value, value))
                except (ValueError, OSError):
                    pass

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=cwd or "/",
                                     start_new_session=True, close_fds=True, preexec_fn=preexec, bufsize=0)
        self.received = 0

    # the channel a session talks through (the same for _Program)
    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)

    @property
    def rfd(self) -> int:
        return self.proc.stdout.fileno()

    @property
    def wfd(self) -> int:
        return self.proc.stdin.fileno()

    def death(self) -> str:
        try:
            rc = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "jail died (reply channel closed)"
        if rc < 0:
            return f"jail died (signal {-rc})"
        tail = self.log_tail()
        return f"jail died (exit {rc})" + (f": {tail[-200:]}" if tail and rc == 1 else "")

    def log_tail(self) -> str:
        try:
            self._log.seek(0)
            return self._log.read()[-500:].decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._log.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class _ZygoteFailed(RuntimeError):
    pass


class _Zygote:
    """One pre-started bwrap jail whose zygote (no model code, ever) forks a fresh program per
    session in fresh namespaces (_jail_worker.py, zygote mode). Started on the spawner thread."""

    def __init__(self, mode: str, limits: dict, rlimits: dict) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        exe, _ = _interpreter()
        spec = json.dumps({"rlimits": {resource_name(k): v for k, v in rlimits.items()}, **limits})
        argv = _argv(mode, [exe, "-I", "-S", "-B", f"{JAIL_DIR}/_jail_worker.py", "--zygote", str(child.fileno()), spec],
                     zygote=True)
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd="/",
                                     start_new_session=True, close_fds=True, pass_fds=(child.fileno(),))
        child.close()
        self.sock = parent
        self.sock.settimeout(ZYGOTE_REPLY_S)

    def start(self, *, end_first: bool = False, confirm: bool = False) -> "_Program":
        """A fresh program, being set up: its first request can be sent at once (it waits in the
        pipe). `end_first`: end the current program in the same exchange (one round trip for both);
        `confirm`: ask whether the program is still there after its setup (the start-up probe)."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            if end_first:
                self.sock.send(b"K")
            socket.send_fds(self.sock, [b"F"], [req_r, rep_w])
            if confirm:
                self.sock.send(b"S?")
            ended = self.sock.recv(16) if end_first else b"k"
            reply = self.sock.recv(512)
            if confirm and reply == b"S":
                reply = self.sock.recv(512)
            if ended != b"k":
                reply = b"Ethe previous program was not confirmed dead"
        except OSError as exc:
            reply = f"E{type(exc).__name__}".encode()
        finally:
            os.close(req_r)
            os.close(rep_w)
        if reply != b"S":
            os.close(req_w)
            os.close(rep_r)
            tail = self._log_tail()
            raise _ZygoteFailed(f"the jail's zygote could not start a program ({reply[1:].decode(errors='replace') or 'no reply'}"
                                f"{'; ' + tail if tail else ''})")
        return _Program(self, req_w, rep_r)

    def end(self) -> bool:
        """Kill the current program (its whole pid namespace); True when the zygote confirmed."""
        try:
            self.sock.send(b"K")
            return self.sock.recv(16) == b"k"
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            self._log.seek(0)
            return self._log.read()[-300:].decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def kill(self) -> None:
        """Close the control socket (the zygote ends its program, reaps and leaves, so bwrap exits
        and its processes' CPU is accounted to the owner); SIGKILL after ZYGOTE_EXIT_S."""
        self.sock.close()
        try:
            self.proc.wait(timeout=ZYGOTE_EXIT_S)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):  # pragma: no cover
                pass
        self._log.close()


class _Program(FdChannel):
    """A session's channel to one program forked by a zygote (same interface as _Worker)."""

    def __init__(self, zygote: _Zygote, req_w: int, rep_r: int) -> None:
        super().__init__(req_w, rep_r)
        self.zygote = zygote
        self.recycle: "callable | None" = None  # set by the Jail: hands the zygote back for the next program

    def kill(self) -> None:
        if not self.close_fds():
            return
        if self.recycle is not None:
            self.recycle(self.zygote)
        elif not self.zygote.end():
            self.zygote.kill()


def resource_name(res: int) -> str:
    """'RLIMIT_CPU' for resource.RLIMIT_CPU (the zygote applies limits by name)."""
    for name in dir(resource):
        if name.startswith("RLIMIT_") and getattr(resource, name) == res:
            return name
    raise ValueError(f"unknown rlimit {res}")


@functools.lru_cache(maxsize=4)
def _zygote_works(mode: str) -> str | None:
    """None when a zygote starts and serves a program here, else why not (then one bwrap per program)."""
    zygote = None
    try:
        zygote = _Zygote(mode, {"tmpfs_bytes": TMPFS_BYTES, "tmpfs_inodes": TMPFS_INODES}, {})
        program = zygote.start(confirm=True)
        session = JailSession(program, "def f(x):\n    return x + 1\n", 30.0)
        result = session.call("f", (1,))
        session.close()
        return None if result == CallResult(True, 2) else f"probe call gave {result}"
    except Exception as exc:  # noqa: BLE001 - any failure: fall back
        return f"{type(exc).__name__}: {exc}"
    finally:
        if zygote is not None:
            zygote.kill()


class Jail:
    """A pool of pre-started jailed programs (warm), thread-safe. One fresh program per session.

    Per program, where the kernel allows nested user namespaces (probed once): a clone of a
    pre-started zygote in fresh user, mount, pid, ipc and uts namespaces (`per_program == "zygote"`,
    _jail_worker.py); else one bwrap per program (`"bwrap"`). Either way a program never shares a
    process, /tmp, /var/tmp, /dev/shm or pid namespace with another one."""

    def __init__(self, *, workers: int = 2, timeout_s: float = 10.0, memory_mb: int = 1024,
                 unsafe_no_sandbox: bool = False) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 (got {workers})")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.unsafe_no_sandbox = bool(unsafe_no_sandbox)
        if self.unsafe_no_sandbox:
            self.mode = "none"
            self.per_program = "subprocess"
            self.isolation = ("NONE (unsafe_no_sandbox): a plain subprocess with rlimits; the code sees this "
                              "host's files and network")
        else:
            self.mode = _probe()
            why = _zygote_works(self.mode)
            self.per_program = "zygote" if why is None else "bwrap"
            if why is not None:
                log.info("jail: one bwrap per program (the zygote cannot run here: %s)", why)
            who = "a uid of its own" if self.mode == "root" else "a user namespace, uid 65534"
            fresh = ("a clone of a pre-started zygote in fresh user, mount, pid, ipc, uts namespaces" if why is None
                     else "a bwrap of its own")
            sec = "seccomp filter" if _seccomp_available() else "NO seccomp (libseccomp2 not installed)"
            self.isolation = (f"bubblewrap ({self.mode} mode: {who}, no capabilities, no_new_privs, {sec}; pid, net, "
                              f"ipc, uts namespaces; read-only interpreter only; per program {fresh}, fresh /tmp)")
        self._pool: queue.Queue[_Worker | _Program | BaseException] = queue.Queue()
        self._orders: queue.Queue[tuple] = queue.Queue()  # ("spawn",) | ("stop",)
        self._zygotes: list[_Zygote] = []
        self._closed = False
        self._lock = threading.Lock()
        self._coming = 0  # programs ordered (spawns, recycles) and not yet in the pool
        self._spawner = threading.Thread(target=self._spawn_loop, name="jail-spawner", daemon=True)
        self._spawner.start()
        self._recycler = ThreadPoolExecutor(max_workers=2 * workers + 2, thread_name_prefix="jail-recycle")
        # zygote mode: one more than the workers, so a session finds a ready program while the
        # zygote of the one just closed makes its next
        for _ in range(workers + (self.per_program == "zygote")):
            self._order(("spawn",))

    def _order(self, order: tuple) -> None:
        with self._lock:
            self._coming += 1
        self._orders.put(order)

    def _deliver(self, item) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._coming -= 1
        self._pool.put(item)

    def _spawn_loop(self) -> None:
        """The one thread that starts workers and zygotes (module docstring: PDEATHSIG follows the
        thread) and hands a zygote its next program once the last one is dead."""
        while True:
            order = self._orders.get()
            if order[0] == "stop":
                break
            try:
                if self.per_program == "zygote":
                    # start the process here; wait for its first program on a recycler thread, so
                    # zygotes boot in parallel
                    self._recycler.submit(self._first, self._new_zygote())
                else:
                    self._deliver(self._spawn())
            except BaseException as exc:  # noqa: BLE001 - handed to the session that takes it
                self._deliver(exc)

    def _first(self, zygote: _Zygote) -> None:
        """A new zygote's first program (on a recycler thread); a failure is the session's error."""
        try:
            self._deliver(self._ready(zygote, retry=False))
        except BaseException as exc:  # noqa: BLE001
            self._drop(zygote)
            self._deliver(exc)

    def _recycle(self, zygote: _Zygote) -> None:
        """On a recycler thread: end the zygote's program, have it make the next. Only messages
        to an existing process: no thread's exit can touch it (the zygote was started by the
        spawner); a zygote that fails is replaced by the spawner."""
        try:
            if not self._closed:
                try:
                    self._deliver(self._ready(zygote, retry=False, end_first=True))
                    return
                except _ZygoteFailed:
                    pass
            else:
                zygote.end()
            self._drop(zygote)
            if self._closed:
                self._deliver(None)
            else:
                self._orders.put(("spawn",))  # already counted as coming
        except BaseException as exc:  # noqa: BLE001 - handed to the session that takes it
            self._deliver(exc)

    def _drop(self, zygote: _Zygote) -> None:
        zygote.kill()
        if zygote in self._zygotes:
            self._zygotes.remove(zygote)

    def _ready(self, zygote: _Zygote, retry: bool = True, end_first: bool = False) -> _Program:
        """The zygote's next program (on a failure: one more try with a fresh zygote; spawner only)."""
        try:
            program = zygote.start(end_first=end_first)
        except _ZygoteFailed:
            if not retry:
                raise
            self._drop(zygote)
            return self._ready(self._new_zygote(), retry=False)
        program.recycle = self._hand_back
        return program

    def _hand_back(self, zygote: _Zygote) -> None:
        with self._lock:
            self._coming += 1
        self._recycler.submit(self._recycle, zygote)

    def _new_zygote(self) -> _Zygote:
        zygote = _Zygote(self.mode, {"tmpfs_bytes": TMPFS_BYTES, "tmpfs_inodes": TMPFS_INODES}, self._limits())
        self._zygotes.append(zygote)
        return zygote

    def _limits(self) -> dict:
        cpu = int(self.timeout_s) * 2 + 5  # seconds of CPU; the wall deadline normally ends it first
        limits = {resource.RLIMIT_CPU: cpu, resource.RLIMIT_AS: self.memory_mb * 1024 * 1024,
                  resource.RLIMIT_FSIZE: FSIZE_BYTES, resource.RLIMIT_NOFILE: NOFILE, resource.RLIMIT_CORE: 0}
        if self.mode == "root":
            limits[resource.RLIMIT_NPROC] = NPROC_ROOT_MODE
        else:  # the uid is the owner's: allow what it runs now plus the jail's share
            limits[resource.RLIMIT_NPROC] = _own_processes() + NPROC_ROOT_MODE
        return limits

    def _spawn(self) -> _Worker | _Program:
        if self.per_program == "zygote":
            return self._ready(self._new_zygote())
        if self.mode == "none":
            exe, _ = _interpreter()
            tmp = tempfile.mkdtemp(prefix="routerllm-unsafe-")
            return _Worker([exe, "-I", "-S", "-B", str(WORKER_FILE)], self._limits(), tmp, tmp)
        return _Worker(_argv(self.mode), self._limits(), None, None)

    def session(self, source: str | None, *, timeout_s: float | None = None) -> JailSession:
        """A fresh program; `source` is loaded now (None: the caller loads it, JailSession.start)."""
        if self._closed:
            raise RuntimeError("Jail is closed: open a new Jail() or use it inside its `with` block")
        if self.per_program != "zygote":
            self._order(("spawn",))  # pre-start the next one (on the spawner thread)
        else:
            with self._lock:
                short = self._pool.empty() and self._coming == 0  # every zygote is in a session
            if short:
                self._order(("spawn",))
        worker = self._pool.get()
        while worker is None:  # a closed Jail's placeholder
            worker = self._pool.get()
        if isinstance(worker, BaseException):
            raise worker
        return JailSession(worker, source, self.timeout_s if timeout_s is None else float(timeout_s))

    def close(self) -> None:
        """Kill the spares, close the zygotes (they end their programs, reap and leave, so their CPU
        is accounted to this process), then stop the spawner (its exit ends whatever it started and
        is still alive: bwrap --die-with-parent)."""
        if self._closed:
            return
        self._closed = True
        self._recycler.shutdown(wait=True)  # every program handed back is dead
        while True:
            try:
                worker = self._pool.get_nowait()
            except queue.Empty:
                break
            if isinstance(worker, _Program):
                worker.recycle = None  # the zygote is closed below
            if isinstance(worker, (_Worker, _Program)):
                worker.kill()
        for zygote in list(self._zygotes):
            self._drop(zygote)
        self._orders.put(("stop",))
        self._spawner.join(timeout=30)

    def __enter__(self) -> "Jail":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

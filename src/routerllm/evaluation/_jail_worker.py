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

Zygote mode (`_jail_worker.py --zygote FD SPEC`): a pre-started jailed process that never runs
model code and makes one fresh program process per session (jail.py `_Zygote`). On the unix
socket FD it receives "F" with two fds (requests, replies) and clone(2)s the PROGRAM process
straight into new user, mount, pid (it is pid 1 there), ipc and uts namespaces. Before any model
code the program maps its own uid/gid, makes every mount private, mounts a fresh size-capped tmpfs
on /tmp, /var/tmp and /dev/shm and an empty read-only tmpfs over /proc, remounts /dev read-only,
drops every capability (bounding, ambient, effective, permitted, inheritable), sets no_new_privs,
applies the rlimits and the seccomp filter, then serves the protocol above on the two fds. "K"
ends the session: SIGKILL to the program (pid 1: its whole namespace dies), reaped by the zygote,
which answers "k". The zygote is not dumpable (no /proc/PID/mem, no ptrace by the same uid) and is
in no namespace the program can name (not in its pid namespace; no /proc). EOF on FD: the zygote
ends its program, reaps, and exits.
"""

import os
import signal
import struct
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

REQ = REP = -1


def _no_outliving():
    """Never outlive the owner: bwrap --die-with-parent sets PDEATHSIG, but setpriv's uid change
    (root mode) clears it (prctl(2): credentials change), so set it again (PR_SET_PDEATHSIG=1, SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
    except Exception:  # noqa: BLE001  (no ctypes: the EOF exit below still applies)
        pass


def _serve_on(req, rep):
    """Move the protocol to private fds, point 0/1/2 at /dev/null, serve until EOF."""
    global REQ, REP
    REQ, REP = os.dup(req), os.dup(rep)
    _null = os.open("/dev/null", os.O_RDWR)
    for _fd in (0, 1, 2):
        os.dup2(_null, _fd)
    os.close(_null)
    for fd in (req, rep):
        if fd not in (0, 1, 2, REQ, REP):
            os.close(fd)
    main()


_BUF = bytearray()  # request bytes read ahead


def _read_exact(n):
    while len(_BUF) < n:
        chunk = os.read(REQ, max(n - len(_BUF), 65536))
        if not chunk:
            os._exit(0)  # owner gone (EOF): never outlive it
        _BUF.extend(chunk)
    out = bytes(_BUF[:n])
    del _BUF[:n]
    return out


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


# --- zygote mode --------------------------------------------------------------------------------
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 1 << 14, 1 << 18
MS_RELATIME = 1 << 21
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 4, 24, 38, 47, 4
CAP_V3 = 0x20080522  # _LINUX_CAPABILITY_VERSION_3


def _setup(limits):
    """In the program process, just cloned into fresh namespaces (still no model code): own
    uid/gid maps, fresh mounts, no capabilities (module docstring). Raises OSError naming the step."""
    import ctypes

    libc = _LIBC

    def check(result, what):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    uid, gid = _IDS  # read before the clone: inside the new namespace they are unmapped (65534) until written
    # dumpable while writing our own maps (a non-dumpable task's /proc files belong to root)
    check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                       ("/proc/self/gid_map", f"{gid} {gid} 1")):
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as exc:
            raise OSError(exc.errno, f"writing {path}: {os.strerror(exc.errno)}") from None
    check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    opts = f"size={limits['tmpfs_bytes']},nr_inodes={limits['tmpfs_inodes']},mode=1777".encode()
    for d in (b"/tmp", b"/var/tmp", b"/dev/shm"):
        check(libc.mount(b"tmpfs", d, b"tmpfs", MS_NOSUID | MS_NODEV, opts), f"tmpfs on {d.decode()}")
    check(libc.mount(b"tmpfs", b"/proc", b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     b"size=4096,nr_inodes=8,mode=0555"), "hide /proc")
    # /dev: bwrap's tmpfs of device nodes, read-only here (no file planted for the next program); its
    # nosuid, nodev, relatime are locked in this user namespace and must be kept
    check(libc.mount(b"none", b"/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_RELATIME,
                     None), "/dev read-only")
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL past the last capability
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    header = (ctypes.c_uint32 * 2)(CAP_V3, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "drop capabilities")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _program(req, rep, limits):
    """In the program process (pid 1 of its namespace): limits, seccomp, then serve (model code
    from here)."""
    import resource

    _no_outliving()
    os.chdir("/tmp")
    for name, value in limits["rlimits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError):
            pass
    if SECCOMP_BPF:
        _apply_seccomp(SECCOMP_BPF)
    _serve_on(req, rep)


# --- seccomp ---------------------------------------------------------------------------------------
# Syscalls no HumanEval answer needs and that widen the kernel's attack surface or reach other
# processes: refused with EPERM. Namespaces are refused too (clone with CLONE_NEW*, unshare, setns;
# clone3 answers ENOSYS so the C library falls back to clone, whose flags a filter can read).
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "open_by_handle_at", "name_to_handle_at",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "personality",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "syslog", "iopl", "ioperm", "lookup_dcookie",
)
CLONE_NEW_FLAGS = (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)  # NS CGROUP UTS IPC USER PID NET
SCMP_ACT_ALLOW, SCMP_CMP_MASKED_EQ, EPERM, ENOSYS = 0x7FFF0000, 7, 1, 38


def _seccomp_bpf():
    """The filter compiled to BPF by libseccomp (libseccomp.so.2, through ctypes), or None where
    the library is absent (the jail then runs without seccomp; jail.py says so)."""
    import ctypes

    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return None

    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        return None
    try:
        def deny(name, errno=EPERM, cmps=None):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a syscall on this architecture
                return
            if lib.seccomp_rule_add_array(ctx, 0x00050000 | errno, nr, len(cmps or ()), cmps) != 0:
                raise OSError(f"seccomp rule for {name} refused")

        for name in DENIED_SYSCALLS:
            deny(name)
        for flag in CLONE_NEW_FLAGS:
            deny("clone", cmps=(Cmp * 1)(Cmp(0, SCMP_CMP_MASKED_EQ, flag, flag)))
        deny("clone3", ENOSYS)
        r, w = os.pipe()
        try:
            if lib.seccomp_export_bpf(ctx, w) != 0:
                raise OSError("seccomp_export_bpf failed")
        finally:
            os.close(w)
        data = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(r)
        return data
    finally:
        lib.seccomp_release(ctx)


def _apply_seccomp(bpf):
    """Install the BPF filter on this process (no_new_privs is set): PR_SET_SECCOMP, mode filter."""
    import ctypes

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = Fprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


# clone(2)'s number (asm/unistd.h); elsewhere the zygote refuses, the start-up probe fails and
# the jail uses one bwrap per program
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)
_LIBC = None
_IDS = (-1, -1)  # the zygote's uid and gid


def _start(req, rep, limits):
    """clone(2) the program straight into new user, mount, pid (it is pid 1), ipc and uts
    namespaces: one process per program, no intermediate. os.fork cannot pass clone flags, so the
    raw system call, bracketed by CPython's own fork hooks (PyOS_BeforeFork / AfterFork_*), as
    os.fork does (the zygote is single-threaded: no lock is held across it). Returns the pid."""
    import ctypes

    if SYS_CLONE is None:
        raise OSError(38, f"no clone(2) number known for {os.uname().machine}")
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _LIBC.syscall(SYS_CLONE, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | 17,
                        0, 0, 0, 0)  # 17: SIGCHLD to the zygote at exit
    if pid == 0:
        api.PyOS_AfterFork_Child()
        code = 1
        try:
            # nothing of the zygote's survives into the program: its control socket above all
            low = 3
            for keep in sorted({req, rep}):
                os.closerange(low, keep)
                low = keep + 1
            os.closerange(low, 65536)
            _setup(limits)
            _program(req, rep, limits)  # serves until EOF (exits there)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - said in the jail's log (fd 2)
            try:
                os.write(2, f"routerllm jail: program setup failed: {exc}\n"[:300].encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(ctypes.get_errno(), "clone of a program failed")
    return pid


SECCOMP_BPF = None


def _end(pid):
    """SIGKILL the program: pid 1 of its namespace, so every process in it dies (reaped by it); it
    is reaped here, so all their CPU is accounted up to the owner."""
    try:
        os.kill(pid, 9)
    except OSError:
        pass


def zygote(ctl_fd, limits):
    import ctypes
    import socket

    global SECCOMP_BPF, _LIBC, _IDS
    SECCOMP_BPF = _seccomp_bpf()  # once; each program installs it (one prctl)
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _LIBC.syscall.restype = ctypes.c_long
    _IDS = (os.getuid(), os.getgid())
    _no_outliving()
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    sock = socket.socket(fileno=ctl_fd)
    current = None
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 64, 2)
        except OSError:
            msg, fds = b"", []
        if not msg:  # the owner is gone (or closing): end the program, reap everything, leave
            if current is not None:
                _end(current)
            while True:
                try:
                    os.wait()
                except ChildProcessError:
                    break
            os._exit(0)
        if msg == b"F" and len(fds) == 2:
            try:
                current = _start(fds[0], fds[1], limits)
                reply = b"S"
            except OSError as exc:
                current, reply = None, f"E{exc}".encode()[:200]
            for fd in fds:
                os.close(fd)
            # answer at once (the owner's first request waits in the pipe until the program is up);
            # a setup that fails closes the reply pipe: the session ends "jail died", the log says why
            sock.send(reply)
        elif msg == b"S?":  # (the start-up probe) is the program still there?
            alive = current is not None and os.waitpid(current, os.WNOHANG)[0] == 0
            sock.send(b"S" if alive else b"Ethe program's setup failed (see the jail's log)")
        elif msg == b"K":
            if current is not None:
                _end(current)
                current = None
            # answer at once: a SIGKILLed process never runs again, and the kernel's teardown of its
            # namespaces (an RCU grace period for the mounts) need not delay the next program
            sock.send(b"k")
        else:
            for fd in fds:
                os.close(fd)
        while True:  # reap what has exited (programs)
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


if len(sys.argv) >= 4 and sys.argv[1] == "--zygote":
    import json

    zygote(int(sys.argv[2]), json.loads(sys.argv[3]))
else:
    _no_outliving()
    _bpf = _seccomp_bpf()
    if _bpf:
        _apply_seccomp(_bpf)
    _serve_on(0, 1)

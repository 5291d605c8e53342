"""Attacks on the jail (evaluation/jail.py), each in both modes: as root (CI) and as an unprivileged
uid (65534, via setpriv; skipped with the reason where the machine does not allow it). Each test
asserts the outcome AND that nothing is left behind (no jailed process, no planted file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from routerllm.evaluation import wire

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("jail_driver.py")
SYSTEM_PY = "/usr/bin/python3"  # readable by an unprivileged uid (the venv's may live under /root)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed (apt-get install bubblewrap)")


def _jail_processes(marker: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if marker in comm:
                found.append(pid)
    return found


@pytest.fixture(scope="module")
def readable_copy():
    """The driver and the package copied where uid 65534 can read them: a checkout may sit in a
    0700 directory (CI clones into `mktemp -d`), and the unprivileged driver must open both."""
    base = Path(tempfile.mkdtemp(prefix="routerllm-jail-tests-"))
    try:
        os.chmod(base, 0o755)
        shutil.copytree(ROOT / "src" / "routerllm", base / "src" / "routerllm",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(DRIVER, base / DRIVER.name)
        for path in [base, *base.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["root", "unprivileged"])
def run(request, readable_copy):
    mode = request.param
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("root mode needs root (CI runs as root)")
    if mode == "unprivileged":
        if os.geteuid() != 0 or shutil.which("setpriv") is None or not os.path.exists(SYSTEM_PY):
            pytest.skip("unprivileged mode is run as uid 65534 via setpriv from root with a system python3")

    def go(sessions: list[dict], timeout_s: float = 10) -> dict:
        plan = json.dumps({"sessions": sessions, "timeout_s": timeout_s})
        # a fresh driver process in both modes: its peak RSS is the trusted side's alone (pytest's
        # own peak, after the suite has loaded models, says nothing about the jail)
        if mode == "root":
            argv = [sys.executable, str(DRIVER)]
            src = ROOT / "src"
        else:
            argv = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", SYSTEM_PY,
                    str(readable_copy / DRIVER.name)]
            src = readable_copy / "src"
        proc = subprocess.run(
            argv,
            input=plan.encode(), capture_output=True, timeout=120, cwd="/",
            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        )
        if proc.returncode != 0 and b"not permitted" in proc.stderr:
            pytest.skip(f"unprivileged bubblewrap not allowed here: {proc.stderr[-200:]!r}")
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        out = wire.decode(bytes.fromhex(proc.stdout.decode()))
        assert out["mode"] == ("root" if mode == "root" else "user")
        return out

    go.mode = mode
    return go


def one(run, source: str, *calls, timeout_s: float = 10):
    out = run([{"source": textwrap.dedent(source), "calls": [list(c) for c in calls]}], timeout_s=timeout_s)
    return out["results"][0]


def test_host_files_invisible(run):
    rows = one(run, """
        import os
        def probe(path):
            try:
                if os.path.isdir(path):
                    return "listed: " + ",".join(os.listdir(path))
                return "read: " + open(path).read()[:50]
            except Exception as e:
                return type(e).__name__
        """, ("probe", ["/etc/shadow"]), ("probe", ["/root/.bashrc"]), ("probe", ["/home"]),
        ("probe", [str(ROOT)]), ("probe", ["/work"]), ("probe", ["/etc/passwd"]))
    assert rows[0][0]
    for ok, value, _ in rows[1:]:
        assert ok and not value.startswith("read:"), value
        assert value in ("FileNotFoundError", "PermissionError") or value == "listed: ", value


def test_no_host_pids_no_caps_no_setuid(run):
    rows = one(run, """
        import os
        def pids():
            return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        def status():
            # by system calls, not /proc/self/status: the zygote's programs see an empty /proc
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            header = (ctypes.c_uint32 * 2)(0x20080522, 0)
            data = (ctypes.c_uint32 * 6)()
            assert libc.capget(header, data) == 0
            eff, prm, inh = data[0] | data[3] << 32, data[1] | data[4] << 32, data[2] | data[5] << 32
            bnd = sum(1 << c for c in range(64) if libc.prctl(23, c, 0, 0, 0) == 1)  # PR_CAPBSET_READ
            amb = sum(1 << c for c in range(64) if libc.prctl(47, 1, c, 0, 0) == 1)  # PR_CAP_AMBIENT_IS_SET
            return {"CapEff": hex(eff), "CapPrm": hex(prm), "CapInh": hex(inh), "CapBnd": hex(bnd), "CapAmb": hex(amb),
                    "NoNewPrivs": str(libc.prctl(39, 0, 0, 0, 0)), "Uid": str(os.getuid())}
        def setuid():
            out = []
            for f in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.setgroups([0])):
                try:
                    f(); out.append("ok")
                except OSError as e:
                    out.append(type(e).__name__)
            return out
        """, ("pids", []), ("status", []), ("setuid", []))
    assert rows[1][0] and len(rows[1][1]) <= 4, rows[1]
    st = rows[2][1]
    for key in ("CapEff", "CapBnd", "CapAmb", "CapPrm", "CapInh"):
        assert int(st[key], 16) == 0, (key, st[key])
    assert st["NoNewPrivs"] == "1"
    assert st["Uid"].split()[0] != "0"
    assert "ok" not in rows[3][1] and len(rows[3][1]) == 3  # EPERM, or EINVAL for an unmapped uid 0


def test_mount_umount_and_write_outside_tmp_fail(run):
    rows = one(run, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def mounts():
            return [libc.umount2(b"/tmp", 2), libc.umount2(b"/proc", 2),
                    libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
                    libc.mount(None, b"/usr/lib", None, 32 | 4096 | 16384, None)]  # MS_REMOUNT|MS_BIND
        def write(path):
            try:
                open(path, "a").write("x"); return "wrote"
            except OSError as e:
                return type(e).__name__
        """, ("mounts", []), ("write", ["/usr/lib/planted"]), ("write", ["/jail/wire.py"]), ("write", ["/planted"]),
        ("write", ["/tmp/ok"]))
    assert rows[1] == [True, [-1, -1, -1, -1], None]
    assert [r[1] for r in rows[2:5]] == ["OSError" if r[1] == "OSError" else r[1] for r in rows[2:5]]
    assert all(r[1] != "wrote" for r in rows[2:5]), rows
    assert rows[5][1] == "wrote"
    assert not Path("/usr/lib/planted").exists() and not Path("/planted").exists()


def test_no_network(run):
    rows = one(run, """
        import socket
        def net(host, port, bind):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.bind((host, port)) if bind else s.connect((host, port))
                return "connected" if not bind else "bound"
            except OSError as e:
                return type(e).__name__
            finally:
                s.close()
        def names():
            import os
            return os.listdir("/sys/class/net") if os.path.exists("/sys/class/net") else []
        """, ("net", ["127.0.0.1", 22, False]), ("net", ["1.1.1.1", 53, False]), ("net", ["0.0.0.0", 8080, True]))
    assert rows[1][1] != "connected" and rows[2][1] != "connected", rows
    # binding in the empty network namespace is harmless (nothing can reach it); report what it gave
    assert rows[3][0]


def test_plant_for_next_session_and_fill_and_deep_tree(run):
    plant = """
        import os
        def plant():
            for d in ("/tmp", "/dev/shm", "/var/tmp"):
                open(d + "/planted", "w").write("answer")
            p = "/tmp"
            for i in range(3000):
                p += "/d"
                os.mkdir(p)
            try:
                open("/tmp/big", "wb").write(b"x" * (100 * 1024 * 1024))
                return "filled"
            except OSError as e:
                return type(e).__name__
        """
    look = """
        import os
        def look():
            return [os.path.exists(d + "/planted") for d in ("/tmp", "/dev/shm", "/var/tmp")] + [os.listdir("/tmp")]
        """
    out = run([{"source": textwrap.dedent(plant), "calls": [["plant", []]]},
               {"source": textwrap.dedent(look), "calls": [["look", []]]}])
    assert out["results"][0][1][1] == "OSError" or out["results"][0][1][1] != "filled"
    assert out["results"][1][1][1] == [False, False, False, []]


def test_reply_channel_flood_forgery_and_wrong_ids(run):
    flood = """
        import os, struct
        def fds():
            return sorted(int(f) for f in os.listdir("/proc/self/fd"))
        def flood():
            for fd in range(3, 10):
                try:
                    os.write(fd, struct.pack(">Q", 3 << 30))
                    chunk = b"x" * (1 << 20)
                    for _ in range(3 * 1024):
                        os.write(fd, chunk)
                except OSError:
                    pass
        """
    forge = """
        import os, struct, sys
        sys.path.insert(0, "/jail")
        import wire
        def forge():
            data = wire.encode({"id": "0000", "ok": True, "value": "passed", "error": None})
            for fd in range(3, 10):
                try:
                    os.write(fd, struct.pack(">Q", len(data)) + data)
                except OSError:
                    pass
            return "real"
        def garbage():
            for fd in range(3, 10):
                try:
                    os.write(fd, struct.pack(">Q", 5) + b"\\xff\\xfe{[x")
                except OSError:
                    pass
            import time; time.sleep(5)
        """
    out = run([{"source": textwrap.dedent(flood), "calls": [["fds", []], ["flood", []], ["fds", []]]},
               {"source": textwrap.dedent(forge), "calls": [["forge", []], ["forge", []]]},
               {"source": textwrap.dedent(forge), "calls": [["garbage", []]]},
               {"source": "def f(): return 1", "calls": [["f", []]]}])
    fl, fo, ga, ok = out["results"]
    assert fl[2] == [False, None, "output limit"] and fl[3][2] == "output limit", out["results"]
    assert fo[1][0] is False and "malformed reply" in fo[1][2] and fo[2][0] is False
    assert ga[1][0] is False and "malformed reply" in ga[1][2]
    assert ok[1] == [True, 1, None]  # the next session is unaffected
    assert out["maxrss_kb"] < 400 * 1024, out["maxrss_kb"]  # 3 GB flood, bounded memory on the trusted side


def test_daemons_signals_forkbomb_leave_nothing(run):
    marker = f"jx{os.getpid() % 10000}{run.mode[0]}"
    daemon = f"""
        import ctypes, os, time
        def daemon():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    ctypes.CDLL(None).prctl(15, b"{marker}", 0, 0, 0)
                    while True:
                        time.sleep(0.1)
                os._exit(0)
            time.sleep(0.3)
            return "spawned"
        """
    signals = """
        import os, signal
        def kill_all():
            out = []
            for f in (lambda: os.kill(-1, signal.SIGKILL), lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),
                      lambda: os.kill(os.getppid(), signal.SIGKILL)):
                try:
                    f(); out.append("sent")
                except OSError as e:
                    out.append(type(e).__name__)
            return out
        """
    bomb = """
        import os
        def bomb():
            n = 0
            try:
                while n < 100000:
                    if os.fork() == 0:
                        import time; time.sleep(60); os._exit(0)
                    n += 1
            except OSError as e:
                return f"{type(e).__name__} after {n}"
        """
    t0 = time.monotonic()
    out = run([{"source": textwrap.dedent(daemon), "calls": [["daemon", []]]},
               {"source": textwrap.dedent(signals), "calls": [["kill_all", []]]},
               {"source": textwrap.dedent(bomb), "calls": [["bomb", []]]},
               {"source": "def f(): return 2", "calls": [["f", []]]}], timeout_s=15)
    d, s, b, ok = out["results"]
    assert d[1] == [True, "spawned", None]
    # kill(-1) / the parent group reach only the jail's own pid namespace: the host (this test) survives
    assert s[1][0] is True or s[1][2].startswith("jail died"), s
    assert b[1][0] and b[1][1].startswith(("BlockingIOError", "OSError")), b
    assert ok[1] == [True, 2, None]
    assert time.monotonic() - t0 < 60
    time.sleep(0.5)
    assert _jail_processes(marker) == []


def test_ptrace_of_other_processes(run):
    rows = one(run, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def attach():
            out = {}
            for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
                if pid != os.getpid():
                    st = {l.split(":")[0]: l.split(":")[1].strip() for l in open(f"/proc/{pid}/status") if ":" in l}
                    out[pid] = [libc.ptrace(16, pid, None, None), int(st["CapEff"], 16), int(st["CapPrm"], 16)]
            return out
        """, ("attach", []))
    # Only the jail's own processes are visible. As root, bwrap's init (pid 1) is root-owned: attach fails.
    # Unprivileged, attaching bwrap's init (same uid, same sandbox) may succeed but grants nothing: it holds
    # no capability either.
    assert rows[1][0] and len(rows[1][1]) <= 2, rows
    for attach, eff, prm in rows[1][1].values():
        assert attach == -1 or (eff == 0 and prm == 0), rows


def test_stdout_flood_not_plain_data_timeout_and_exit(run):
    out = run([
        {"source": "import sys\ndef f():\n    for _ in range(200): sys.stdout.write('x' * (1 << 20))\n    print('passed')\n    return 7",
         "calls": [["f", []]]},
        {"source": "class E:\n    def __eq__(self, o): return True\ndef f(): return E()\ndef g(): return [1, (E(),)]", "calls": [["f", []], ["g", []]]},
        {"source": "def f():\n    while True: pass", "calls": [["f", []], ["f", []]]},
        {"source": "import os\nos._exit(0)", "calls": [["f", []]]},
        {"source": "def f(:", "calls": [["f", []]]},
        {"source": "raise SystemExit(0)", "calls": []},
    ], timeout_s=3)
    fl, eq, loop, ex, syn, sysexit = out["results"]
    assert fl[1] == [True, 7, None]
    assert eq[1] == [False, None, "not plain data: E"] and eq[2][2] == "not plain data: E"
    assert loop[1] == [False, None, "timeout after 3 s"] and loop[2][2] == "timeout after 3 s"
    assert ex[0][0] is False and ex[0][2].startswith("jail died")
    assert syn[0][0] is False and syn[0][2].startswith("SyntaxError")
    assert sysexit[0] == [False, None, "SystemExit: 0"]


def test_worker_dies_with_its_owner(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to see all processes")
    marker = f"jo{os.getpid() % 10000}"
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from routerllm.evaluation.jail import Jail
        j = Jail(workers=2)
        s = j.session('import ctypes, time\\nctypes.CDLL(None).prctl(15, b"{marker}", 0, 0, 0)\\ndef spin():\\n    while True: pass')
        print("ready", flush=True)
        s.call("spin")
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    assert _jail_processes(marker), "the jailed program should be running"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while _jail_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _jail_processes(marker) == []


def test_tmpfs_caps_dev_read_only_and_ipc_not_shared(run):
    fill = """
        import os
        def fill():
            out = []
            try:  # 16 MiB files (under the 64 MiB file limit) until the tmpfs cap stops them
                for i in range(8):
                    with open(f"/tmp/f{i}", "wb") as f:
                        f.write(b"x" * (16 << 20))
                out.append("no cap")
            except OSError as e:
                out.append(type(e).__name__)
            try:
                open("/dev/planted", "w").write("x")
                out.append("wrote /dev")
            except OSError as e:
                out.append(type(e).__name__)
            return out
        def shm():  # a SysV segment (survives its creator) must not reach the next program
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            return libc.shmget(0x5EC12E7, 4096, 0o1666)
        """
    look = """
        import ctypes, os
        def look():
            libc = ctypes.CDLL(None, use_errno=True)
            return [os.listdir("/tmp"), os.path.exists("/dev/planted"), libc.shmget(0x5EC12E7, 4096, 0o666)]
        """
    out = run([{"source": textwrap.dedent(fill), "calls": [["fill", []], ["shm", []]]},
               {"source": textwrap.dedent(look), "calls": [["look", []]]}])
    first, second = out["results"]
    assert first[1][0] and first[1][1][0] == "OSError" and first[1][1][1] != "wrote /dev", first
    assert first[2][0] and first[2][1] >= 0, first  # creating one is allowed ...
    assert second[1][1] == [[], False, -1], second  # ... the next program sees none of it


def test_seccomp_refuses_namespaces_ptrace_and_keeps_threads(run):
    rows = one(run, """
        import ctypes, os, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def probe():
            out = {"mode": libc.prctl(21, 0, 0, 0, 0)}  # PR_GET_SECCOMP: 2 = filter
            for name, call in (("unshare_user", lambda: libc.unshare(0x10000000)),
                               ("unshare_net", lambda: libc.unshare(0x40000000)),
                               ("ptrace", lambda: libc.ptrace(0, 0, 0, 0)),
                               ("keyctl", lambda: libc.syscall(250, 0, 0, 0, 0)),
                               ("bpf", lambda: libc.syscall(321, 0, 0, 0))):
                out[name] = [call(), ctypes.get_errno()]
            t = threading.Thread(target=lambda: None)
            t.start(); t.join()
            pid = os.fork()
            if pid == 0:
                os._exit(3)
            out["fork"] = os.waitpid(pid, 0)[1] >> 8
            return out
        """, ("probe", []))
    ok, got, err = rows[1]
    assert ok, err
    if got["mode"] != 2:
        pytest.skip("libseccomp2 not installed: the jail runs without seccomp (Jail.isolation says so)")
    for name in ("unshare_user", "unshare_net", "ptrace", "keyctl", "bpf"):
        assert got[name] == [-1, 1], (name, got[name])  # EPERM
    assert got["fork"] == 3  # fork and threads (clone3 -> ENOSYS -> clone) still work

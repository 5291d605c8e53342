"""The sandbox against adversarial programs. Each test checks: the verdict, that the runner and
the sandbox still answer (a trivial program right after, on the same worker processes), that no
file outside the sandbox changed, and that no process is left behind."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest

from routerllm.evaluation import sandbox as sandbox_mod
from routerllm.evaluation.sandbox import Sandbox, Verdict
from routerllm.exceptions import SandboxError

SECRET_NAME = "ROUTERLLM_TEST_RUNNER_SECRET"
SECRET_VALUE = f"s3cr3t-{uuid.uuid4().hex}"
TIMEOUT_S = 2.0


def _procs_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (proc.info["cmdline"] or [])):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def sandbox():
    os.environ[SECRET_NAME] = SECRET_VALUE  # the runner holds a secret the programs must not see
    sb = Sandbox(timeout_s=TIMEOUT_S, workers=2, memory_mb=512, max_procs=32, max_output_bytes=1 << 20).start()
    yield sb
    sb.close()
    os.environ.pop(SECRET_NAME, None)


def _worker_pids(sb: Sandbox) -> list[int]:
    return [w.proc.pid for w in sb._workers if w is not None]


def assert_healthy(sb: Sandbox, worker_pids: list[int]) -> None:
    """Runner alive and responsive, same workers, nothing left in any worker's namespace."""
    start = time.monotonic()
    assert sb.run("assert sum(range(10)) == 45").passed
    assert time.monotonic() - start < 2.0
    assert _worker_pids(sb) == worker_pids, "a worker died and was restarted"
    per_worker = 2 if sb.mode != "none" else 1  # unshare + python PID 1, or python alone
    deadline = time.monotonic() + 2
    while True:
        tagged = _procs_with(sb.tag)
        if len(tagged) == per_worker * sb.num_workers:
            break
        assert time.monotonic() < deadline, f"processes left behind: {[p.cmdline()[:3] for p in tagged]}"
        time.sleep(0.05)
    for pid in worker_pids:
        proc = psutil.Process(pid)
        leftovers = proc.children(recursive=True)
        assert len(leftovers) == per_worker - 1, [c.cmdline()[:3] for c in leftovers]


@pytest.fixture
def healthy(sandbox):
    pids = _worker_pids(sandbox)
    yield
    assert_healthy(sandbox, pids)


def test_verdict_strings():
    assert str(Verdict("passed")) == "passed"
    assert str(Verdict("failed", "AssertionError")) == "failed: AssertionError"
    assert str(Verdict("timed out", "over 2 s")) == "timed out"
    assert str(Verdict("resource limit", "memory")) == "resource limit: memory"
    assert Verdict("passed").passed and not Verdict("failed").passed
    assert Verdict.from_dict(Verdict("failed", "x", 1.0).to_dict()) == Verdict("failed", "x", 1.0)


def test_pass_fail_and_output(sandbox, healthy):
    v = sandbox.run("print('hello')\nimport sys\nprint('warn', file=sys.stderr)")
    assert v.status == "passed" and v.stdout == "hello\n" and v.stderr == "warn\n"
    v = sandbox.run("def f(x):\n    return x + 1\nassert f(1) == 3, 'off by one'")
    assert str(v) == "failed: AssertionError: off by one"
    v = sandbox.run("def broken(:\n")
    assert v.status == "failed" and v.detail.startswith("SyntaxError")
    v = sandbox.run("raise SystemExit(0)")
    assert v.status == "failed" and "SystemExit" in v.detail
    v = sandbox.run("import os\nos._exit(0)")  # leaving without finishing the tests is not a pass
    assert v.status == "failed" and "exited" in v.detail
    assert "namespaces" in sandbox.isolation or "NO network isolation" in sandbox.isolation


def test_fork_bomb(sandbox, healthy):
    v = sandbox.run("import os\nwhile True:\n    os.fork()\n")
    assert v.status == "resource limit" and "processes" in v.detail, v


def test_memory_bomb(sandbox, healthy):
    v = sandbox.run("x = bytearray(8 * 1024 ** 3)\n")
    assert v.status == "resource limit" and "memory" in v.detail, v
    v = sandbox.run("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))\n")
    assert v.status == "resource limit" and "memory" in v.detail, v


def test_infinite_loop(sandbox, healthy):
    start = time.monotonic()
    v = sandbox.run("while True:\n    pass\n")
    assert v.status == "timed out", v
    assert TIMEOUT_S <= time.monotonic() - start < TIMEOUT_S + 3


def test_sleep_forever(sandbox, healthy):
    v = sandbox.run("import time\ntime.sleep(10 ** 6)\n", timeout_s=1.0)
    assert v.status == "timed out", v
    assert v.duration_s < 2.5


def test_hundred_megabytes_of_output(sandbox, healthy):
    start = time.monotonic()
    v = sandbox.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n")
    assert v.status == "resource limit" and "output" in v.detail, v
    assert len(v.stdout) <= 16 * 1024
    assert time.monotonic() - start < TIMEOUT_S + 1


def test_files_outside_the_sandbox_untouched(sandbox, healthy, tmp_path):
    _check_files_untouched(sandbox, tmp_path)


def test_files_untouched_in_user_namespace_mode(monkeypatch, tmp_path):
    """Without an own uid (user namespaces, non-root runners) the mounts are made read-only."""
    if sandbox_mod.isolation_mode() == "none":
        pytest.skip("no namespaces here")
    monkeypatch.setattr(sandbox_mod, "isolation_mode", lambda: "user-ns")
    with Sandbox(timeout_s=TIMEOUT_S, workers=1) as sb:
        assert "read-only remount" in sb.start().isolation
        _check_files_untouched(sb, tmp_path)
        assert sb.run("import os\nopen('here.txt', 'w').write('x')\nopen('/dev/null', 'w').write('x')").passed


def _check_files_untouched(sandbox, tmp_path):
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    repo_dir = Path(__file__).resolve().parents[2] / "logs"  # a non-/tmp directory (contents git-ignored)
    repo_dir.mkdir(exist_ok=True)
    repo_canary = repo_dir / f"canary-{uuid.uuid4().hex}.txt"
    repo_canary.write_text("original")
    before = {p: (p.stat().st_mtime_ns, p.read_text()) for p in (canary, repo_canary)}
    listing = {d: sorted(os.listdir(d)) for d in (tmp_path, repo_dir)}
    try:
        program = f"""
import os, shutil
errors = []
for path in [{str(canary)!r}, {str(repo_canary)!r}]:
    for attempt in (lambda: open(path, "w").write("pwned"), lambda: os.remove(path),
                    lambda: open(os.path.join(os.path.dirname(path), "new-file"), "w").write("x"),
                    lambda: shutil.rmtree(os.path.dirname(path))):
        try:
            attempt()
        except OSError as exc:
            errors.append(type(exc).__name__)
open("inside.txt", "w").write("fine")  # the private working directory is writable
assert not errors, errors
"""
        v = sandbox.run(program)
        assert v.status == "failed" and ("PermissionError" in v.detail or "FileNotFoundError" in v.detail), v
        after = {p: (p.stat().st_mtime_ns, p.read_text()) for p in (canary, repo_canary)}
        assert after == before
        assert {d: sorted(os.listdir(d)) for d in (tmp_path, repo_dir)} == listing
    finally:
        repo_canary.unlink(missing_ok=True)


def test_private_working_directory_removed(sandbox, healthy):
    v = sandbox.run("import os\nprint(os.getcwd())\nopen('x.txt', 'w').write('x')\n")
    assert v.passed
    cwd = v.stdout.strip()
    v = sandbox.run(f"import os\nassert not os.path.exists({cwd!r}), 'previous work dir still there'\n")
    assert v.passed, v


def test_kill_the_parent_and_the_runner(sandbox, healthy):
    program = f"""
import os, signal
outcomes = []
for pid in (os.getppid(), 1, {os.getpid()}):
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        try:
            os.kill(pid, sig)
            outcomes.append("sent")
        except OSError as exc:
            outcomes.append(type(exc).__name__)
raise RuntimeError("still running after " + ",".join(outcomes))
"""
    v = sandbox.run(program)
    assert v.status == "failed" and "still running" in v.detail, v
    assert psutil.pid_exists(os.getpid())


def test_no_network(sandbox, healthy):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        program = f"""
import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    socket.create_connection(address, timeout=1).close()
"""
        v = sandbox.run(program)
        assert v.status == "failed" and ("OSError" in v.detail or "Error" in v.detail), v
        if sandbox.mode != "none":
            assert "unreachable" in v.detail.lower(), v
            with pytest.raises(BlockingIOError):
                server.accept()  # nobody connected
    finally:
        server.close()


def test_runner_environment_is_not_visible(sandbox, healthy):
    program = f"""
import os, glob
assert {SECRET_NAME!r} not in os.environ, "secret in the environment"
leaks = []
for path in glob.glob("/proc/*/environ"):
    try:
        if {SECRET_VALUE!r}.encode() in open(path, "rb").read():
            leaks.append(path)
    except OSError:
        pass
assert not leaks, leaks
print(sorted(os.environ))
"""
    v = sandbox.run(program)
    assert v.passed, v
    assert SECRET_VALUE not in v.stdout and SECRET_NAME not in v.stdout


def _background_program(marker: str) -> str:
    return f"""
import os
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 2; echo survived > /tmp/{marker}.txt; sleep 30", "{marker}"])
    os._exit(0)
os.waitpid(pid, 0)
"""


def _assert_background_killed(sb: Sandbox) -> None:
    marker = f"outlive-{uuid.uuid4().hex}"
    v = sb.run(_background_program(marker))
    assert v.passed, v
    assert _procs_with(marker) == []
    time.sleep(2.5)  # the moment the background process would have written its marker
    assert _procs_with(marker) == []
    assert not Path(f"/tmp/{marker}.txt").exists()


def test_background_process_does_not_outlive_the_run(sandbox, healthy):
    _assert_background_killed(sandbox)


def test_run_many_in_order_and_parallel(sandbox, healthy):
    programs = [f"assert {i} % 3 != 0" for i in range(12)] + ["import time\ntime.sleep(0.5)"] * 4
    start = time.monotonic()
    verdicts = sandbox.run_many(programs)
    assert [v.passed for v in verdicts[:12]] == [i % 3 != 0 for i in range(12)]
    assert all(v.passed for v in verdicts[12:])
    assert time.monotonic() - start < 4 * 0.5 * 0.9  # two workers share the sleeping programs


def test_no_isolation_refuses_unless_opted_out(monkeypatch):
    from routerllm.config import BenchmarkSection
    from routerllm.exceptions import SandboxError

    monkeypatch.setattr(sandbox_mod, "isolation_mode", lambda: "none")
    with pytest.raises(SandboxError, match="cannot isolate") as info:
        Sandbox(timeout_s=TIMEOUT_S, workers=1)
    assert "unsafe_no_sandbox" in str(info.value) + str(getattr(info.value, "fix", ""))
    with pytest.raises(SandboxError, match="cannot isolate"):
        sandbox_mod.open_sandbox(BenchmarkSection())
    with sandbox_mod.open_sandbox(BenchmarkSection(unsafe_no_sandbox=True, workers=1)) as sb:
        assert sb.unsafe_no_sandbox and sb.run("assert True").passed and sb.isolation.startswith("UNSAFE")


def test_fallback_without_namespaces_says_so_and_still_cleans_up(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "isolation_mode", lambda: "none")
    with Sandbox(timeout_s=TIMEOUT_S, workers=1, unsafe_no_sandbox=True) as sb:
        assert sb.run("assert True").passed
        assert "NO network isolation" in sb.isolation
        assert "NO network isolation" in sb.run("pass").isolation
        pids = _worker_pids(sb)
        _assert_background_killed(sb)
        v = sb.run("while True:\n    pass\n", timeout_s=1)
        assert v.status == "timed out"
        assert_healthy(sb, pids)


def test_bad_arguments():
    with pytest.raises(SandboxError, match="timeout_s"):
        Sandbox(timeout_s=0)
    sb = Sandbox(workers=1)
    sb.close()
    with pytest.raises(SandboxError, match="closed"):
        sb.run("pass")


def test_interrupted_wait_does_not_leak_a_late_verdict():
    """KeyboardInterrupt while a program runs: the next program must get its own verdict."""
    import threading

    with Sandbox(timeout_s=5, workers=1) as sb:
        sb.start()
        timer = threading.Timer(0.5, lambda: __import__("_thread").interrupt_main())
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            sb.run("import time\ntime.sleep(1.5)\nraise ValueError('late')")
        v = sb.run("assert 2 + 2 == 4")
        assert v.passed, v
        time.sleep(1.5)
        v = sb.run("raise KeyError('own')")
        assert v.status == "failed" and "own" in v.detail, v

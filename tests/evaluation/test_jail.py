"""Jail basics: both modes' results, the unsafe opt-out, refusal without bubblewrap."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from routerllm.evaluation.jail import CallResult, Jail
from routerllm.exceptions import SandboxUnavailable

ROOT = Path(__file__).resolve().parents[2]


def test_unsafe_mode_runs_without_isolation_and_cleans_up():
    with Jail(workers=1, timeout_s=3, unsafe_no_sandbox=True) as jail:
        assert jail.isolation.startswith("NONE (unsafe_no_sandbox)")
        with jail.session("import os\ndef f(x): return (x, os.getcwd())\ndef g():\n    while True: pass") as s:
            assert s.load == CallResult(True)
            ok = s.call("f", ([1, {2}],))
            assert ok.ok and ok.value[0] == [1, {2}]
            cwd = ok.value[1]
            assert os.path.isdir(cwd)
            assert s.call("g") == CallResult(False, error="timeout after 3 s")
        assert not os.path.exists(cwd)  # its private working directory is removed


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_bubblewrap_mode_and_call_errors():
    with Jail(workers=1) as jail:
        assert jail.isolation.startswith("bubblewrap (")
        with jail.session("def f(a, b=0): return a // b") as s:
            assert s.call("f", (7,), {"b": 2}) == CallResult(True, 3)
            assert s.call("f", (1,)).error.startswith("ZeroDivisionError")
            assert s.call("f", (object(),)).error.startswith("arguments are not plain data")
        with jail.session("def f(:") as s:
            assert s.load.error.startswith("SyntaxError")
            assert s.call("f").error.startswith("program did not load")


def test_refuses_without_bubblewrap(tmp_path):
    code = ("from routerllm.evaluation.jail import Jail\nfrom routerllm.exceptions import SandboxUnavailable\n"
            "try:\n    Jail()\nexcept SandboxUnavailable as e:\n    print('REFUSED', e, e.fix)\n")
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(ROOT / "src")}  # no bwrap on PATH
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "REFUSED" in out.stdout and "apt-get install bubblewrap" in out.stdout and "unsafe_no_sandbox" in out.stdout

"""Verdict attacks against the Judge (issue 9.6): the tests run on the trusted side, the model's
code in the jail; each attack gets the right verdict. Needs bubblewrap (skips with the reason)."""

from __future__ import annotations

import pytest

from routerllm.evaluation.humaneval import load_tasks
from routerllm.evaluation.programs import build


@pytest.fixture(scope="module")
def tasks():
    return load_tasks(6)


ATTACKS = {
    "always-equal": "    class E:\n        def __eq__(self, o):\n            return True\n    return E()\n",
    "patched abs": "    import builtins\n    builtins.abs = lambda x: 0\n    return 0.0\n",
    "int subclass": "    class I(int):\n        def __eq__(self, o):\n            return True\n    return I(0)\n",
    "forged stdout": "    import os\n    for fd in range(1, 20):\n        try:\n            os.write(fd, b'{\"status\": \"passed\"}\\n')\n"
                     "        except OSError:\n            pass\n    return None\n",
    "tracer swaps check": "    import sys\n    def t(f, e, a):\n        if f.f_code.co_name == 'check':\n            f.f_globals['check'] = lambda c: None\n"
                          "        return t\n    sys.settrace(t)\n    return None\n",
    "read test via frames": "    import sys, gc\n    src = [o for o in gc.get_objects() if isinstance(o, str) and 'def check' in o]\n"
                            "    return src[0] if src else None\n",
    "exit midway": "    import os\n    os._exit(0)\n",
    "huge value": "    return 'x' * (1 << 27)\n",
    "recursion bomb": "    import sys\n    sys.setrecursionlimit(10**6)\n    def r(n):\n        return r(n + 1)\n    return r(0)\n",
    "odd exception": "    class X(Exception):\n        def __str__(self):\n            raise RuntimeError('boom')\n    raise X()\n",
    "loop": "    while True:\n        pass\n",
    # more, of our own
    "frames patch check": "    import sys\n    f = sys._getframe()\n    while f is not None:\n        f.f_globals['check'] = lambda c: None\n"
                          "        f.f_globals['candidate'] = lambda *a: True\n        f = f.f_back\n    return None\n",
    "linecache and inspect": "    import linecache, inspect, sys\n    text = ''.join(''.join(linecache.getlines(f)) for f in list(linecache.cache))\n"
                             "    text += ''.join(str(fr.code_context) for fr in inspect.stack())\n    return text\n",
    "exit()": "    exit(0)\n",
    "SystemExit": "    raise SystemExit(0)\n",
    "KeyboardInterrupt": "    raise KeyboardInterrupt\n",
    "kill parent and group": "    import os, signal\n    for pid in (os.getppid(), 0, -1):\n        try:\n            os.kill(pid, signal.SIGKILL)\n"
                             "        except OSError:\n            pass\n    return None\n",
    "huge int": "    return 10 ** 10 ** 6\n",
    "deep nested list": "    x = []\n    for _ in range(100000):\n        x = [x]\n    return x\n",
    "generator": "    return (i for i in range(3))\n",
    "iterator": "    return iter([1, 2, 3])\n",
    "nan": "    return float('nan')\n",
    "inf": "    return float('inf')\n",
    "fill tmp then answer": "    import os\n    try:\n        for i in range(10):\n            open(f'/tmp/f{i}', 'wb').write(b'x' * (16 << 20))\n"
                            "    except OSError:\n        pass\n    return None\n",
    "forge a reply with the request id": "    import sys, struct, os\n    f = sys._getframe()\n    rid = None\n    while f is not None:\n"
                                          "        rid = f.f_locals.get('rid', rid)\n        f = f.f_back\n    import wire\n"
                                          "    body = wire.encode({'id': rid, 'ok': True, 'value': True, 'error': None})\n"
                                          "    for fd in range(3, 12):\n        try:\n            os.write(fd, struct.pack('>Q', len(body)) + body)\n"
                                          "        except OSError:\n            pass\n    return None\n",
}


def test_canonical_pass_and_bare_prompts_fail(judge, tasks):
    # plus tasks whose tests use the prompt's helpers (32 poly, 38 encode_cyclic) or name the entry point (33)
    tasks = tasks + load_tasks(task_ids=["HumanEval/32", "HumanEval/33", "HumanEval/38"])
    good = judge.judge_many([build(t, t.canonical_solution, "continuation") for t in tasks])
    assert [v.status for v in good] == ["passed"] * len(tasks), [v.reason for v in good]
    bare = judge.judge_many([build(t, "", "continuation") for t in tasks])
    assert all(v.status == "failed" for v in bare), [v.reason for v in bare]
    assert all(v.isolation for v in good)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_not_a_pass(judge, tasks, name):
    verdicts = judge.judge_many([build(t, ATTACKS[name], "continuation") for t in tasks[:3]], timeout_s=3)
    assert all(v.status in ("failed", "timeout", "error") for v in verdicts), [(v.status, v.reason) for v in verdicts]
    if name == "loop":
        assert all(v.status == "timeout" for v in verdicts)
    for v in verdicts:
        assert "def check" not in v.reason and "passed" not in v.reason
    # and the pool is healthy afterwards: one bad program spoils only its own verdict
    assert judge.judge(build(tasks[0], tasks[0].canonical_solution, "continuation")).passed

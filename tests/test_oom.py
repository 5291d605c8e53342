"""A batch that really runs out of memory is retried in halves, with a warning, and loses nothing.

The out-of-memory error is REAL, not injected: a fresh interpreter loads the tiny Llama (fp32,
sdpa attention) and then caps its own address space with RLIMIT_AS at what it already
maps plus OOM_HEADROOM_MB. Prefilling 32 rows of ~1000 tokens needs single allocations of ~120 MB
(measured: the 16-row prefill asks for 61 MB at once), which the cap refuses inside torch's CPU
allocator ("DefaultCPUAllocator: can't allocate memory"); 8 rows fit. The manager must halve
(32 -> 16 -> 8), answer every row exactly as the uncapped run did at batch 8, keep the smaller batch
size for later calls, and re-raise when even one row does not fit (nothing left to halve)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = 32
OOM_HEADROOM_MB = 100  # above the mapped address space when the cap is set (see the module docstring)

PROGRAM = textwrap.dedent('''
    import json, logging, resource, sys
    from routerllm.backends.base import GenerationRequest
    from routerllm.config import ModelConfig
    from routerllm.manager import LargeModelManager, is_out_of_memory

    warnings = []
    class Keep(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())
    logging.getLogger("routerllm.manager").addHandler(Keep(level=logging.WARNING))

    path, rows, headroom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    m = LargeModelManager(ModelConfig(name="tiny", model_id=path, dtype="float32", context_length=1024,
                                      max_new_tokens=4, batch_size=rows))
    m.load(progress=False)
    prompt = "def add(a, b):\\n    return a + b\\n" * 75
    reqs = [GenerationRequest(prompt + f"# {i}\\n", max_new_tokens=4) for i in range(rows)]
    m._batch_size = 8
    reference = [g.text for g in m.generate(reqs)]          # uncapped, 8 rows at a time
    m._batch_size = rows
    vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom * 2**20, resource.RLIM_INFINITY))
    out = m.generate(reqs)
    after = m.batch_size
    again = m.generate(reqs[:after])                     # the lowered size holds for later calls
    huge = GenerationRequest(prompt * 40, max_new_tokens=4)  # one row that cannot fit: nothing to halve
    try:
        m.generate([huge])
        single = "no error"
    except Exception as exc:
        single = "oom" if is_out_of_memory(exc) else f"other: {exc}"
    print(json.dumps({"same": [g.text for g in out] == reference, "answers": len(out),
                      "tokens": [g.completion_tokens for g in out], "batch_after": after,
                      "again": [g.text for g in again] == reference[:after], "warnings": warnings,
                      "single": single, "prompt_tokens": out[0].prompt_tokens}))
''')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status are Linux's")
def test_a_real_cpu_out_of_memory_halves_the_batch_and_loses_no_row(tiny_llama):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", PROGRAM, str(tiny_llama), str(ROWS), str(OOM_HEADROOM_MB)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["prompt_tokens"] > 900  # long rows: their prefill is what the cap refuses
    assert result["answers"] == ROWS and all(t == 4 for t in result["tokens"])  # no row lost
    assert result["same"], "a halved batch changed answers"
    assert result["batch_after"] < ROWS and ROWS % result["batch_after"] == 0  # halved, and kept
    assert result["again"]
    halvings = [w for w in result["warnings"] if "out of memory generating" in w]
    assert halvings and f"generating {ROWS} rows" in halvings[0] and "batch_size" in halvings[0]  # names the key
    assert result["single"] == "oom"  # one row that does not fit is an error, not a silent loss

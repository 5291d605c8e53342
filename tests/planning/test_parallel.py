"""TP x PP layouts, vLLM checks, and the generated commands."""

from __future__ import annotations

import subprocess

import pytest

from routerllm.catalog import get_spec
from routerllm.planning import memory, parallel

GB = 10**9


def _layout(name, tp, pp, gpu=80 * 2**30, quant="none"):
    spec = get_spec(name)
    return parallel.layout_memory(spec, tp, pp, weight_bytes_total=memory.weight_bytes_total(spec, quant),
                                  gpu_memory_bytes=gpu, context_length=4096, batch_size=1, kv_dtype_bytes=2,
                                  activation_bytes=0)


def test_tp_must_divide_heads():
    problems, _ = parallel.check_layout(get_spec("llama3_70b"), 3, 1)
    assert any("num_attention_heads=64 is not divisible by TP=3" in p for p in problems)
    problems, _ = parallel.check_layout(get_spec("falcon_180b"), 8, 1)  # 232 heads / 8 = 29
    assert problems == []
    problems, _ = parallel.check_layout(get_spec("falcon_180b"), 16, 1)  # 232 / 16 is not whole
    assert problems
    assert not _layout("llama3_70b", 3, 1).valid


def test_tp_beyond_kv_heads_replicates():
    problems, notes = parallel.check_layout(get_spec("llama3_70b"), 16, 1)  # 64 heads, 8 kv heads
    assert problems == [] and any("replicated" in n for n in notes)
    row = _layout("llama3_70b", 16, 1)
    assert row.kv_bytes == pytest.approx(get_spec("llama3_70b").kv_cache_bytes(4096, 1, 2) / 8, rel=1e-6)


def test_uneven_pipeline_is_allowed_with_a_note():
    problems, notes = parallel.check_layout(get_spec("llama3_405b"), 8, 4)  # 126 layers / 4
    assert problems == [] and any("unevenly" in n for n in notes)


def test_per_gpu_weights_split_by_tp_times_pp():
    spec = get_spec("llama3_70b")
    total = memory.weight_bytes_total(spec, "none")
    row = _layout("llama3_70b", 4, 2)
    assert row.weight_bytes == pytest.approx(total / 8, rel=1e-6)
    assert row.total_bytes == row.weight_bytes + row.kv_bytes + row.activation_bytes + row.overhead_bytes


def test_min_gpus_for_405b():
    spec = get_spec("llama3_405b")
    rows = parallel.layout_table(spec, weight_bytes_total=memory.weight_bytes_total(spec, "none"),
                                 gpu_memory_bytes=80 * 2**30, context_length=4096, batch_size=1, kv_dtype_bytes=2,
                                 activation_bytes=0)
    assert parallel.min_gpus(rows) == 12  # 812 GB of bf16 weights over 77 GB usable per GPU
    rows4 = parallel.layout_table(spec, weight_bytes_total=memory.weight_bytes_total(spec, "nf4"),
                                  gpu_memory_bytes=80 * 2**30, context_length=4096, batch_size=1, kv_dtype_bytes=2,
                                  activation_bytes=0)
    # 3 GPUs would hold 71.9 GB of NF4 weights each, but with vLLM's ~6 GiB per-GPU overhead (CUDA
    # context, NCCL, CUDA graphs: parallel.vllm_overhead_bytes) that is 79 GB of 77.3 GB usable
    assert parallel.min_gpus(rows4) == 4


def test_vllm_command_and_slurm_script_are_well_formed(tmp_path):
    row = _layout("llama3_405b", 8, 2)
    argv = parallel.vllm_serve_command("meta-llama/Llama-3.1-405B-Instruct", row, context_length=4096,
                                       quantization="nf4", multi_node=True)
    assert argv[:3] == ["vllm", "serve", "meta-llama/Llama-3.1-405B-Instruct"]
    assert argv[argv.index("--tensor-parallel-size") + 1] == "8"
    assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
    assert argv[argv.index("--quantization") + 1] == "bitsandbytes"
    assert "--distributed-executor-backend" in argv
    script = parallel.slurm_script(argv, nodes=2, gpus_per_node=8)
    assert "#SBATCH --nodes=2" in script and "ray start --head" in script and "vllm serve" in script
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)  # valid bash syntax


def test_vllm_quantizes_falcon_linears_transformers_does_not():
    spec = get_spec("falcon_180b")
    hf = memory.weight_bytes_total(spec, "nf4")
    vllm = memory.weight_bytes_total(spec, "nf4", engine="vllm")
    assert hf == memory.weight_bytes_total(spec, "none")
    assert vllm < hf / 3


def test_best_layout_prefers_tp_inside_a_node():
    spec = get_spec("llama3_405b")
    rows = parallel.layout_table(spec, weight_bytes_total=memory.weight_bytes_total(spec, "none"),
                                 gpu_memory_bytes=80 * 2**30, context_length=4096, batch_size=1, kv_dtype_bytes=2,
                                 activation_bytes=0)
    best = parallel.best_layout(rows, gpus_per_node=8)
    assert (best.tp, best.pp) == (8, 2)
    assert parallel.best_layout(rows).gpus == 12

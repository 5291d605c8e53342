"""Tensor x pipeline parallel layouts (vLLM-style), per-GPU memory, and the commands to run them.

Per GPU in a TP x PP layout (weights split evenly; vLLM shards every Linear and the vocabulary
across TP ranks and gives each PP stage a contiguous run of layers):

    weights   = total_weight_bytes / (TP x PP)
    KV        = KV of the stage's layers for the kv heads this rank holds: max(1, kv_heads / TP)
                heads (vLLM replicates KV heads when TP > kv_heads)
    activations, CUDA context: per GPU

vLLM's own rules (vllm/config: ModelConfig.verify_with_parallel_config):
- num_attention_heads % TP == 0 (otherwise vLLM refuses to start);
- kv heads: TP % kv_heads == 0 when TP > kv_heads (heads replicated), kv_heads % TP == 0 otherwise;
- layers need not divide by PP: vLLM splits unevenly (VLLM_PP_LAYER_PARTITION sets it by hand),
  the largest stage then bounds memory.
vLLM pre-allocates KV cache from `--gpu-memory-utilization` (default 0.9) of each GPU.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from routerllm.planning.memory import CUDA_CONTEXT_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from routerllm.catalog import ModelSpec

VLLM_GPU_MEMORY_UTILIZATION = 0.9  # vLLM default --gpu-memory-utilization

# What a vLLM worker holds per GPU besides weights, KV cache and activations, inside its
# --gpu-memory-utilization share (GiB = 2**30 B). Published per-GPU budgets for a 70B on 8 GPUs keep
# about 6 GiB for it; the parts, each from a measurement someone published:
# - the CUDA context: memory.CUDA_CONTEXT_BYTES (512 MiB; PyTorch docs, "CUDA semantics");
# - NCCL communicators and their buffers, multi-GPU only: ~3 GiB on GPU 0 at TP=8 before the model
#   loads (github.com/Sandermage/genesis-vllm-patches issue #24, "Initial setup eats 3Gb of memory on
#   GPU0 (RTX3090, tp=8)");
# - CUDA graphs captured after profiling: 0.62 GB for Llama-3-70B AWQ at TP=8 (vllm-project/vllm
#   PR #5515, "[Misc] Log cudagraph memory usage"), budgeted 1 GiB;
# - what profiling misses and the process still holds: 1.37 GiB over the requested budget per worker
#   at TP=8 (vllm-project/vllm PR #51590, vLLM 0.28), budgeted 1.5 GiB.
GiB = 2**30
VLLM_NCCL_BYTES = 3 * GiB
VLLM_CUDA_GRAPH_BYTES = 1 * GiB
VLLM_UNPROFILED_BYTES = 3 * GiB // 2


def vllm_overhead_bytes(gpus: int) -> int:
    """Per-GPU bytes a vLLM worker holds besides weights, KV and activations (see above): ~6 GiB
    with several GPUs, ~3 GiB on one (no NCCL)."""
    nccl = VLLM_NCCL_BYTES if gpus > 1 else 0
    return CUDA_CONTEXT_BYTES + nccl + VLLM_CUDA_GRAPH_BYTES + VLLM_UNPROFILED_BYTES
TP_SIZES = (1, 2, 4, 8, 16)
PP_SIZES = (1, 2, 3, 4, 6, 8, 16)


@dataclass
class Layout:
    tp: int
    pp: int
    gpus: int
    weight_bytes: int  # per GPU
    kv_bytes: int  # per GPU
    activation_bytes: int  # per GPU
    overhead_bytes: int  # per GPU
    total_bytes: int  # per GPU
    gpu_bytes: int  # usable per GPU (memory x utilization)
    fits: bool
    valid: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_layout(spec: "ModelSpec", tp: int, pp: int) -> tuple[list[str], list[str]]:
    """(problems that make vLLM refuse the layout, notes) for TP x PP on this model."""
    problems: list[str] = []
    notes: list[str] = []
    heads, kv, layers = spec.num_attention_heads, spec.num_kv_heads, spec.num_layers
    if tp < 1 or pp < 1:
        problems.append(f"TP and PP must be >= 1 (got TP={tp}, PP={pp})")
        return problems, notes
    if heads % tp:
        problems.append(f"num_attention_heads={heads} is not divisible by TP={tp}")
    if tp > kv and tp % kv:
        problems.append(f"TP={tp} > num_key_value_heads={kv} but not a multiple of it (KV heads cannot be replicated evenly)")
    elif tp <= kv and kv % tp:
        problems.append(f"num_key_value_heads={kv} is not divisible by TP={tp}")
    elif tp > kv:
        notes.append(f"TP={tp} > kv heads={kv}: each KV head is replicated on {tp // kv} GPUs")
    if pp > layers:
        problems.append(f"PP={pp} is more than the {layers} layers")
    elif layers % pp:
        notes.append(
            f"{layers} layers do not divide by PP={pp}: vLLM splits them unevenly "
            f"({math.ceil(layers / pp)} on the largest stage; VLLM_PP_LAYER_PARTITION sets it by hand)"
        )
    return problems, notes


def layout_memory(
    spec: "ModelSpec",
    tp: int,
    pp: int,
    *,
    weight_bytes_total: int,
    gpu_memory_bytes: int,
    context_length: int,
    batch_size: int,
    kv_dtype_bytes: int,
    activation_bytes: int,
    utilization: float = VLLM_GPU_MEMORY_UTILIZATION,
) -> Layout:
    problems, notes = check_layout(spec, tp, pp)
    gpus = tp * pp
    stage_layers = math.ceil(spec.num_layers / pp) if pp >= 1 else spec.num_layers
    weights = math.ceil(weight_bytes_total / max(gpus, 1))
    if pp > 1 and spec.num_layers % pp:
        weights = math.ceil(weight_bytes_total / max(tp, 1) * stage_layers / spec.num_layers)
    heads_per_rank = max(1, spec.num_kv_heads // max(tp, 1))
    kv_all = spec.kv_cache_bytes(context_length, batch_size, kv_dtype_bytes)
    kv = math.ceil(kv_all * stage_layers / spec.num_layers * heads_per_rank / spec.num_kv_heads)
    act = math.ceil(activation_bytes / max(tp, 1))
    overhead = vllm_overhead_bytes(gpus)
    total = weights + kv + act + overhead
    usable = int(gpu_memory_bytes * utilization)
    return Layout(tp, pp, gpus, weights, kv, act, overhead, total, usable, total <= usable and not problems,
                  not problems, problems, notes)


def layout_table(
    spec: "ModelSpec",
    *,
    weight_bytes_total: int,
    gpu_memory_bytes: int,
    context_length: int,
    batch_size: int,
    kv_dtype_bytes: int,
    activation_bytes: int,
    max_gpus: int = 64,
) -> list[Layout]:
    """Every TP x PP with TP in 1..16 (powers of two) and TP x PP <= max_gpus."""
    rows = []
    for tp in TP_SIZES:
        for pp in PP_SIZES:
            if tp * pp > max_gpus:
                continue
            rows.append(
                layout_memory(spec, tp, pp, weight_bytes_total=weight_bytes_total, gpu_memory_bytes=gpu_memory_bytes,
                              context_length=context_length, batch_size=batch_size, kv_dtype_bytes=kv_dtype_bytes,
                              activation_bytes=activation_bytes)
            )
    return rows


def min_gpus(rows: list[Layout]) -> int | None:
    """Fewest GPUs of a valid layout that fits (None: none in the table fits)."""
    fitting = [r.gpus for r in rows if r.fits]
    return min(fitting) if fitting else None


def best_layout(rows: list[Layout], gpus_per_node: int | None = None) -> Layout | None:
    """The layout to serve with: vLLM's recipe is tensor parallel inside a node and pipeline
    parallel across nodes, so prefer the largest valid TP that fits in a node (TP = GPUs per node
    when the heads allow) with the fewest pipeline stages; without a node size, the fewest GPUs."""
    fitting = [r for r in rows if r.fits and (gpus_per_node is None or r.tp <= gpus_per_node)]
    if not fitting:
        return None
    if gpus_per_node is None:
        return min(fitting, key=lambda r: (r.gpus, -r.tp))
    best_tp = max(r.tp for r in fitting)
    return min((r for r in fitting if r.tp == best_tp), key=lambda r: r.pp)


# --- commands ------------------------------------------------------------------------------------

_VLLM_QUANT = {"none": None, "nf4": "bitsandbytes", "int8": "fp8"}


def vllm_serve_command(
    model_id: str,
    layout: Layout,
    *,
    context_length: int,
    dtype: str = "bfloat16",
    quantization: str = "none",
    host: str = "0.0.0.0",
    port: int = 8001,
    multi_node: bool = False,
) -> list[str]:
    """argv of `vllm serve` for this layout. nf4 -> vLLM's in-flight bitsandbytes 4-bit; int8 ->
    fp8 weights (vLLM has no in-flight LLM.int8; fp8 is its 8-bit path)."""
    argv = ["vllm", "serve", model_id, "--host", host, "--port", str(port),
            "--tensor-parallel-size", str(layout.tp), "--pipeline-parallel-size", str(layout.pp),
            "--max-model-len", str(context_length), "--dtype", dtype,
            "--gpu-memory-utilization", str(VLLM_GPU_MEMORY_UTILIZATION)]
    quant = _VLLM_QUANT.get(quantization)
    if quant:
        argv += ["--quantization", quant]
    if multi_node:
        argv += ["--distributed-executor-backend", "ray"]
    return argv


def slurm_script(
    argv: list[str],
    *,
    nodes: int,
    gpus_per_node: int,
    job_name: str = "routerllm-vllm",
    time_limit: str = "24:00:00",
) -> str:
    """A Slurm batch script that starts a Ray cluster over `nodes` nodes and runs `vllm serve` on
    the head node (vLLM's documented multi-node recipe: Ray head + workers, then serve)."""
    cmd = shlex.join(argv)
    return f"""#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus_per_node}
#SBATCH --exclusive
#SBATCH --time={time_limit}
# Generated by `routerllm plan --engine vllm`. Needs vllm and ray installed on every node and the
# model weights reachable from every node (shared filesystem or HF cache).
set -euo pipefail
nodes=($(scontrol show hostnames "$SLURM_JOB_NODELIST"))
head_node=${{nodes[0]}}
head_ip=$(srun --nodes=1 --ntasks=1 -w "$head_node" hostname --ip-address | awk '{{print $1}}')
port=6379

srun --nodes=1 --ntasks=1 -w "$head_node" ray start --head --node-ip-address="$head_ip" --port=$port \\
    --num-gpus={gpus_per_node} --block &
sleep 15
for node in "${{nodes[@]:1}}"; do
  srun --nodes=1 --ntasks=1 -w "$node" ray start --address="$head_ip:$port" --num-gpus={gpus_per_node} --block &
done
sleep 30

srun --overlap --nodes=1 --ntasks=1 -w "$head_node" {cmd}
"""

"""Planning: pure arithmetic on a meta-device model (no I/O, nothing allocated).

    from routerllm.catalog import get_spec
    from routerllm.hardware import get_profile
    from routerllm.planning import PlanOptions, plan

    p = plan(get_spec("llama3_405b"), get_profile("3xA100-80GB").with_overrides(cpu_ram=200 * 10**9),
             PlanOptions(quantization="nf4", context_length=4096))
    p.verdict, p.device_map, p.devices, p.tokens_per_s_ceiling, p.throughput, p.estimates

Modules: memory (byte math), placement (accelerate device map with real bytes), speed (load time,
decode bound), batching (batch auto, throughput table), parallel (TP x PP table, vLLM command, Slurm
script), walk (the module walk a plan needs, without transformers), cache, planner (plan()).
Importing this package does not import torch/transformers/accelerate; plan() does, unless its
on-disk cache (planning.cache) holds the module walk (no transformers) or the whole plan (neither).
The cache is the only I/O: its results are the uncached ones (ROUTERLLM_PLANNING_CACHE=0 turns it off).
"""

from routerllm.planning.planner import DevicePlan, Plan, PlanOptions, plan

__all__ = ["DevicePlan", "Plan", "PlanOptions", "plan"]

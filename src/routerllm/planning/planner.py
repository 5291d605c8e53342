"""`plan(spec, hardware, options) -> Plan`: pure, no I/O, on a meta-device model.

Budgets. Per device the capacity is `options.max_memory[device]` when given (accelerate's meaning,
bytes), else the hardware's: GPU memory minus the CUDA context and `gpu_headroom_fraction`, CPU RAM
minus `cpu_headroom_fraction`, free disk. From each capacity the planner reserves what the device
needs besides weights (KV cache of the layers it executes, one layer's activations, the logits,
the CUDA context) and gives accelerate the rest as `max_memory`. Because KV depends on which layers
land where, and offloaded layers cost their unquantized size, it iterates: map, account, shrink
the reservations/budgets that were exceeded, map again (reservations only grow, so it stops).

Where the KV of a layer lives: on the GPU that holds the layer; for layers offloaded to cpu/disk
next to GPUs, on the main (first) GPU, which executes them under accelerate's hooks; on a CPU-only
machine, in RAM.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from routerllm.exceptions import PlanError
from routerllm.hardware import Hardware
from routerllm.planning import memory, parallel, speed
from routerllm.units import format_size

logger = logging.getLogger(__name__)

Verdict = Literal["fits_gpu", "cpu_offload", "disk_offload", "cannot_run"]
MAX_ITERATIONS = 10


@dataclass
class PlanOptions:
    """What to plan for. `max_memory` (bytes, accelerate keys: GPU ints, 'cpu', 'disk') overrides
    the hardware's capacities for the devices it names."""

    quantization: Literal["none", "int8", "nf4"] = "none"
    dtype: str = "bfloat16"
    context_length: int = 4096
    batch_size: int | Literal["auto"] = 1  # "auto": batching.search (may move layers off GPU for a batch)
    prompt_tokens: int = speed.DEFAULT_PROMPT_TOKENS  # per task, for the throughput figures (HumanEval ~160)
    max_new_tokens: int = 512  # per task, for the throughput figures (config models.*.max_new_tokens)
    max_memory: dict[int | str, int] | None = None
    offload_folder: str | None = None
    gpu_headroom_fraction: float = 0.05  # kept free for the CUDA caching allocator's fragmentation
    cpu_headroom_fraction: float = 0.10  # kept free for the OS and the Python process itself
    cuda_context_bytes: int = memory.CUDA_CONTEXT_BYTES
    double_quant: bool = True  # bnb_4bit_use_double_quant
    kv_dtype: str | None = None  # None: same as dtype
    reserve_runtime: bool = True  # plan KV cache and activations (False: weights only, like accelerate)
    max_parallel_gpus: int = 64  # largest TP x PP in the parallel table

    def validate(self) -> None:
        if self.quantization not in memory.QUANTIZATIONS:
            raise PlanError(f"options.quantization={self.quantization!r} is unknown",
                            fix=f"use one of: {', '.join(memory.QUANTIZATIONS)}")
        if str(self.dtype).replace("torch.", "") not in memory.DTYPE_BYTES:
            raise PlanError(f"options.dtype={self.dtype!r} is unsupported", fix=f"use one of: {', '.join(memory.DTYPE_BYTES)}")
        if self.kv_dtype is not None and self.kv_dtype not in memory.DTYPE_BYTES:
            raise PlanError(f"options.kv_dtype={self.kv_dtype!r} is unsupported", fix=f"use one of: {', '.join(memory.DTYPE_BYTES)}")
        for name in ("context_length", "batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if name == "batch_size" and value == "auto":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PlanError(f"options.{name}={value!r} must be a positive integer"
                                + (" or 'auto'" if name == "batch_size" else ""), fix=f"pass {name}=1 or more")
        if not isinstance(self.prompt_tokens, int) or isinstance(self.prompt_tokens, bool) or self.prompt_tokens < 0:
            raise PlanError(f"options.prompt_tokens={self.prompt_tokens!r} must be an integer >= 0",
                            fix="pass prompt_tokens=160 (a HumanEval prompt) or your prompts' length")
        for name in ("gpu_headroom_fraction", "cpu_headroom_fraction"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise PlanError(f"options.{name}={value!r} must be in [0, 1)", fix=f"pass e.g. {name}=0.05")
        if self.max_memory is not None:
            if not isinstance(self.max_memory, dict):
                raise PlanError("options.max_memory must be a dict {0: bytes, 'cpu': bytes, 'disk': bytes}",
                                fix="e.g. max_memory={0: 70 * 10**9, 'cpu': 200 * 10**9}")
            for key, value in self.max_memory.items():
                ok_key = (isinstance(key, int) and not isinstance(key, bool) and key >= 0) or key in ("cpu", "disk")
                if not ok_key:
                    raise PlanError(f"options.max_memory has unknown device {key!r}",
                                    fix="use GPU indices 0, 1, ... or 'cpu' / 'disk'")
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise PlanError(f"options.max_memory[{key!r}]={value!r} must be a number of bytes >= 0",
                                    fix="convert sizes with routerllm.units.parse_size('70GB')")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.max_memory is not None:
            out["max_memory"] = {str(k): int(v) for k, v in self.max_memory.items()}
        return out


@dataclass
class DevicePlan:
    device: int | str
    weight_bytes: int
    kv_bytes: int
    activation_bytes: int
    overhead_bytes: int  # GPU: the CUDA context
    total_bytes: int  # weights + KV + activations + overhead + headroom + offload staging
    budget_bytes: int  # the device's capacity (explicit max_memory or the hardware's)
    layers: list[int] = field(default_factory=list)
    quantized: bool = False  # whether Linear weights here are quantized
    offload_staging_bytes: int = 0  # main GPU: the largest offloaded module, copied in for its forward
    headroom_bytes: int = 0  # GPU: gpu_headroom_fraction of its memory, kept free for allocator fragmentation
    # what a decoding step does with this device's modules (speed.predict): parameters of its
    # linears (2 FLOPs each per token), their shapes ("in x out": count), its distinct tensors
    # (accelerate hooks move each offloaded one per forward), and the weight bytes a step reads
    # (an untied input embedding is looked up, not read whole)
    matmul_params: int = 0
    linear_shapes: dict[str, int] = field(default_factory=dict)
    tensor_count: int = 0
    read_bytes: int = 0

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def fits(self) -> bool:
        return self.device == "disk" or self.total_bytes <= self.budget_bytes

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["num_layers"] = self.num_layers
        out["fits"] = self.fits
        return out


@dataclass
class Plan:
    model: dict[str, Any]
    hardware: dict[str, Any]
    options: dict[str, Any]
    device_map: dict[str, int | str]  # as accelerate returns it: from_pretrained(device_map=...)
    no_split_modules: list[str]
    max_memory: dict[int | str, int]  # the weight budgets given to accelerate, bytes
    devices: list[DevicePlan]
    offloaded_modules: list[str]
    verdict: Verdict
    reason: str
    suggestions: list[str]
    load_time_floor_s: float  # read + copy at datasheet bandwidths: a real load takes longer
    decode_tokens_per_s_ceiling: float  # per sequence, at the plan's batch (speed.predict: 1 / step)
    tokens_per_s_ceiling: float  # the whole batch, prefill included (speed.predict)
    parallel: list[dict[str, Any]]
    min_gpus: int | None
    bnb_fp32_cpu_offload: bool = False  # pass llm_int8_enable_fp32_cpu_offload=True to BitsAndBytesConfig
    weight_bytes_total: int = 0  # all weights as transformers + bitsandbytes hold them
    notes: list[str] = field(default_factory=list)
    parallel_weight_bytes_total: int = 0  # all weights as vLLM holds them (the TP x PP table)
    # aggregate ceilings at batch 1, 4, 16, 64 and the plan's batch (batching.throughput_table)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    tasks_per_hour_ceiling: float = 0.0  # at the plan's batch, every task generating max_new_tokens
    batch_choice: dict[str, Any] | None = None  # batch_size "auto": batching.search's candidates and reason
    estimates: dict[str, Any] = field(default_factory=dict)  # floors on 50 / 164 tasks at the plan's batch
    warnings: list[str] = field(default_factory=list)  # the plan runs, but probably not as meant

    # the names before the floor/ceiling wording (kept for callers; not in to_dict)
    @property
    def predicted_load_time_s(self) -> float:
        return self.load_time_floor_s

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_tokens_per_s_ceiling

    @property
    def aggregate_tokens_per_s(self) -> float:
        return self.tokens_per_s_ceiling

    @property
    def batch_size(self) -> int:
        return int(self.options.get("batch_size") or 1)

    def device(self, device: int | str) -> DevicePlan:
        for d in self.devices:
            if d.device == device:
                return d
        raise KeyError(device)

    def raise_if_cannot_run(self) -> None:
        if self.verdict == "cannot_run":
            rows = "; ".join(
                f"{d.device}: needs {format_size(d.total_bytes)} of {format_size(d.budget_bytes)}" for d in self.devices
            )
            raise PlanError(
                f"{self.model.get('name')} cannot run on {self.hardware.get('name')}: {self.reason} ({rows})",
                fix="; ".join(self.suggestions) or "use more memory or a smaller model",
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device_map"] = {k: v for k, v in self.device_map.items()}
        out["max_memory"] = {str(k): int(v) for k, v in self.max_memory.items()}
        out["devices"] = [d.to_dict() for d in self.devices]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        """The Plan whose to_dict() (as JSON) is `data`."""
        names = {f.name for f in fields(cls)}
        dev_names = {f.name for f in fields(DevicePlan)}

        def key(k: Any) -> Any:
            return int(k) if isinstance(k, str) and k.isdigit() else k

        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["devices"] = [DevicePlan(**{k: v for k, v in d.items() if k in dev_names}) for d in data["devices"]]
        kwargs["max_memory"] = {key(k): v for k, v in data["max_memory"].items()}
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------------


def _capacities(hardware: Hardware, options: PlanOptions) -> tuple[dict[Any, int], dict[Any, int], dict[Any, bool]]:
    """(capacity per device, fixed overhead per device, explicit?) in accelerate keys."""
    explicit = dict(options.max_memory or {})
    caps: dict[Any, int] = {}
    overhead: dict[Any, int] = {}
    is_explicit: dict[Any, bool] = {}
    # accelerate uses exactly the devices a given max_memory names (plus disk, always last)
    if options.max_memory is not None:
        gpu_ids = sorted(k for k in explicit if isinstance(k, int))
    else:
        gpu_ids = sorted(g.index for g in hardware.gpus)
    phys = {g.index: g.memory_bytes for g in hardware.gpus}
    for i in gpu_ids:
        context = options.cuda_context_bytes
        if i in explicit:
            cap = int(explicit[i])
            if i in phys:  # an explicit budget cannot exceed what the card holds besides its context
                cap = min(cap, phys[i] - context)
            caps[i], overhead[i], is_explicit[i] = cap, context, True
        else:
            cap = phys[i]
            caps[i] = cap
            overhead[i] = context + int(cap * options.gpu_headroom_fraction)
            is_explicit[i] = False
    if options.max_memory is not None:  # no 'cpu' key: accelerate puts nothing on the CPU
        caps["cpu"], overhead["cpu"], is_explicit["cpu"] = int(explicit.get("cpu", 0)), 0, True
    else:
        caps["cpu"] = hardware.cpu_ram
        overhead["cpu"] = int(hardware.cpu_ram * options.cpu_headroom_fraction)
        is_explicit["cpu"] = False
    if "disk" in explicit:
        caps["disk"], is_explicit["disk"] = int(explicit["disk"]), True
    else:
        caps["disk"], is_explicit["disk"] = hardware.disk, False
    overhead["disk"] = 0
    return caps, overhead, is_explicit


def plan(spec: Any, hardware: Hardware, options: PlanOptions | None = None) -> Plan:
    """Plan `spec` (a ModelSpec) on `hardware` under `options`. Pure but for the planning cache
    (planning.cache: the module walk and whole plans on disk, the same results as without it)."""
    from routerllm.catalog import ModelSpec

    options = options or PlanOptions()
    if not isinstance(spec, ModelSpec):
        raise PlanError(f"spec must be a ModelSpec (got {type(spec).__name__})",
                        fix="pass routerllm.catalog.get_spec('llama3_405b') or get_spec('/path/to/checkpoint')")
    if not isinstance(hardware, Hardware):
        raise PlanError(f"hardware must be a Hardware (got {type(hardware).__name__})",
                        fix="pass routerllm.hardware.get_profile('3xA100-80GB') or detect_hardware()")
    if options.max_memory is not None and isinstance(options.max_memory, dict):
        # YAML/JSON give GPU indices as strings: accept "0" as 0, as accelerate's users write both
        options = replace(options, max_memory={(int(k) if isinstance(k, str) and k.isdigit() else k): v
                                               for k, v in options.max_memory.items()})
    options.validate()
    _check_architecture(spec)
    from routerllm.planning import cache

    # a detected machine's figures (free disk, measured CPU profile) change from run to run, and its
    # detection imports torch anyway: only named profiles get whole plans cached (the walk is cached for all)
    plan_key = _plan_key(spec, hardware, options) if cache.enabled() and not hardware.detected else None
    if plan_key is not None:
        hit = cache.load("plan", plan_key)
        if isinstance(hit, dict):
            try:
                result = Plan.from_dict(hit)
            except (TypeError, KeyError, ValueError) as exc:  # an entry of another layout: plan again
                logger.debug("ignoring cached plan %s: %s", plan_key, exc)
            else:
                for w in result.warnings:
                    logger.warning(w)
                return result
    from routerllm.planning.walk import cached_spec

    spec = cached_spec(spec)  # facts and the module walk from the on-disk cache: no transformers import
    from routerllm.planning import batching
    from routerllm.planning.placement import _SWAP_LOCK

    # the meta model is shared per spec and briefly altered while accelerate sizes it: one plan at a time
    plans: dict[int, Plan] = {}

    def plan_at(batch: int) -> Plan:
        if batch not in plans:
            # more rows need more KV and activations: past a batch that cannot run, none can
            smaller = [p for b, p in plans.items() if b < batch and p.verdict == "cannot_run"]
            plans[batch] = smaller[0] if smaller else _plan_once(spec, hardware, replace(options, batch_size=batch))
        return plans[batch]

    # the meta model is shared per spec and briefly altered while accelerate sizes it: one plan at a time
    with _SWAP_LOCK:
        if options.batch_size == "auto":
            result, choice = batching.search(plan_at)
            result.batch_choice = choice
        else:
            result = plan_at(int(options.batch_size))
        _finish(result)
        result.throughput = batching.throughput_table(result, lambda b: _finish(plan_at(b)))
        result.estimates = batching.task_estimates(result)
        mpe = spec.max_position_embeddings
        if mpe and options.context_length > mpe:
            msg = (f"context_length {options.context_length} is longer than {spec.name}'s max_position_embeddings {mpe}: "
                   f"positions past {mpe} were never trained (outputs degrade or the rotary cache errors); "
                   f"plan with --context {mpe} (context_length: {mpe}) or less")
            logger.warning(msg)
            result.warnings.append(msg)
        if plan_key is not None:
            cache.store("plan", plan_key, json.loads(json.dumps(result.to_dict(), default=str)))
        return result


PLAN_FORMAT = 1  # bump when Plan's fields change meaning (new fields invalidate through _code_version)


def _code_version() -> str:
    """A hash of the code a plan depends on (planning/, catalog, hardware, units) and of the library
    versions that shape it, so an upgraded routerllm, transformers or accelerate never reads a stale plan."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        import hashlib
        from importlib import metadata
        from pathlib import Path

        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.glob("*.py")) + [root.parent / n for n in ("catalog.py", "hardware.py", "units.py")]:
            h.update(path.name.encode())
            h.update(path.read_bytes())
        for dist in ("transformers", "accelerate", "torch", "bitsandbytes"):
            try:
                h.update(f"{dist}={metadata.version(dist)}".encode())
            except metadata.PackageNotFoundError:
                h.update(f"{dist}=none".encode())
        _CODE_VERSION = h.hexdigest()[:16]
    return _CODE_VERSION


_CODE_VERSION: str | None = None


def _plan_key(spec: Any, hardware: Hardware, options: PlanOptions) -> str:
    from routerllm.planning import cache

    from routerllm.planning.walk import config_identity

    return cache.key_of("plan", PLAN_FORMAT, _code_version(), spec.name, config_identity(spec),
                        spec.source, spec.path, spec.hub_id, hardware.to_dict(), options.to_dict())


# model types transformers' AutoModelForCausalLM builds that have no attention (so no KV cache to size)
ATTENTION_FREE = {"mamba": "Mamba", "mamba2": "Mamba-2", "falcon_mamba": "Falcon Mamba", "rwkv": "RWKV",
                  "xlstm": "xLSTM"}


def _check_architecture(spec: Any) -> None:
    """Refuse, naming the architecture, what the planner cannot size: a model that is not a causal
    (decoder-only) LM transformers can build, or one without attention layers."""
    if spec.source == "preset":
        return  # every preset is a decoder-only transformer (tests/test_catalog.py builds them all)
    mtype = spec.model_type
    archs = ", ".join(getattr(spec.config, "architectures", None) or []) or mtype
    fix = ("plan a decoder-only transformer with attention (what transformers' AutoModelForCausalLM builds, e.g. "
           "llama, mistral, qwen2, gemma3_text, falcon, gpt_bigcode, bloom), or a preset: "
           + ", ".join(_preset_names()))
    heads = getattr(spec.config, "num_attention_heads", None)
    if mtype in ATTENTION_FREE or not heads:
        kind = ATTENTION_FREE.get(mtype, mtype)
        raise PlanError(f"{spec.name}: architecture {kind} ({archs}) has no attention layers (a state-space or "
                        "recurrent model): the planner sizes the KV cache of attention layers and cannot plan it", fix=fix)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if mtype not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        what = ("an encoder-decoder (sequence-to-sequence) model" if getattr(spec.config, "is_encoder_decoder", False)
                else "not a causal language model")
        raise PlanError(f"{spec.name}: architecture {mtype} ({archs}) is {what}: transformers' AutoModelForCausalLM "
                        "has no class for it, so routerllm can neither plan nor load it", fix=fix)


def _preset_names() -> list[str]:
    from routerllm.catalog import preset_names

    return preset_names()


def _finish(result: Plan) -> Plan:
    """The speed figures of the plan at its own batch (speed.predict)."""
    from routerllm.planning import batching

    batch = result.batch_size
    prompt, new = batching.task_shape(result)
    pred = speed.predict(result, batch, prompt_tokens=prompt, new_tokens=new)
    result.decode_tokens_per_s_ceiling = 1.0 / pred.step_s
    result.tokens_per_s_ceiling = pred.tokens_per_s
    result.tasks_per_hour_ceiling = 3600.0 * batch / pred.total_s
    return result


def _plan_once(spec: Any, hardware: Hardware, options: PlanOptions) -> Plan:
    """One plan at options.batch_size (an int); a quantized cpu+disk map is planned as the plain load it is."""
    result = _plan(spec, hardware, options)
    if (options.quantization != "none" and "disk" in set(result.device_map.values())
            and not any(isinstance(v, int) for v in result.device_map.values())):
        # a cpu+disk map needs llm_int8_enable_fp32_cpu_offload, under which bitsandbytes quantizes
        # nothing that is on cpu or disk: the load is a plain one at the load dtype, so plan that
        plain = _plan(spec, hardware, replace(options, quantization="none"))
        plain.options = options.to_dict()
        plain.bnb_fp32_cpu_offload = True
        plain.notes.insert(0, f"{options.quantization} has no effect here: with no GPU the map needs disk, and "
                           "bitsandbytes keeps every cpu/disk module at the load dtype "
                           "(llm_int8_enable_fp32_cpu_offload); planned as an unquantized load")
        plain.suggestions = [s for s in plain.suggestions if "4-bit" not in s]
        result = plain
    return result


def _plan(spec: Any, hardware: Hardware, options: PlanOptions) -> Plan:
    from routerllm.planning.placement import place

    dtype = str(options.dtype).replace("torch.", "")
    nbytes = memory.dtype_bytes(dtype)
    kv_nbytes = memory.dtype_bytes(options.kv_dtype or dtype)
    tokens, batch = options.context_length, options.batch_size
    model = spec.meta_model(dtype)

    caps, fixed_overhead, is_explicit = _capacities(hardware, options)
    gpu_ids = [d for d in caps if isinstance(d, int)]
    exec_devices = gpu_ids or ["cpu"]
    act_layer = memory.activation_bytes(spec, tokens, batch, nbytes)
    logits = memory.logits_bytes(spec, batch)
    # one layer's activations, the logits and bitsandbytes' dequantized weight of the running layer
    act_res = {d: (act_layer + logits + memory.dequant_workspace_bytes(
                       model, options.quantization, "gpu" if isinstance(d, int) else "cpu", nbytes)
                   if (d in exec_devices and options.reserve_runtime) else 0) for d in caps}
    kv_res: dict[Any, int] = {d: 0 for d in caps}
    if options.reserve_runtime:  # first guess: KV spread like the weights, by capacity
        kv_all = spec.kv_cache_bytes(tokens, batch, kv_nbytes)
        total_cap = sum(caps[d] for d in exec_devices) or 1
        for d in exec_devices:
            kv_res[d] = min(int(kv_all * caps[d] / total_cap), caps[d])
    cpu_shrink = 0
    gpu_shrink: dict[Any, int] = {d: 0 for d in gpu_ids}
    staging: dict[Any, int] = {}
    placement = None
    budgets: dict[Any, int] = {}
    for _ in range(MAX_ITERATIONS):
        budgets = {}
        for d in caps:
            if d == "disk":
                continue
            b = caps[d] - fixed_overhead[d] - act_res[d] - kv_res[d] - (cpu_shrink if d == "cpu" else gpu_shrink.get(d, 0))
            budgets[d] = max(int(b), 0)
        # no 'disk' key: accelerate always ends with an unlimited disk; its capacity is checked after
        placement = place(model, budgets, quantization=options.quantization, load_dtype=dtype,
                          double_quant=options.double_quant)
        new_kv = _kv_by_device(spec, placement, tokens, batch, kv_nbytes, gpu_ids) if options.reserve_runtime else {}
        changed = False
        for d, v in new_kv.items():
            if v > kv_res.get(d, 0):
                kv_res[d] = v
                changed = True
        cpu_weights = placement.weight_bytes_by_device.get("cpu", 0)
        cpu_room = caps["cpu"] - fixed_overhead["cpu"] - act_res["cpu"] - kv_res["cpu"]
        if cpu_weights > cpu_room and cpu_room > 0 and budgets.get("cpu", 0) > 0:
            # offloaded modules cost their unquantized size while accelerate sized them quantized
            # (~3.9x for NF4), and accelerate leaves some tensors out (buffers of split parents):
            # scale the CPU budget by what it really held, so the next map fits
            target = int(budgets["cpu"] * cpu_room / cpu_weights * 0.999)
            cpu_shrink = max(cpu_shrink + 1, budgets["cpu"] + cpu_shrink - target)
            changed = True
        staging = _offload_staging(spec, placement, dtype, gpu_ids)
        for d, extra in staging.items():
            # an offloaded module is copied to the main GPU at load dtype for its forward; accelerate
            # keeps room for its largest (quantized-size) layer there, which usually covers it
            used_here = placement.weight_bytes_by_device.get(d, 0) + kv_res.get(d, 0) + act_res[d] + extra
            room = caps[d] - fixed_overhead[d]
            if used_here > room:
                gpu_shrink[d] = max(2 * gpu_shrink[d], gpu_shrink[d] + used_here - room)
                changed = True
        if not changed:
            break
    assert placement is not None

    kv_final = _kv_by_device(spec, placement, tokens, batch, kv_nbytes, gpu_ids) if options.reserve_runtime else {}
    devices: list[DevicePlan] = []
    used = list(dict.fromkeys(list(placement.device_map.values())))
    work = _work_by_device(model, placement.device_map, dtype)
    order = gpu_ids + ["cpu", "disk"]
    for d in order:
        w = placement.weight_bytes_by_device.get(d, 0)
        if d not in used and not isinstance(d, int):
            continue
        kv = kv_final.get(d, 0)
        act = act_res.get(d, 0) if (d in used or d in exec_devices) else 0
        if isinstance(d, int) and d not in used and kv == 0:
            act = 0
        over = fixed_overhead.get(d, 0) if d != "cpu" else 0
        # a GPU's fixed overhead is its CUDA context plus, unless its budget is explicit, the headroom
        head = int(caps[d] * options.gpu_headroom_fraction) if isinstance(d, int) and not is_explicit[d] else 0
        over -= head
        stage = staging.get(d, 0)
        devices.append(DevicePlan(
            device=d, weight_bytes=w, kv_bytes=kv, activation_bytes=act, overhead_bytes=over,
            total_bytes=w + kv + act + over + head + stage, offload_staging_bytes=stage, headroom_bytes=head,
            budget_bytes=caps[d] if d != "cpu" else caps["cpu"] - fixed_overhead["cpu"],
            layers=placement.layers_by_device.get(d, []), quantized=d in placement.quantized_on,
            matmul_params=work.get(d, {}).get("matmul_params", 0),
            linear_shapes=dict(work.get(d, {}).get("linear_shapes", {})),
            tensor_count=work.get(d, {}).get("tensor_count", 0),
            read_bytes=max(0, w - work.get(d, {}).get("lookup_bytes", 0)),
        ))

    weight_total = memory.weight_bytes_total(spec, options.quantization, dtype)
    verdict, reason, notes = _verdict(placement, devices, gpu_ids, options)
    load_bytes = _load_bytes(spec, placement, dtype)
    est = speed.estimate(
        hardware,
        {d.device: d.weight_bytes for d in devices if d.weight_bytes},
        {d.device: d.kv_bytes for d in devices},
        load_bytes=load_bytes,
        checkpoint_bytes=spec.param_count * nbytes,
        batch_size=batch,
    )
    gpu_mem = _gpu_memory(hardware, caps, gpu_ids)
    vllm_weights = (weight_total if options.quantization == "none"
                    else memory.weight_bytes_total(spec, options.quantization, dtype, engine="vllm"))
    rows = parallel.layout_table(
        spec, weight_bytes_total=vllm_weights, gpu_memory_bytes=gpu_mem, context_length=tokens, batch_size=batch,
        kv_dtype_bytes=kv_nbytes, activation_bytes=act_layer + logits, max_gpus=options.max_parallel_gpus,
    ) if gpu_mem else []
    need = parallel.min_gpus(rows) if rows else None
    suggestions = _suggestions(spec, hardware, options, verdict, devices, gpu_ids, need, gpu_mem, kv_nbytes)
    bnb_flag = options.quantization != "none" and bool(set(used) & {"cpu", "disk"}) and set(used) != {"cpu"}
    if options.quantization != "none" and set(used) & {"cpu", "disk"} and set(used) != {"cpu"}:
        notes.append("offloaded modules stay unquantized (bitsandbytes needs llm_int8_enable_fp32_cpu_offload=True "
                     "for such maps and does not quantize cpu/disk modules): they cost the load dtype")
    if options.quantization != "none" and not memory.quantizable_linears(model, options.quantization):
        kinds = sorted({type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__})
        notes.append(f"{options.quantization} has no effect on {spec.name}: transformers' bitsandbytes integration "
                     f"replaces only modules whose type is exactly nn.Linear, and this model's are {', '.join(kinds)} "
                     "(checked with transformers 5.23); every weight stays at the load dtype")
    if "disk" in used and options.offload_folder is None:
        notes.append("the map offloads to disk: pass offload_folder (e.g. ./offload) to from_pretrained")
    return Plan(
        model={**_spec_summary(spec)},
        hardware=hardware.to_dict(),
        options=options.to_dict(),
        device_map=dict(placement.device_map),
        no_split_modules=placement.no_split_modules,
        max_memory=budgets,
        devices=devices,
        offloaded_modules=placement.offloaded_modules,
        verdict=verdict,
        reason=reason,
        suggestions=suggestions,
        load_time_floor_s=est.load_time_s,
        decode_tokens_per_s_ceiling=est.decode_tokens_per_s,  # replaced by speed.predict in _finish
        tokens_per_s_ceiling=est.aggregate_tokens_per_s,
        parallel=[r.to_dict() for r in rows],
        min_gpus=need,
        bnb_fp32_cpu_offload=bnb_flag,
        weight_bytes_total=weight_total,
        notes=notes,
        parallel_weight_bytes_total=vllm_weights,
    )


def _spec_summary(spec: Any) -> dict[str, Any]:
    return {
        "name": spec.name, "model_type": spec.model_type, "hub_id": spec.hub_id, "source": spec.source,
        "path": spec.path, "num_layers": spec.num_layers, "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_attention_heads, "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim, "vocab_size": spec.vocab_size, "param_count": spec.param_count,
        "intermediate_size": spec.intermediate_size, "max_position_embeddings": spec.max_position_embeddings,
        "layer_windows": spec.layer_windows(),
        "lm_head_params": spec.vocab_size * spec.hidden_size,
        "lm_head_shape": f"{spec.hidden_size}x{spec.vocab_size}",
    }


def _work_by_device(model: Any, device_map: dict[str, Any], dtype: str) -> dict[Any, dict[str, Any]]:
    """Per device of `device_map`: matmul parameters, linear shapes ("in x out": count), distinct
    parameter tensors, and bytes of untied input embeddings (looked up, not read, per step)."""
    from routerllm.planning.placement import device_of

    out: dict[Any, dict[str, Any]] = {}

    def slot(dev: Any) -> dict[str, Any]:
        return out.setdefault(dev, {"matmul_params": 0, "linear_shapes": {}, "tensor_count": 0, "lookup_bytes": 0})

    params, embeddings, linears = _work_items(model)
    for name in params:
        slot(device_of(name, device_map))["tensor_count"] += 1
    nbytes = memory.dtype_bytes(dtype)
    for name, numel in embeddings:
        slot(device_of(name, device_map))["lookup_bytes"] += numel * nbytes
    for name, numel, key in linears:
        s = slot(device_of(name, device_map))
        s["matmul_params"] += numel
        s["linear_shapes"][key] = s["linear_shapes"].get(key, 0) + 1
    return out


def _work_items(model: Any) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int, str]]]:
    """(distinct parameter names, untied input embeddings (name, numel), linears (name, numel, "in x out")),
    memoized per meta model (its structure never changes)."""
    memo = memory._cache(model)
    if "work_items" not in memo:
        from torch import nn

        seen: set[int] = set()
        params = []
        for name, param in model.named_parameters():
            if id(param) not in seen:
                seen.add(id(param))
                params.append(name)
        out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        out_w = getattr(out_emb, "weight", None)
        embeddings, linears = [], []
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if weight is None or weight.dim() != 2:
                continue
            if isinstance(module, nn.Embedding):
                if weight is not out_w:
                    embeddings.append((name, weight.numel()))
                continue
            if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
                in_f, out_f = (weight.shape[1], weight.shape[0]) if isinstance(module, nn.Linear) else weight.shape
                linears.append((name, weight.numel(), f"{int(in_f)}x{int(out_f)}"))
        memo["work_items"] = (params, embeddings, linears)
    return memo["work_items"]


def _kv_by_device(spec: Any, placement: Any, tokens: int, batch: int, kv_nbytes: int, gpu_ids: list[int]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    used_gpus = [d for d in placement.device_map.values() if isinstance(d, int)]
    main = used_gpus[0] if used_gpus else (gpu_ids[0] if gpu_ids else "cpu")
    for dev, layers in placement.layers_by_device.items():
        if not layers:
            continue
        target = dev if isinstance(dev, int) else main
        out[target] = out.get(target, 0) + spec.kv_cache_bytes(tokens, batch, kv_nbytes, layers)
    return out


def _offload_staging(spec: Any, placement: Any, dtype: str, gpu_ids: list[int]) -> dict[Any, int]:
    """{main GPU: bytes of the largest module offloaded to cpu/disk, at load dtype}.

    accelerate's hooks (attach_align_device_hook, place_submodules=False) bring each offloaded leaf
    module's weights to the execution device just for its forward pass, one at a time."""
    used_gpus = [d for d in placement.device_map.values() if isinstance(d, int)]
    if not used_gpus or not placement.offloaded_modules:
        return {}
    full = memory.tensor_bytes_map(spec.meta_model(dtype), "none", dtype, set())
    offloaded = set(placement.offloaded_modules)
    per_module: dict[str, int] = {}
    for name, size in full.items():
        module = name.rsplit(".", 1)[0] if "." in name else ""
        parts = module.split(".") if module else []
        # the module or one of its parents is an offloaded map key ("" offloads everything)
        if "" in offloaded or any(".".join(parts[:i]) in offloaded for i in range(1, len(parts) + 1)):
            per_module[module] = per_module.get(module, 0) + size
    return {used_gpus[0]: max(per_module.values(), default=0)}


def _load_bytes(spec: Any, placement: Any, dtype: str) -> dict[Any, int]:
    """Bytes per device at the load dtype (what is read and copied before bnb quantizes)."""
    from routerllm.planning.placement import device_of

    full = memory.tensor_bytes_map(spec.meta_model(dtype), "none", dtype, set())
    out: dict[Any, int] = {}
    for name, size in full.items():
        d = device_of(name, placement.device_map)
        out[d] = out.get(d, 0) + size
    return out


def _gpu_memory(hardware: Hardware, caps: dict[Any, int], gpu_ids: list[int]) -> int:
    if hardware.gpus:
        return hardware.gpus[0].memory_bytes
    if gpu_ids:
        return caps[gpu_ids[0]]
    return 0


def _verdict(placement: Any, devices: list[DevicePlan], gpu_ids: list[int], options: PlanOptions) -> tuple[str, str, list[str]]:
    notes: list[str] = []
    used = set(placement.device_map.values())
    by = {d.device: d for d in devices}
    for d in devices:
        if isinstance(d.device, int) and d.total_bytes > d.budget_bytes:
            return ("cannot_run",
                    f"GPU {d.device} needs {format_size(d.total_bytes)} (weights {format_size(d.weight_bytes)}, "
                    f"KV {format_size(d.kv_bytes)}, activations {format_size(d.activation_bytes)}, CUDA context "
                    f"{format_size(d.overhead_bytes)}, headroom {format_size(d.headroom_bytes)}) but has "
                    f"{format_size(d.budget_bytes)}", notes)
    if used == {"disk"}:
        return ("cannot_run", "every module would be offloaded to disk; accelerate/safetensors cannot dispatch a "
                "disk-only map (the execution device must hold at least one block)", notes)
    cpu = by.get("cpu")
    if cpu is not None and cpu.total_bytes > cpu.budget_bytes:
        return ("cannot_run", f"CPU RAM: needs {format_size(cpu.total_bytes)} but {format_size(cpu.budget_bytes)} is usable",
                notes)
    disk = by.get("disk")
    if disk is not None and disk.weight_bytes > disk.budget_bytes:
        return ("cannot_run", f"disk: offloading needs {format_size(disk.weight_bytes)} at the offload folder but "
                f"{format_size(disk.budget_bytes)} is free", notes)
    n_layers = len(placement.layer_names)
    if "disk" in used:
        return ("disk_offload",
                f"{len(by['disk'].layers)} of {n_layers} layers ({format_size(by['disk'].weight_bytes)}) are offloaded "
                "to disk and read back at every forward pass", notes)
    if not gpu_ids:
        return ("cpu_offload", f"no GPU: all {n_layers} layers run on the CPU from RAM "
                f"({format_size(cpu.weight_bytes if cpu else 0)} of weights)", notes)
    if "cpu" in used:
        return ("cpu_offload",
                f"{len(by['cpu'].layers)} of {n_layers} layers ({format_size(by['cpu'].weight_bytes)}) are offloaded to "
                "CPU RAM and copied to the GPU at every forward pass", notes)
    return ("fits_gpu", f"all {n_layers} layers fit on {len([d for d in used if isinstance(d, int)])} GPU(s) with room "
            "for the KV cache and activations", notes)


def _suggestions(spec: Any, hardware: Hardware, options: PlanOptions, verdict: str, devices: list[DevicePlan],
                 gpu_ids: list[int], need: int | None, gpu_mem: int, kv_nbytes: int) -> list[str]:
    if verdict == "fits_gpu":
        return []
    out: list[str] = []
    gpu_name = hardware.gpus[0].name if hardware.gpus else "GPU"
    if need is not None and gpu_mem:
        out.append(f"{need} x {gpu_name} ({format_size(gpu_mem)}) hold it on GPUs with "
                   f"{options.quantization if options.quantization != 'none' else options.dtype} weights "
                   f"(tensor/pipeline parallel, e.g. vLLM){' - you have ' + str(len(gpu_ids)) if gpu_ids else ''}")
    elif gpu_mem:
        out.append(f"no layout of up to {options.max_parallel_gpus} x {gpu_name} holds it at this setting")
    if options.quantization != "nf4":
        w4 = memory.weight_bytes_total(spec, "nf4", str(options.dtype).replace("torch.", ""))
        out.append(f"4-bit NF4 (--quant nf4 / use_4bit: true) shrinks the weights to {format_size(w4)}")
    # a shorter context: what is left on the GPUs after the weights, over KV bytes per token
    gpu_devs = [d for d in devices if isinstance(d.device, int)]
    if gpu_devs:
        weights_all = memory.weight_bytes_total(spec, options.quantization, str(options.dtype).replace("torch.", ""))
        room = sum(d.budget_bytes - d.overhead_bytes - d.headroom_bytes - d.activation_bytes for d in gpu_devs) - weights_all
        per_token = spec.kv_bytes_per_token(kv_nbytes) * options.batch_size
        if room > 0 and per_token > 0:
            max_tokens = int(room // per_token) // 256 * 256
            if 256 <= max_tokens < options.context_length:
                out.append(f"a shorter context: --context {max_tokens} (KV {format_size(per_token)}/token at batch "
                           f"{options.batch_size}) leaves room for all weights on the GPUs")
    if verdict == "cannot_run":
        cpu = next((d for d in devices if d.device == "cpu"), None)
        if cpu is not None and cpu.total_bytes > cpu.budget_bytes:
            out.append(f"more CPU RAM (--cpu-ram): needs {format_size(cpu.total_bytes)}")
            if not any(d.device == "disk" for d in devices):
                out.append("allow disk offload: set offload_folder and a 'disk' budget")
    return out

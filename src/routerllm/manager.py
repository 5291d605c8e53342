"""LargeModelManager: carry out a plan with transformers/accelerate, generate, measure, unload.

    manager = LargeModelManager(config.models.large_llm)          # hardware: detected, or pass one
    plan = manager.plan()                                          # pure planner, no weights touched
    info = manager.load()                                          # refuses BEFORE loading if RAM/disk/GPU
                                                                   # cannot hold what the plan needs
    [gen] = manager.generate([GenerationRequest("def add(a, b):", stop=["\\ndef "])])
    print(manager.memory_report().table())                         # measured vs planned, per device
    manager.unload()                                               # idempotent

Loading: `from_pretrained(checkpoint, device_map=<plan's map>, dtype=..., offload_folder=...,
quantization_config=BitsAndBytesConfig(...), attn_implementation=...)`. transformers builds the
model with empty (meta) weights and accelerate dispatches each module to its device, with hooks
that stream CPU- and disk-offloaded weights in for each forward pass. Quantization:
`use_4bit` -> NF4 (or FP4) with double quantization and the config's dtype as compute dtype;
`use_8bit` -> LLM.int8(). When the map offloads to cpu/disk beside GPUs,
`llm_int8_enable_fp32_cpu_offload=True` keeps offloaded modules unquantized (bitsandbytes cannot
quantize them), as the planner accounts.

Attention: flash_attention_2 when asked (`use_flash_attention`), on CUDA, with `flash_attn`
installed and supported by the model class; else sdpa; else eager (e.g. Bloom has no sdpa path in
transformers 5). `LoadInfo.attn_implementation` and `.attn_reason` say which and why.

Generation: requests with the same (temperature, seed) are batched (left padding, up to
`batch_size` rows: the config's integer, or for `batch_size: auto` the planner's choice on this
tier's plan); greedy at temperature 0, else sampling seeded by `request.seed`. A StoppingCriteria
ends each row at its first stop sequence, EOS or its own `max_new_tokens`, and the text is cut at
the first stop. Time to first token comes from a streamer's first new-token call; a row's
`total_s` runs until that row stopped (`extra["batch_total_s"]`: the whole batch). A batch that
runs out of memory (CUDA or CPU allocator) is retried in halves, with a warning, and the tier keeps
the smaller batch size: no request is lost to it.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routerllm.backends.base import Generation, GenerationRequest
from routerllm.exceptions import CatalogError, ModelLoadError
from routerllm.model_source import ResolvedModel, classify, hub_config_dir, resolve_model
from routerllm.procmem import copy_tensors_out_of_mappings, mapped_resident_bytes, release_free_heap
from routerllm.units import format_size

if TYPE_CHECKING:
    from routerllm.config import ModelConfig

logger = logging.getLogger(__name__)

# Headroom kept free when checking RAM before a load: the interpreter, torch and the tokenizer
# already live in the process; 5% of what is available covers allocator slack (measured: the Gemma
# 270M bf16 load peaks ~3% above its planned bytes on this CPU).
RAM_SLACK_FRACTION = 0.05


@dataclass
class ResourceCheck:
    """One pre-flight check of a resource against the plan."""

    name: str  # "gpu 0", "ram", "disk"
    ok: bool
    needed_bytes: int
    available_bytes: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadInfo:
    """What `load()` did."""

    model_id: str
    checkpoint: str
    source: str  # pypi | gguf | local | hub
    quantization: str  # none | int8 | nf4 (or fp4)
    dtype: str
    attn_implementation: str
    attn_reason: str
    device_map: dict[str, Any]
    offload_folder: str | None
    resolve_s: float
    load_s: float
    converted_now: bool
    rss_before_model_bytes: int = 0  # process RSS after the tokenizer loaded, before the weights
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeviceMemory:
    """Measured vs planned bytes on one device."""

    device: str
    planned_bytes: int | None  # plan total (weights + KV + activations + overhead)
    planned_weight_bytes: int | None
    weight_bytes: int  # parameters + buffers (+ quantization constants) placed there, measured
    resident_bytes: int | None  # cuda: memory_allocated; cpu: RSS added since just before the weights
    # loaded (MemoryReport.model_rss_bytes); disk: bytes written to the
    # offload folder (0 when accelerate reads a safetensors checkpoint in place instead of copying it)
    peak_bytes: int | None = None  # cuda: max_memory_allocated

    @property
    def weight_ratio(self) -> float | None:
        return self.weight_bytes / self.planned_weight_bytes if self.planned_weight_bytes else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "weight_ratio": self.weight_ratio}


@dataclass
class MemoryReport:
    devices: list[DeviceMemory]
    rss_bytes: int
    # RSS added since just before the weights loaded: weights that were read (safetensors are
    # memory-mapped, so pages count once touched, including disk-offloaded ones streamed through the
    # page cache), KV cache, activations and allocator slack
    model_rss_bytes: int = 0
    # of the RSS: pages of memory-mapped safetensors checkpoints (weights read in place); 0 off Linux
    checkpoint_mapped_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"rss_bytes": self.rss_bytes, "model_rss_bytes": self.model_rss_bytes,
                "checkpoint_mapped_bytes": self.checkpoint_mapped_bytes,
                "devices": [d.to_dict() for d in self.devices]}

    def table(self):
        """A rich Table: device | weights measured | weights planned | ratio | resident | planned total."""
        from rich.table import Table

        table = Table(title="Memory per device (measured vs plan)",
                      caption=f"cpu resident: RSS the model added (process RSS {format_size(self.rss_bytes)}, "
                              f"with the tokenizer and libraries; checkpoint pages mapped "
                              f"{format_size(self.checkpoint_mapped_bytes)})")
        for col in ("device", "weights measured", "weights planned", "ratio", "resident", "planned total"):
            table.add_column(col, justify="right" if col != "device" else "left")
        fmt = lambda b: "-" if b is None else format_size(b)  # noqa: E731
        for d in self.devices:
            ratio = d.weight_ratio
            resident = fmt(d.resident_bytes) + (f" (peak {fmt(d.peak_bytes)})" if d.peak_bytes else "")
            table.add_row(d.device, fmt(d.weight_bytes), fmt(d.planned_weight_bytes),
                          "-" if ratio is None else f"{ratio:.3f}", resident, fmt(d.planned_bytes))
        return table


class _OncePerMessage(logging.Filter):
    """Let a repeated library warning through once (bitsandbytes 0.50 logs 'MatMul8bitLt: inputs will
    be cast from torch.bfloat16 to float16' on every int8 matmul call)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


_BNB_LOGGER = "bitsandbytes.autograd._functions"


def _quiet_bnb_int8_casts() -> None:
    bnb_logger = logging.getLogger(_BNB_LOGGER)
    if not any(isinstance(f, _OncePerMessage) for f in bnb_logger.filters):
        bnb_logger.addFilter(_OncePerMessage())


# --- generation helpers (import torch/transformers lazily) ----------------------------------------


def _stop_criteria_class():
    import torch
    from transformers import StoppingCriteria

    class StopOnText(StoppingCriteria):
        """Per row: stop at the first stop sequence in the new text, at EOS, or at the row's own limit."""

        def __init__(self, tokenizer, prompt_len: int, stops: list[list[str]], limits: list[int],
                     eos: set[int] | None = None) -> None:
            self.tokenizer = tokenizer
            self.prompt_len = prompt_len
            self.stops = stops
            self.limits = limits
            self.eos = eos or set()
            self.done_at: list[int | None] = [None] * len(stops)  # new-token count when the row stopped
            self.done_time: list[float | None] = [None] * len(stops)  # perf_counter when it stopped
            self.window = [max((len(s) for s in row), default=0) + 4 for row in stops]

        def __call__(self, input_ids, scores, **kwargs):
            new = input_ids[:, self.prompt_len:]
            n = new.shape[1]
            done = []
            for i in range(new.shape[0]):
                if self.done_at[i] is None:
                    hit = n >= self.limits[i] or (n > 0 and int(new[i, -1]) in self.eos)
                    if not hit and self.stops[i]:
                        tail = self.tokenizer.decode(new[i, -self.window[i]:], skip_special_tokens=True)
                        hit = any(s in tail for s in self.stops[i])
                    if hit:
                        self.done_at[i] = n
                        self.done_time[i] = time.perf_counter()
                done.append(self.done_at[i] is not None)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopOnText


class _FirstTokenTimer:
    """A generate() streamer that only timestamps the first new tokens (the first put() is the prompt)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_token_at: float | None = None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


# What an allocation failure looks like at run time (torch 2.13): CUDA raises torch.OutOfMemoryError
# ("CUDA out of memory. Tried to allocate ..."); the CPU allocator raises a plain RuntimeError
# ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes" / "... not enough
# memory: ..."); code that allocates through Python (numpy, tokenizers) raises MemoryError.
_OOM_TEXT = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """True when `exc` is a failed allocation that a smaller batch can avoid."""
    if isinstance(exc, MemoryError):
        return True
    oom_type = None
    try:
        import torch

        oom_type = getattr(torch, "OutOfMemoryError", None)
    except ImportError:  # pragma: no cover
        pass
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _OOM_TEXT)


def _tensor_bytes(t) -> int:
    """Bytes of a parameter or buffer, with bitsandbytes' quantization constants (absmax, SCB)."""
    total = t.numel() * t.element_size()
    state = getattr(t, "quant_state", None)
    if state is not None:
        for attr in ("absmax", "code"):
            v = getattr(state, attr, None)
            if v is not None and hasattr(v, "numel"):
                total += v.numel() * v.element_size()
        nested = getattr(state, "state2", None)
        if nested is not None:
            for attr in ("absmax", "code"):
                v = getattr(nested, attr, None)
                if v is not None and hasattr(v, "numel"):
                    total += v.numel() * v.element_size()
        offset = getattr(state, "offset", None)
        if offset is not None and hasattr(offset, "numel"):
            total += offset.numel() * offset.element_size()
    scb = getattr(t, "SCB", None)
    if scb is not None and hasattr(scb, "numel"):
        total += scb.numel() * scb.element_size()
    return total


def _dir_bytes(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _device_key(device: Any) -> str:
    """'0' for GPU 0 (int or 'cuda:0'), 'cpu', 'disk', 'mps'."""
    text = str(device)
    return text.removeprefix("cuda:")


# --- the manager ---------------------------------------------------------------------------------


def _collect_garbage() -> None:
    """Free unreachable tensors and hand CUDA's cached blocks back (after an unload or an OOM)."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class LargeModelManager:
    """Plan, load, generate with, measure and unload one model described by a `ModelConfig`.

    `hardware`: a `routerllm.hardware.Hardware` (e.g. `get_profile("3xA100-80GB")` for a dry plan);
    None detects the machine in hand (at the config's offload_folder).
    """

    def __init__(self, model_config: "ModelConfig", hardware: Any = None) -> None:
        self.config = model_config
        self._hardware = hardware
        self._plan = None
        self._spec = None
        self.resolved: ResolvedModel | None = None
        self.model = None
        self.tokenizer = None
        self.load_info: LoadInfo | None = None
        self._offload_dir: Path | None = None
        self._lock = threading.Lock()  # generate() is not re-entrant on one model
        self._warned_no_template = False
        self._batch_size: int | None = None  # resolved on first use (batch_size), halved on OOM
        self.batch_size_reason = ""

    # -- planning ----------------------------------------------------------------------------------

    @property
    def hardware(self):
        if self._hardware is None:
            from routerllm.hardware import detect_hardware

            self._hardware = detect_hardware(self.config.offload_folder or "./offload")
        return self._hardware

    def resolve(self) -> ResolvedModel:
        """Resolve model_id to a checkpoint directory (converting a GGUF once; see model_source)."""
        if self.resolved is None:
            dtype = self.config.dtype if self.config.dtype != "auto" else "bfloat16"
            self.resolved = resolve_model(self.config.model_id, self.config.gguf_file, dtype=dtype,
                                          split_source=self.config.split_source)
        return self.resolved

    def spec(self):
        """Architecture facts: from the checkpoint on disk, or for a hub id from the catalog preset
        named by `name` (no download), else the hub's config.json."""
        if self._spec is None:
            from routerllm.catalog import get_spec

            model_id = self.config.model_id or self.config.name
            if self.config.model_id is None or classify(model_id, self.config.gguf_file) == "hub":
                try:
                    self._spec = get_spec(self.config.name)
                except CatalogError:
                    self._spec = get_spec(hub_config_dir(model_id))
            else:
                self._spec = get_spec(self.resolve().path)
        return self._spec

    def plan_options(self):
        from routerllm.planning import PlanOptions

        return PlanOptions(
            quantization=self.config.quantization,
            dtype=self.config.dtype if self.config.dtype != "auto" else "bfloat16",
            context_length=self.config.context_length,
            # batch_size auto: the planner searches batch x layers offloaded (planning.batching) and
            # reserves KV and activations for the batch it picks; batch_size below reads that choice
            batch_size=self.config.batch_size,
            max_new_tokens=self.config.max_new_tokens,
            max_memory=dict(self.config.max_memory) if self.config.max_memory else None,
            offload_folder=self.config.offload_folder,
            double_quant=self.config.bnb_4bit_use_double_quant,
        )

    @property
    def batch_size(self) -> int:
        """Rows decoded together: the config's integer, or for `batch_size: auto` the planner's
        choice on this tier's plan (planning.speed.auto_batch_size at its context_length and
        max_new_tokens), lowered for good when a batch ran out of memory (generate)."""
        if self._batch_size is None:
            wanted = self.config.batch_size
            if isinstance(wanted, int):
                self._batch_size = wanted
                self.batch_size_reason = "models.<tier>.batch_size"
            else:
                from routerllm.planning.speed import auto_batch_size

                self._batch_size = max(1, int(auto_batch_size(self.plan(), context_length=self.config.context_length,
                                                              max_new_tokens=self.config.max_new_tokens)))
                self.batch_size_reason = (f"batch_size auto: the planner's choice at context {self.config.context_length}, "
                                          f"{self.config.max_new_tokens} new tokens")
            if self.config.cpu_quantization == "int8_dynamic" and self._batch_size > 1:
                from routerllm.cpu_quant import INT8_DYNAMIC_MAX_BATCH

                if self._batch_size > INT8_DYNAMIC_MAX_BATCH:
                    # its rows share one activation scale: answers would depend on batch mates (cpu_quant)
                    log = logger.warning if isinstance(wanted, int) else logger.info
                    log("%s: cpu_quantization int8_dynamic decodes %d row(s) at a time, not %d: rows decoded "
                        "together share one activation scale, so an answer would depend on its batch mates "
                        "(cpu_quant.INT8_DYNAMIC_MAX_BATCH; set batch_size: auto or 1 to silence this)",
                        self.config.name, INT8_DYNAMIC_MAX_BATCH, self._batch_size)
                    self._batch_size = INT8_DYNAMIC_MAX_BATCH
                    self.batch_size_reason = "cpu_quantization int8_dynamic (cpu_quant.INT8_DYNAMIC_MAX_BATCH)"
            logger.info("%s: batch size %d (%s)", self.config.name, self._batch_size, self.batch_size_reason)
        return self._batch_size

    def plan(self):
        """The planner's Plan for this config on `hardware` (cached)."""
        if self._plan is None:
            from routerllm.planning import plan as make_plan

            self._plan = make_plan(self.spec(), self.hardware, self.plan_options())
        return self._plan

    # -- pre-flight --------------------------------------------------------------------------------

    def check_resources(self, plan=None) -> list[ResourceCheck]:
        """GPU, RAM and disk on THIS machine against what the plan puts on each (no loading)."""
        import psutil

        plan = plan or self.plan()
        checks: list[ResourceCheck] = []
        for dev in plan.devices:
            key = _device_key(dev.device)
            need = int(dev.total_bytes)
            if key.isdigit():
                idx = int(key)
                avail, note = 0, "no such GPU on this machine"
                try:
                    import torch

                    if torch.cuda.is_available() and idx < torch.cuda.device_count():
                        avail, _ = torch.cuda.mem_get_info(idx)
                        note = f"free on {torch.cuda.get_device_name(idx)}"
                except Exception as exc:  # noqa: BLE001 - a broken driver reads as "no GPU"
                    note = f"cannot query GPU {idx}: {exc}"
                ok = avail >= need
                checks.append(ResourceCheck(f"gpu {idx}", ok, need, int(avail),
                                            f"plan puts {format_size(need)} on GPU {idx}; {format_size(avail)} {note}"))
            elif key == "cpu":
                avail = int(psutil.virtual_memory().available * (1 - RAM_SLACK_FRACTION))
                ok = avail >= need
                detail = (f"weights {format_size(int(dev.weight_bytes))} + KV {format_size(int(dev.kv_bytes))} + "
                          f"activations {format_size(int(dev.activation_bytes))} + overhead {format_size(int(dev.overhead_bytes))}")
                checks.append(ResourceCheck("ram", ok, need, avail,
                                            f"plan puts {format_size(need)} in RAM ({detail}); {format_size(avail)} available"))
            elif key == "disk":
                folder = Path(self.config.offload_folder or "./offload")
                folder.mkdir(parents=True, exist_ok=True)
                avail = shutil.disk_usage(folder).free
                ok = avail >= need
                checks.append(ResourceCheck("disk", ok, need, avail,
                                            f"plan offloads {format_size(need)} to {folder}; {format_size(avail)} free there"))
        return checks

    def _refuse_if_cannot_load(self, plan) -> None:
        verdict = str(getattr(plan, "verdict", ""))
        if verdict.endswith("cannot_run"):
            fix = "; ".join(getattr(plan, "suggestions", []) or []) or "raise max_memory budgets or enable use_4bit"
            raise ModelLoadError(f"the plan says {self.config.name} cannot run here: {plan.reason}", fix=fix)
        failed = [c for c in self.check_resources(plan) if not c.ok]
        if failed:
            name = self.config.name
            raise ModelLoadError(
                f"refusing to load {name}: " + "; ".join(c.message for c in failed),
                fix=f"lower models.<tier>.max_memory (e.g. cpu) for {name} so the rest goes to disk with an "
                "offload_folder, enable use_4bit, shorten context_length, or free memory on this machine",
            )

    # -- loading -----------------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self.model is not None

    def _attention(self, model_cls) -> tuple[str, str]:
        import importlib.util

        import torch

        if self.config.use_flash_attention:
            if not torch.cuda.is_available():
                why = "use_flash_attention is set but there is no CUDA device"
            elif importlib.util.find_spec("flash_attn") is None:
                why = "use_flash_attention is set but flash-attn is not installed (pip install -e '.[cuda]' in the checkout)"
            elif not getattr(model_cls, "_supports_flash_attn", False):
                why = f"{model_cls.__name__} does not support flash_attention_2"
            else:
                return "flash_attention_2", "use_flash_attention is set, CUDA present, flash-attn installed"
        else:
            why = "use_flash_attention is false"
        if getattr(model_cls, "_supports_sdpa", False):
            return "sdpa", f"{why}; using torch scaled_dot_product_attention"
        return "eager", f"{why}; {model_cls.__name__} has no sdpa path in this transformers, using eager"

    def _quantization_config(self, device_map: dict[str, Any], torch_dtype):
        from transformers import BitsAndBytesConfig

        places = {_device_key(v) for v in device_map.values()}
        offloading = bool(places & {"cpu", "disk"}) and places != {"cpu"}
        if self.config.use_4bit:
            return BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=self.config.bnb_4bit_quant_type,
                bnb_4bit_use_double_quant=self.config.bnb_4bit_use_double_quant,
                bnb_4bit_compute_dtype=torch_dtype,
                llm_int8_enable_fp32_cpu_offload=offloading,
            )
        if self.config.use_8bit:
            return BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=offloading)
        return None

    def load(self, progress: bool = True) -> LoadInfo:
        """Carry out the plan. Raises ModelLoadError before touching weights when the plan cannot
        run or this machine lacks the RAM/disk/GPU memory it needs. Idempotent."""
        if self.model is not None and self.load_info is not None:
            return self.load_info
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), disable=not progress, transient=False) as bar:
            task = bar.add_task(f"{self.config.name}: resolving {self.config.model_id}", total=None)
            resolved = self.resolve()
            bar.update(task, description=f"{self.config.name}: planning")
            plan = self.plan()
            self._refuse_if_cannot_load(plan)
            bar.update(task, description=f"{self.config.name}: loading weights ({plan.verdict})")
            self._load_weights(resolved, plan)
            bar.update(task, description=f"{self.config.name}: ready ({self.load_info.load_s:.1f} s)")
        return self.load_info

    def _load_weights(self, resolved: ResolvedModel, plan) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        cfg = self.config
        dtype_name = cfg.dtype if cfg.dtype != "auto" else "bfloat16"
        torch_dtype = getattr(torch, dtype_name)
        notes: list[str] = []
        if isinstance(cfg.device_map, dict):
            device_map = dict(cfg.device_map)
            notes.append("device_map taken from the config as given")
        else:
            device_map = dict(plan.device_map)
        places = {_device_key(v) for v in device_map.values()}
        if cfg.cpu_quantization != "none":
            from routerllm.cpu_quant import check_placement

            check_placement(cfg.name, places)
        kwargs: dict[str, Any] = dict(dtype=torch_dtype, device_map=device_map, trust_remote_code=cfg.trust_remote_code)
        if "disk" in places:
            root = Path(cfg.offload_folder or "./offload")
            self._offload_dir = root / f"{cfg.name}-{os.getpid()}-{int(time.time())}"
            self._offload_dir.mkdir(parents=True, exist_ok=True)
            kwargs["offload_folder"] = str(self._offload_dir)
        if cfg.offload_state_dict:
            # transformers 5 loads shard by shard into the mapped devices and no longer takes
            # offload_state_dict (it is popped as unused); kept in the config for compatibility.
            notes.append("offload_state_dict: transformers 5 already loads shard by shard; no separate step")
        quant = self._quantization_config(device_map, torch_dtype)
        if cfg.use_8bit:
            _quiet_bnb_int8_casts()
        if quant is not None:
            kwargs["quantization_config"] = quant
        hf_config = AutoConfig.from_pretrained(resolved.path, trust_remote_code=cfg.trust_remote_code)
        try:
            model_cls = AutoModelForCausalLM._model_mapping[type(hf_config)]
        except KeyError:
            model_cls = type("Unknown", (), {"_supports_sdpa": True})  # remote code: let transformers decide
        attn, why = self._attention(model_cls)
        kwargs["attn_implementation"] = attn
        logger.info("loading %s from %s: map=%s quant=%s attn=%s", cfg.name, resolved.path, places, cfg.quantization, attn)

        import psutil

        started = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=cfg.trust_remote_code)
            # The baseline for "memory the model added": the tokenizer is not part of the plan, and
            # heap freed before this point is handed back first so the after-load trim below does
            # not subtract it from the model's share (measured: 56 MiB on the Gemma 270M).
            if quant is not None:
                import bitsandbytes  # noqa: F401  (its import, ~35 MB of modules, is not the model's)
            gc.collect()
            release_free_heap()
            rss_before_model = psutil.Process().memory_info().rss
            model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            self._cleanup_offload()
            raise ModelLoadError(
                f"loading {cfg.name} from {resolved.path} failed: {exc}",
                fix="check that the directory holds config.json, the *.safetensors weights and the tokenizer; "
                "see the plan (routerllm plan) for the device map that was used",
            ) from exc
        model.eval()
        if "disk" in places:
            from routerllm.offload_io import keep_offload_files_open

            if keep_offload_files_open(model):
                notes.append("disk-offloaded weights read through safetensors handles kept open "
                             "(accelerate 1.16 reopens the file for every tensor at every forward)")
        if cfg.cpu_quantization == "int8_dynamic":
            from routerllm.cpu_quant import quantize_int8_dynamic

            notes.append(quantize_int8_dynamic(model))
        if quant is not None:
            # The quantized layers' bf16 source pages stay mapped while any unquantized tensor is
            # still a view into the checkpoint (see procmem); copy those few tensors out.
            copied = copy_tensors_out_of_mappings(model)
            if copied:
                notes.append(f"copied {format_size(copied)} of unquantized weights out of the checkpoint mapping "
                             "so the quantized layers' source pages are released")
        gc.collect()
        release_free_heap()
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        load_s = time.perf_counter() - started
        actual_map = {k: (v if isinstance(v, (int, str)) else str(v)) for k, v in getattr(model, "hf_device_map", device_map).items()}
        self.load_info = LoadInfo(
            model_id=cfg.model_id or cfg.name,
            checkpoint=str(resolved.path),
            source=resolved.kind,
            quantization=(cfg.bnb_4bit_quant_type if cfg.use_4bit else cfg.quantization),
            dtype=dtype_name,
            attn_implementation=attn,
            attn_reason=why,
            device_map=actual_map,
            offload_folder=str(self._offload_dir) if self._offload_dir else None,
            resolve_s=resolved.seconds,
            load_s=load_s,
            converted_now=resolved.converted_now,
            rss_before_model_bytes=rss_before_model,
            notes=notes,
        )
        logger.info("loaded %s in %.1f s (attention: %s: %s)", cfg.name, load_s, attn, why)

    # -- generation --------------------------------------------------------------------------------

    def _require_loaded(self) -> None:
        if self.model is None:
            raise ModelLoadError(f"{self.config.name} is not loaded", fix="call load() first")

    def format_prompt(self, request: GenerationRequest) -> tuple[str, bool]:
        """(text, add_special_tokens): the chat template when asked and available, else the prompt."""
        if request.messages or self.config.chat:
            messages = request.messages or [{"role": "user", "content": request.prompt}]
            if getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                return text, False
            if not self._warned_no_template:
                logger.warning("%s has no chat template; sending the messages' text as a plain prompt", self.config.name)
                self._warned_no_template = True
            return "\n\n".join(m["content"] for m in messages), True
        return request.prompt, True

    def input_device(self):
        """Where input ids go: the device of the first mapped module that is a real device."""
        import torch

        for place in (self.load_info.device_map if self.load_info else {}).values():
            key = _device_key(place)
            if key.isdigit():
                return torch.device(f"cuda:{key}")
            if key in ("cpu", "mps"):
                return torch.device(key)
        return torch.device("cpu")

    def encode(self, texts_and_special: list[tuple[str, bool]]):
        """Left-padded input_ids and attention_mask on the input device."""
        import torch

        rows = [self.tokenizer(t, add_special_tokens=s)["input_ids"] for t, s in texts_and_special]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        device = self.input_device()
        return ids.to(device), mask.to(device), [len(r) for r in rows]

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Answer each request, in order (batched by temperature and seed, up to batch_size rows)."""
        self._require_loaded()
        if not requests:
            return []
        groups: dict[tuple[float, int | None], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            # a seeded sample runs alone so that its seed alone decides its text, whatever the batch
            key = (float(r.temperature), i) if r.temperature > 0 and r.seed is not None else (float(r.temperature), None)
            groups[key].append(i)
        out: list[Generation | None] = [None] * len(requests)
        with self._lock:
            for idxs in groups.values():
                start = 0
                while start < len(idxs):
                    chunk = idxs[start:start + self.batch_size]
                    try:
                        gens = self._generate_batch([requests[i] for i in chunk])
                    except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried, the rest re-raised
                        if not is_out_of_memory(exc) or len(chunk) == 1:
                            raise
                        self._halve_batch(len(chunk), exc)
                        continue  # the same rows again, in smaller batches: no request is lost
                    for i, gen in zip(chunk, gens):
                        out[i] = gen
                    start += len(chunk)
            if self.config.quantization != "none":
                # bitsandbytes' CPU kernels dequantize each layer's weight per forward (and NF4 repacks
                # it at the first); glibc keeps those freed pages. Measured on the Gemma 270M NF4:
                # 62 MiB held after a generation, returned by this trim in ~4 ms.
                release_free_heap()
        return out  # type: ignore[return-value]

    def _halve_batch(self, rows: int, exc: BaseException) -> None:
        """After an out-of-memory error on a batch of `rows`: free what the failed step held and
        lower this tier's batch size to half of it, for the rest of the run."""
        exc.__traceback__ = None  # the traceback's frames hold the failed step's tensors
        _collect_garbage()
        release_free_heap()
        self._batch_size = max(1, rows // 2)
        self.batch_size_reason = f"halved after running out of memory at {rows} rows"
        logger.warning("%s: out of memory generating %d rows at once (%s); retrying them %d at a time "
                       "(set models.<tier>.batch_size to %d or less to skip this retry)", self.config.name,
                       rows, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                       self._batch_size, self._batch_size)

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        started = time.perf_counter()
        ids, mask, prompt_lens = self.encode([self.format_prompt(r) for r in requests])
        width = ids.shape[1]
        stops = [[s for s in [*r.stop, *self.config.stop] if s] for r in requests]
        limits = [max(1, r.max_new_tokens) for r in requests]
        eos_ids = self.model.generation_config.eos_token_id
        eos = set(eos_ids if isinstance(eos_ids, list) else [eos_ids] if eos_ids is not None else [])
        eos.add(tok.eos_token_id)
        eos.discard(None)
        criteria = _stop_criteria_class()(tok, width, stops, limits, eos)
        timer = _FirstTokenTimer()
        temperature = float(requests[0].temperature)
        kwargs: dict[str, Any] = dict(
            input_ids=ids, attention_mask=mask, max_new_tokens=max(limits),
            stopping_criteria=StoppingCriteriaList([criteria]), streamer=timer, pad_token_id=tok.pad_token_id,
        )
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
            torch.manual_seed(requests[0].seed if requests[0].seed is not None else 0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            output = self.model.generate(**kwargs)
        ended = time.perf_counter()
        total = ended - started
        ttft = (timer.first_token_at - started) if timer.first_token_at else None
        results = []
        for i, request in enumerate(requests):
            new = output[i, width:].tolist()
            n = len(new)
            finish = "length"
            for k, t in enumerate(new):
                if t in eos:
                    n, finish = k + 1, "stop"
                    break
            if criteria.done_at[i] is not None and criteria.done_at[i] < n:
                n = criteria.done_at[i]
            text = tok.decode(new[:n], skip_special_tokens=True)
            stopped_by = None
            cut = [(text.find(s), s) for s in stops[i] if s in text]
            if cut:
                pos, stopped_by = min(cut)
                text, finish = text[:pos], "stop"
            # the row's own time: until it stopped (the batch goes on for its longest row)
            row_total = (criteria.done_time[i] or ended) - started
            results.append(Generation(
                text=text, prompt_tokens=prompt_lens[i], completion_tokens=n, ttft_s=ttft, total_s=row_total,
                finish_reason=finish, timing="measured",
                extra={"batch_size": len(requests), "batch_total_s": total, "stopped_by": stopped_by,
                       "tier": self.config.name,
                       "attn_implementation": self.load_info.attn_implementation if self.load_info else None},
            ))
        return results

    # -- measuring ---------------------------------------------------------------------------------

    def measured_weight_bytes(self) -> dict[str, int]:
        """Parameter + buffer bytes per device key ('0', 'cpu', 'disk' for meta/offloaded)."""
        self._require_loaded()
        by_device: dict[str, int] = defaultdict(int)
        seen: set[int] = set()
        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            kind = tensor.device.type
            key = str(tensor.device.index) if kind == "cuda" else "disk" if kind == "meta" else kind
            by_device[key] += _tensor_bytes(tensor)
        # Disk-offloaded parameters sit on the meta device; their bytes are what accelerate streams in
        # from the offload folder (or, for safetensors checkpoints, from the checkpoint file in place).
        return dict(by_device)

    def memory_report(self) -> MemoryReport:
        """Measured memory per device next to the plan's numbers."""
        import psutil
        import torch

        self._require_loaded()
        measured = self.measured_weight_bytes()
        planned = {_device_key(d.device): d for d in (self._plan.devices if self._plan else [])}
        rss = psutil.Process().memory_info().rss
        model_rss = rss - (self.load_info.rss_before_model_bytes if self.load_info else 0)
        rows = []
        for key in sorted(set(measured) | set(planned), key=lambda k: (not k.isdigit(), k)):
            plan_dev = planned.get(key)
            resident = peak = None
            if key.isdigit() and torch.cuda.is_available():
                resident = torch.cuda.memory_allocated(int(key))
                peak = torch.cuda.max_memory_allocated(int(key))
            elif key == "cpu":
                resident = model_rss  # what the plan's cpu total predicts (tokenizer, libraries excluded)
            elif key == "disk":
                resident = _dir_bytes(self._offload_dir)
            rows.append(DeviceMemory(
                device=key,
                planned_bytes=int(plan_dev.total_bytes) if plan_dev else None,
                planned_weight_bytes=int(plan_dev.weight_bytes) if plan_dev else None,
                weight_bytes=measured.get(key, 0),
                resident_bytes=resident,
                peak_bytes=peak,
            ))
        return MemoryReport(rows, rss, model_rss, checkpoint_mapped_bytes=mapped_resident_bytes())

    # -- unloading ---------------------------------------------------------------------------------

    def _cleanup_offload(self) -> None:
        if self._offload_dir is not None:
            shutil.rmtree(self._offload_dir, ignore_errors=True)
            self._offload_dir = None

    def unload(self) -> None:
        """Free the model (gc + CUDA cache) and its offload files. Safe to call twice."""
        if self.model is None and self._offload_dir is None:
            return
        self.model = None
        self.tokenizer = None
        _collect_garbage()
        self._cleanup_offload()
        logger.info("unloaded %s", self.config.name)

    def __enter__(self) -> "LargeModelManager":
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

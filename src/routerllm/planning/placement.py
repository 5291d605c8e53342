"""Placement: a meta-device model -> accelerate's device map, with real bytes per module.

accelerate's `infer_auto_device_map` sizes every floating tensor at the load dtype (or 0.5 B for
`CustomDtype.INT4`), which misses NF4's per-block constants (~3%) and int8's row scales. So while
it runs, each quantized Linear's weight is swapped for a `uint8` meta tensor holding exactly the
bytes the quantized weight will occupy (accelerate counts integer tensors at their own size), and
swapped back afterwards. Module names and no-split classes are untouched, so the map it returns is
the map transformers' `from_pretrained(device_map=...)` takes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from routerllm.planning.memory import quantizable_linears, tensor_bytes_map

logger = logging.getLogger(__name__)

_SWAP_LOCK = threading.RLock()  # the shared meta model is mutated while a map is computed


@dataclass
class Placement:
    """accelerate's device map for one set of budgets, and what each device then holds."""

    device_map: "OrderedDict[str, int | str]"
    no_split_modules: list[str]
    layer_names: list[str]  # decoder blocks in order (instances of a no-split class)
    layers_by_device: dict[Any, list[int]]
    weight_bytes_by_device: dict[Any, int]
    quantized_on: set[Any] = field(default_factory=set)  # devices whose Linear weights are quantized
    offloaded_modules: list[str] = field(default_factory=list)  # map keys on cpu/disk next to GPUs


def device_of(name: str, device_map: dict[str, Any]) -> Any:
    """The device of tensor/module `name` under `device_map` (longest matching prefix).

    A tensor no key covers (a buffer of a parent module, e.g. GPT-BigCode's `transformer.bias`,
    which accelerate leaves out of the map) goes where dispatch_model puts it: the main device,
    the first non-cpu/disk device of the map, else the first one."""
    parts = name.split(".")
    for i in range(len(parts), -1, -1):
        key = ".".join(parts[:i])
        if key in device_map:
            return device_map[key]
    values = list(device_map.values())
    return next((v for v in values if v not in ("cpu", "disk")), values[0] if values else "cpu")


def _memo(model: Any) -> dict:
    from routerllm.planning.memory import _cache

    return _cache(model)


def find_layer_names(model: Any, no_split: list[str]) -> list[str]:
    """Names of the decoder blocks: the outermost modules whose class is a no-split class."""
    key = ("layer_names", tuple(no_split))
    memo = _memo(model)
    if key not in memo:
        names: list[str] = []
        for name, module in model.named_modules():
            if type(module).__name__ in no_split and not any(name.startswith(n + ".") for n in names[-1:]):
                names.append(name)
        memo[key] = names
    return list(memo[key])


class _DropMissingDevice(logging.Filter):
    """accelerate 1.16's notes while the planner tries budgets: a GPU this machine lacks (planning
    for other hardware is the point) and "no modules could be assigned ... due to insufficient
    memory" (batch_size auto tries budgets that do not fit; the plan says in its own words what does)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return ("is not available, available devices are" not in message
                and "no modules could be assigned to the following devices" not in message)


@contextmanager
def _sized_for_accelerate(model: Any, quantized: set[str], quant_bytes: dict[str, int]):
    """Swap quantized Linear weights for uint8 meta tensors of their real byte size, then restore."""
    import torch

    saved: list[tuple[Any, Any]] = []
    with _SWAP_LOCK:
        try:
            memo = _memo(model)
            if "modules" not in memo:
                memo["modules"] = dict(model.named_modules())
            modules = memo["modules"]
            stand_ins = memo.setdefault("uint8_stand_ins", {})  # (name, bytes) -> meta Parameter, reused
            for name in quantized:
                module = modules[name]
                saved.append((module, module._parameters["weight"]))
                size = quant_bytes[f"{name}.weight"]
                if (name, size) not in stand_ins:
                    stand_ins[(name, size)] = torch.nn.Parameter(
                        torch.empty(size, dtype=torch.uint8, device="meta"), requires_grad=False)
                module._parameters["weight"] = stand_ins[(name, size)]
            yield model
        finally:
            for module, param in saved:
                module._parameters["weight"] = param


def place(
    model: Any,
    budgets: dict[Any, int],
    *,
    quantization: str,
    load_dtype: str,
    double_quant: bool = True,
) -> Placement:
    """Run accelerate's `infer_auto_device_map` on `model` (meta) under `budgets` (bytes per device,
    accelerate keys: GPU ints, 'cpu', 'disk') and account the real bytes each device then holds."""
    import torch
    from accelerate import infer_auto_device_map

    no_split = sorted(getattr(model, "_no_split_modules", None) or [])
    quantized = quantizable_linears(model, quantization)
    q_bytes = tensor_bytes_map(model, quantization, load_dtype, quantized, double_quant=double_quant)
    acc_logger = logging.getLogger("accelerate.utils.modeling")
    quiet = _DropMissingDevice()
    acc_logger.addFilter(quiet)  # plans for GPUs this machine lacks are the point, not a problem
    try:
        with _sized_for_accelerate(model, quantized, q_bytes), warnings.catch_warnings():
            # accelerate 1.15 warns when an offloaded layer's buffers (rotary inv_freq, 256 B) find no
            # GPU room; the planner accounts those buffers on the execution device itself (account())
            warnings.filterwarnings("ignore", message="Current model requires .* bytes of buffer")
            device_map = infer_auto_device_map(
                model,
                max_memory=dict(budgets),
                no_split_module_classes=no_split,
                dtype=getattr(torch, load_dtype),
            )
    finally:
        acc_logger.removeFilter(quiet)
    return account(model, device_map, no_split, quantization=quantization, load_dtype=load_dtype,
                   double_quant=double_quant, quantized=quantized, q_bytes=q_bytes)


def account(
    model: Any,
    device_map: dict[str, Any],
    no_split: list[str],
    *,
    quantization: str,
    load_dtype: str,
    double_quant: bool = True,
    quantized: set[str] | None = None,
    q_bytes: dict[str, int] | None = None,
) -> Placement:
    """Bytes and decoder layers per device for a given map, as transformers + bitsandbytes load it.

    With GPUs in the map, modules on cpu/disk are not quantized (they join `modules_to_not_convert`
    under `llm_int8_enable_fp32_cpu_offload=True`) and cost the load dtype."""
    if quantized is None:
        quantized = quantizable_linears(model, quantization)
    if q_bytes is None:
        q_bytes = tensor_bytes_map(model, quantization, load_dtype, quantized, double_quant=double_quant)
    devices = list(dict.fromkeys(device_map.values()))
    has_gpu = any(not isinstance(d, str) for d in devices)
    # transformers' bnb quantizers: a map that is not all-cpu but has cpu/disk entries needs
    # llm_int8_enable_fp32_cpu_offload=True, which keeps those modules unquantized
    values = set(devices)
    keep_offload_unquantized = values != {"cpu"} and bool(values & {"cpu", "disk"})
    full_bytes = q_bytes if quantization == "none" else tensor_bytes_map(model, "none", load_dtype, set())
    weight: dict[Any, int] = {d: 0 for d in devices}
    # accelerate keeps the buffers of offloaded modules on the execution device (offload_buffers=False)
    memo = _memo(model)
    if "buffer_names" not in memo:
        memo["buffer_names"] = frozenset(n for n, _ in model.named_buffers())
    buffers = memo["buffer_names"]
    main = next((d for d in devices if not isinstance(d, str)), "cpu")
    for name, size in q_bytes.items():
        dev = device_of(name, device_map)
        if name in buffers and (dev == "disk" or (has_gpu and dev == "cpu")):
            weight[main] = weight.get(main, 0) + size
            continue
        if keep_offload_unquantized and dev in ("cpu", "disk"):
            size = full_bytes[name]
        weight[dev] = weight.get(dev, 0) + size
    layer_names = find_layer_names(model, no_split)
    layers: dict[Any, list[int]] = {d: [] for d in devices}
    for i, lname in enumerate(layer_names):
        layers.setdefault(device_of(lname, device_map), []).append(i)
    quantized_on = (
        set() if quantization == "none"
        else {d for d in devices if not (keep_offload_unquantized and d in ("cpu", "disk"))}
    )
    offloaded = [k for k, v in device_map.items() if v == "disk" or (has_gpu and v == "cpu")]
    return Placement(
        device_map=OrderedDict(device_map),
        no_split_modules=no_split,
        layer_names=layer_names,
        layers_by_device=layers,
        weight_bytes_by_device=weight,
        quantized_on=quantized_on,
        offloaded_modules=offloaded,
    )

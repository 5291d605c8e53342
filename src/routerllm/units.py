"""Byte sizes as people write them ("70GB", "1.5 GiB", 512) and back.

Decimal units follow accelerate's `convert_file_size_to_int` (KB = 10**3 ... TB = 10**12), binary
units are powers of two (KiB = 2**10 ... TiB = 2**40), so a `max_memory` entry means here exactly
what it means to accelerate.
"""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Return a size in bytes. Raises ValueError with the accepted forms on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"size {value!r} is negative; budgets must be >= 0")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a size")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"size {value!r} is negative; budgets must be >= 0")
    match = _SIZE_RE.match(text)
    unit = match.group(2).upper() if match else ""
    if not match or (unit and unit not in _UNITS):
        raise ValueError(
            f"{value!r} is not a size; write a number with a unit such as '70GB', '512MiB', "
            f"'1.5TB' (units: {', '.join(u if 'I' not in u else u.replace('I', 'i') for u in _UNITS)})"
        )
    return int(float(match.group(1)) * _UNITS[unit or "B"])


def format_size(n_bytes: float) -> str:
    """Human-readable bytes in decimal units, e.g. 4.2 GB."""
    n = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover

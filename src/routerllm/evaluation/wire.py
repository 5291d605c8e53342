"""Plain data across the jail's boundary: a tagged encoding whose decoder never executes anything.

    encode(obj) -> bytes    decode(bytes) -> obj    (WireError on anything else)

Plain data = None, bool, int (exact, any size), float (nan/inf too), str, bytes, and list, tuple,
dict, set, frozenset nested of those. Tuple-vs-list and set are preserved. This module is stdlib only:
the jail's worker imports it from a read-only bind of this file.
Format: JSON of tagged arrays, e.g. ["i","123"], ["f","nan"], ["t",[...]], ["d",[[k,v],...]].
"""

from __future__ import annotations

import json

MAX_DEPTH = 100  # nesting levels; deeper is refused (recursion safety on both sides)
MAX_BYTES = 16 * 1024 * 1024  # one encoded message, bytes


class WireError(ValueError):
    pass


def _enc(obj, depth):
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(obj)
    if obj is None:
        return ["n"]
    if t is bool:
        return ["b", obj]
    if t is int:
        return ["i", str(obj)]
    if t is float:
        return ["f", repr(obj)]
    if t is str:
        return ["s", obj]
    if t is bytes:
        return ["y", obj.hex()]
    if t is list:
        return ["l", [_enc(x, depth + 1) for x in obj]]
    if t is tuple:
        return ["t", [_enc(x, depth + 1) for x in obj]]
    if t is set:
        return ["e", [_enc(x, depth + 1) for x in obj]]
    if t is frozenset:
        return ["z", [_enc(x, depth + 1) for x in obj]]
    if t is dict:
        return ["d", [[_enc(k, depth + 1), _enc(v, depth + 1)] for k, v in obj.items()]]
    raise WireError(f"not plain data: {t.__name__}")


def encode(obj) -> bytes:
    try:
        data = json.dumps(_enc(obj, 0), ensure_ascii=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError) as exc:  # int-to-str digit limit, recursion
        if isinstance(exc, WireError):
            raise
        raise WireError(f"cannot encode: {type(exc).__name__}") from None
    if len(data) > MAX_BYTES:
        raise WireError(f"larger than {MAX_BYTES} bytes encoded")
    return data


_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _dec(node, depth):
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, list) or not node or not isinstance(node[0], str):
        raise WireError("malformed wire data")
    tag = node[0]
    arg = node[1] if len(node) == 2 else None
    if tag == "n" and len(node) == 1:
        return None
    if len(node) != 2:
        raise WireError("malformed wire data")
    if tag == "b" and type(arg) is bool:
        return arg
    if tag == "i" and type(arg) is str:
        return int(arg)
    if tag == "f" and type(arg) is str:
        return _FLOATS[arg] if arg in _FLOATS else float(arg)
    if tag == "s" and type(arg) is str:
        return arg
    if tag == "y" and type(arg) is str:
        return bytes.fromhex(arg)
    if type(arg) is not list:
        raise WireError("malformed wire data")
    if tag == "l":
        return [_dec(x, depth + 1) for x in arg]
    if tag == "t":
        return tuple(_dec(x, depth + 1) for x in arg)
    if tag in ("e", "z"):
        items = [_dec(x, depth + 1) for x in arg]
        return set(items) if tag == "e" else frozenset(items)
    if tag == "d":
        out = {}
        for pair in arg:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("malformed wire data")
            out[_dec(pair[0], depth + 1)] = _dec(pair[1], depth + 1)
        return out
    raise WireError("malformed wire data")


def decode(data: bytes):
    if len(data) > MAX_BYTES:
        raise WireError(f"larger than {MAX_BYTES} bytes")
    try:
        return _dec(json.loads(data), 0)
    except WireError:
        raise
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # unhashable key, bad int, ...
        raise WireError(f"malformed wire data ({type(exc).__name__})") from None

import math

import pytest

from routerllm.evaluation import wire


@pytest.mark.parametrize("obj", [None, True, 0, -(10**400), 1.5, "é\x00", b"\x00\xff", [1, (2, 3)], (), {1: "a", (1, 2): [None]},
                                 {1, 2.5, "x"}, frozenset({(1,)}), {"k": {"n": [b""]}}])
def test_roundtrip_preserves_types(obj):
    back = wire.decode(wire.encode(obj))
    assert back == obj and type(back) is type(obj)


def test_floats_and_bool_vs_int():
    assert math.isnan(wire.decode(wire.encode(float("nan"))))
    assert wire.decode(wire.encode([float("inf"), -float("inf")])) == [math.inf, -math.inf]
    assert type(wire.decode(wire.encode(True))) is bool and type(wire.decode(wire.encode(1))) is int


def test_refuses_non_plain_data_and_bad_input():
    class Foo:
        pass

    with pytest.raises(wire.WireError, match="not plain data: Foo"):
        wire.encode([1, Foo()])
    with pytest.raises(wire.WireError, match="not plain data: bool_sub|not plain data"):
        wire.encode(type("bool_sub", (int,), {})(1))
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep)
    for bad in (b"", b"\xff", b'["q",1]', b'["e",[["l",[]]]]', b'["i","1e5"]', b"[" * 100000):
        with pytest.raises(wire.WireError):
            wire.decode(bad)

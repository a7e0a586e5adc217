"""Key escaping and JSON packing: pure, property-tested."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.state import InvalidKey, ValueTooLarge, decode_key, encode_key, json_hash
from shared.state.keys import MAX_TEXT_CHARS, pack_json, unpack_json

FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


@given(st.text(min_size=1, max_size=200))
def test_encoded_keys_are_safe_and_reversible(value: str) -> None:
    key = encode_key(value)
    assert not FORBIDDEN.search(key)
    assert decode_key(key) == value


@given(st.text(min_size=1, max_size=50), st.text(min_size=1, max_size=50))
def test_distinct_ids_get_distinct_keys(a: str, b: str) -> None:
    assert (encode_key(a) == encode_key(b)) == (a == b)


def test_guids_stay_readable() -> None:
    guid = "5d115c9c-44e3-ea11-bb43-000d3a2feca1"
    assert encode_key(guid) == guid
    assert encode_key("CUST/1 #2") == "CUST~2F1~20~232"


@pytest.mark.parametrize("bad", ["", "x" * 1001])
def test_empty_or_too_long_keys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidKey):
        encode_key(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30)


@given(json_values)
def test_pack_unpack_round_trip(value: object) -> None:
    packed = pack_json("snapshot", value, "test value")
    assert unpack_json("snapshot", packed) == value


def test_hash_ignores_key_order_but_not_values() -> None:
    assert json_hash({"a": 1, "b": 2}) == json_hash({"b": 2, "a": 1})
    assert json_hash({"a": 1}) != json_hash({"a": "1"})


def test_big_values_are_chunked_and_huge_ones_refused() -> None:
    import os

    big = {"blob": "x" * (MAX_TEXT_CHARS + 1)}
    packed = pack_json("snapshot", big, "snapshot")
    assert "snapshot" not in packed and unpack_json("snapshot", packed) == big

    incompressible = {"blob": os.urandom(600_000).hex()}
    with pytest.raises(ValueTooLarge, match="too large"):
        pack_json("snapshot", incompressible, "snapshot of e-1")

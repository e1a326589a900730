"""The codec (docs/codec.md): what travels, what arrives, what is refused."""
from __future__ import annotations

import array
import datetime as dt
import math
import struct

import numpy as np
import pytest

from plexus import codec
from plexus.errors import EncodeError, ProtocolError


def roundtrip(v: object) -> object:
    return codec.decode(codec.encode(v))


def test_the_pages_examples_byte_for_byte() -> None:
    assert codec.encode({"seq": 1, "name": "cam"}).hex() == "504c584601020000" "0f00000000000000" "82a373657101a46e616d65a363616d"
    f = codec.encode({"t": 5, "v": np.array([1.5, -2.0])})
    assert len(f) == 64
    assert f[16:32] == struct.pack("<IIB7x", 48, 16, 9)
    assert f[48:] == struct.pack("<dd", 1.5, -2.0)
    assert codec.encode(bytes([1, 2, 3])).hex() == "504c584601010000030000000000000001" "0203"


@pytest.mark.parametrize("v", [None, True, False, 0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, -1, -32, -33, -128, -129,
                               -(2**31), 2**32, -(2**31) - 1, 2**63 - 1, 2**64 - 1, -(2**63), 1.5, -0.0, math.inf, "", "héllo ✓",
                               "x" * 40, "y" * 300, "z" * 70000, [1, [2, [3]]], {"a": {"b": [None]}}, list(range(20))])
def test_plain_values_come_back_equal(v: object) -> None:
    back = roundtrip(v)
    assert back == v and type(back) is type(v)
    if isinstance(v, float) and v == 0:
        assert math.copysign(1, back) == math.copysign(1, v)  # type: ignore[arg-type]


def test_nan_tuples_sets_maps_and_dates() -> None:
    assert math.isnan(roundtrip(math.nan))  # type: ignore[arg-type]
    assert roundtrip((1, 2)) == [1, 2]
    assert roundtrip({1, 2, "x"}) == {1, 2, "x"}
    assert roundtrip({1: "one", (2, 3): [4]}) == {1: "one", (2, 3): [4]}
    assert roundtrip({"__proto__": 1}) == {"__proto__": 1}, "a key JavaScript cannot restore travels as a Map"
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.timezone.utc)
    assert roundtrip(when) == when
    assert roundtrip(dt.datetime(1960, 1, 1, tzinfo=dt.timezone.utc)) == dt.datetime(1960, 1, 1, tzinfo=dt.timezone.utc)
    assert roundtrip(dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)) == dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert roundtrip("a\ud800b") == "a\ufffdb"


@pytest.mark.parametrize("dtype,t", [("int8", 1), ("uint8", 2), ("int16", 4), ("uint16", 5), ("int32", 6), ("uint32", 7),
                                     ("float32", 8), ("float64", 9), ("int64", 10), ("uint64", 11)])
def test_numpy_arrays_travel_as_the_matching_typed_array_and_arrive_as_views(dtype: str, t: int) -> None:
    a = np.arange(5).astype(dtype)
    frame = codec.encode({"a": a})
    assert frame[16 + 8] == t
    back = codec.decode(frame)["a"]
    assert back.dtype == np.dtype(dtype) and back.tolist() == a.tolist()
    assert not back.flags.writeable, "views are read-only"
    assert np.shares_memory(back, np.frombuffer(frame, dtype=np.uint8)), "a view of the frame, not a copy"
    mv = codec.decode(frame, "memoryview")["a"]
    assert isinstance(mv, memoryview) and mv.tolist() == a.tolist() and mv.readonly


def test_non_contiguous_and_multi_dimensional_arrays_travel_flat() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert roundtrip({"a": a[:, 1]})["a"].tolist() == [1.0, 5.0, 9.0]  # type: ignore[index]
    assert roundtrip({"a": a})["a"].tolist() == list(range(12))  # type: ignore[index]
    assert roundtrip({"a": a.astype(">f8")})["a"].tolist() == list(range(12))  # type: ignore[index]


def test_buffers_without_numpy_memoryviews_and_array_array() -> None:
    assert codec.decode(codec.encode({"a": array.array("d", [1.5, 2])}), "memoryview")["a"].tolist() == [1.5, 2.0]
    assert codec.decode(codec.encode({"a": memoryview(array.array("i", [-1, 7]))}))["a"].dtype == np.int32
    assert roundtrip({"a": bytearray(b"xy")})["a"].tolist() == [120, 121]  # type: ignore[index]


def test_a_buffer_twice_travels_once() -> None:
    a = np.ones(4)
    frame = codec.encode([a, a])
    assert struct.unpack_from("<I", frame, 12)[0] == 1
    x, y = codec.decode(frame)
    assert np.shares_memory(x, y)


def test_raw_frames() -> None:
    back = codec.decode(codec.encode(b"\x00\xff"))
    assert isinstance(back, memoryview) and bytes(back) == b"\x00\xff"
    assert bytes(codec.decode(codec.encode(b""))) == b""


def test_scalars_of_numpy_become_python_numbers() -> None:
    assert roundtrip({"i": np.int64(-3), "f": np.float32(0.5), "b": np.bool_(True)}) == {"i": -3, "f": 0.5, "b": True}


@pytest.mark.parametrize("v,match", [
    (object(), "object is not a type"),
    ({"f": print}, r"value\.f"),
    (2**64, "outside"),
    (-(2**63) - 1, "outside"),
    (np.zeros(2, dtype=np.complex128), "complex128"),
    (np.zeros(2, dtype=np.float16), "float16"),
])
def test_what_cannot_travel_is_refused_at_encode_time(v: object, match: str) -> None:
    with pytest.raises(EncodeError, match=match):
        codec.encode(v)


def test_cycles_and_depth_are_refused() -> None:
    a: list[object] = []
    a.append(a)
    with pytest.raises(EncodeError, match="cycle"):
        codec.encode(a)
    deep: list[object] = []
    for _ in range(600):
        deep = [deep]
    with pytest.raises(EncodeError, match="512"):
        codec.encode(deep)


GOOD = codec.encode({"a": np.array([1, 2, 3], dtype=np.uint8)})


def patched(at: int, b: bytes, frame: bytes = GOOD) -> bytes:
    return frame[:at] + b + frame[at + len(b):]


@pytest.mark.parametrize("frame,why", [
    (b"PLXF", "less than its 16-byte header"),
    (patched(0, b"XXXX"), "magic"),
    (patched(4, b"\x02"), "version"),
    (patched(5, b"\x03"), "kind"),
    (patched(6, b"\x01"), "flags"),
    (patched(12, b"\xff\xff\x00\x00"), "table"),
    (patched(8, b"\x00\x00\x00\x00"), "body"),
    (patched(16, b"\x31"), "layout"),  # buffer offset not a multiple of 16
    (patched(24, b"\x0f"), "type"),
    (patched(25, b"\x01"), "reserved"),
    (GOOD + b"\x00", "end at"),
    (patched(32, b"\x81\x01"), "not a string"),  # an integer map key
    (patched(36, b"\x61"), "extension type"),  # another extension type than the codec's tags
    (patched(38, b"\x05"), "buffer 5"),
    (codec.encode([1]).replace(b"\x91\x01", b"\x92\x01"), "longer than the bytes left"),
    (codec.encode(1)[:16] + b"\xc1", "0xc1"),
])
def test_malformed_frames_are_refused(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        codec.decode(frame)


def test_a_proto_key_and_deep_nesting_from_a_peer_are_refused() -> None:
    body = b"\x81\xa9__proto__\x01"
    with pytest.raises(ProtocolError, match="__proto__"):
        codec.decode(struct.pack("<IBBHII", codec.FRAME_MAGIC, 1, 2, 0, len(body), 0) + body)
    body = b"\x91" * 600 + b"\xc0"
    with pytest.raises(ProtocolError, match="512"):
        codec.decode(struct.pack("<IBBHII", codec.FRAME_MAGIC, 1, 2, 0, len(body), 0) + body)

"""The codec: a value <-> a frame (docs/codec.md), wire-compatible with the TypeScript codec.

A frame is a 16-byte header, a buffer table, a MessagePack body (a restricted profile) and
out-of-band buffers, each 16-byte aligned. Binary values (numpy arrays, ``bytes``,
``bytearray``, ``memoryview``, ``array.array``) travel out-of-band; on decoding they are
**views** over the frame's memory (numpy arrays when numpy is installed, else memoryviews),
read-only: copy what you keep beyond the life of the frame.

The MessagePack profile needs tags that precede the value they apply to, which general
MessagePack libraries cannot write or read inside arrays, so the body is packed and parsed here.
"""
from __future__ import annotations

import array
import datetime as _dt
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .errors import EncodeError, FrameTooLargeError, ProtocolError

try:  # numpy is optional: without it binary values arrive as memoryviews
    import numpy as _np

    HAVE_NUMPY: Final[bool] = True
except ImportError:  # pragma: no cover - exercised only where numpy is absent
    _np = None  # type: ignore[assignment]
    HAVE_NUMPY = False  # type: ignore[misc]

FRAME_MAGIC: Final = 0x46584C50
FRAME_VERSION: Final = 1
KIND_RAW: Final = 1
KIND_VALUE: Final = 2
HEADER_BYTES: Final = 16
ENTRY_BYTES: Final = 16
MAX_DEPTH: Final = 512
MAX_FRAME: Final = 0xFFFFFFFF

TAG_BUFFER: Final = 0x50
TAG_MAP: Final = 0x4D
TAG_SET: Final = 0x73

_HEADER = struct.Struct("<IBBHII")
_ZEROS = bytes(16)
_F64 = struct.Struct(">d")
_ENTRY = struct.Struct("<IIB7x")
_ENTRY_READ = struct.Struct("<IIBBHI")  # the same 16 bytes, with the reserved ones to check

# buffer type -> (memoryview format, element bytes, numpy dtype)
_TYPES: Final[dict[int, tuple[str, int, str]]] = {
    1: ("b", 1, "<i1"), 2: ("B", 1, "<u1"), 3: ("B", 1, "<u1"), 4: ("h", 2, "<i2"), 5: ("H", 2, "<u2"),
    6: ("i", 4, "<i4"), 7: ("I", 4, "<u4"), 8: ("f", 4, "<f4"), 9: ("d", 8, "<f8"),
    10: ("q", 8, "<i8"), 11: ("Q", 8, "<u8"), 12: ("B", 1, "<u1"), 13: ("B", 1, "<u1"), 14: ("B", 1, "<u1"),
}
# buffer type -> numpy dtype object (parsed once)
_NP_DTYPES: Final[dict[int, Any]] = {} if _np is None else {t: _np.dtype(d) for t, (_f, _s, d) in _TYPES.items()}
# memoryview / array.array format -> buffer type (native sizes: Linux x86-64 and arm64)
_FORMATS: Final[dict[str, int]] = {
    "b": 1, "B": 2, "c": 2, "h": 4, "H": 5, "i": 6, "I": 7, "l": 10, "L": 11,
    "q": 10, "Q": 11, "n": 10, "N": 11, "f": 8, "d": 9,
}
# numpy dtype (kind, itemsize) -> buffer type
_DTYPES: Final[dict[tuple[str, int], int]] = {
    ("i", 1): 1, ("u", 1): 2, ("i", 2): 4, ("u", 2): 5, ("i", 4): 6, ("u", 4): 7,
    ("f", 4): 8, ("f", 8): 9, ("i", 8): 10, ("u", 8): 11,
}

ArrayMode = Literal["numpy", "memoryview"]
# numpy dtypes (little-endian or native) -> buffer type, for the encoder's common case
_NP_TYPES: dict[Any, int] = {} if _np is None else {
    _np.dtype(f"<{k}{n}"): t for (k, n), t in _DTYPES.items()
}

# A body nested MAX_DEPTH levels deep takes two Python frames a level to read: room for that.
if sys.getrecursionlimit() < 4 * MAX_DEPTH + 200:
    sys.setrecursionlimit(4 * MAX_DEPTH + 200)


def align16(n: int) -> int:
    """``n`` rounded up to a multiple of 16."""
    return (n + 15) & ~15


# ---- encoding ------------------------------------------------------------------------------


@dataclass
class FramePlan:
    """A value encoded once: the header, table and body, and the out-of-band buffers.

    Write it anywhere with :meth:`write_into`, or send :meth:`chunks` with a vectored write.
    The buffers are the caller's own memory until written: do not change them before that.
    """

    head: bytes | bytearray
    buffers: list[memoryview] = field(default_factory=list)
    byte_length: int = 0

    def chunks(self) -> list[bytes | memoryview]:
        """The frame as pieces (head, padding, each buffer as the caller's memory)."""
        out: list[bytes | memoryview] = [self.head]
        at = len(self.head)
        for b in self.buffers:
            pad = align16(at) - at
            if pad:
                out.append(bytes(pad))
            at += pad
            out.append(b)
            at += b.nbytes
        return out

    def write_into(self, target: memoryview, offset: int = 0) -> int:
        """Writes the frame at ``target[offset]``; returns its length."""
        n = len(self.head)
        target[offset:offset + n] = self.head
        at = n
        for b in self.buffers:
            start = (at + 15) & ~15
            if start > at:
                target[offset + at:offset + start] = _ZEROS[:start - at]
            target[offset + start:offset + start + b.nbytes] = b
            at = start + b.nbytes
        return at

    def to_bytes(self) -> bytes:
        """The whole frame, contiguous."""
        return b"".join(bytes(c) if isinstance(c, memoryview) else c for c in self.chunks())


def _binary(value: object) -> tuple[memoryview, int] | None:
    """The bytes and buffer type of a binary value, or None if ``value`` is not one."""
    if isinstance(value, (bytes, bytearray)):
        return memoryview(value).cast("B"), 2
    if _np is not None and isinstance(value, _np.ndarray):
        dt = value.dtype
        t = _NP_TYPES.get(dt)
        if t is not None and value.ndim == 1 and value.flags.c_contiguous:  # the common case: as it is
            return memoryview(value).cast("B"), t  # type: ignore[arg-type]
        kind = "i" if dt.kind == "i" else "u" if dt.kind == "u" else "f" if dt.kind == "f" else dt.kind
        t = _DTYPES.get((kind, dt.itemsize))
        if t is None:
            raise EncodeError(f"cannot encode a numpy array of dtype {dt} (int8..64, uint8..64, float32, float64)")
        if dt.byteorder == ">":
            value = value.astype(dt.newbyteorder("<"))
        arr = _np.ascontiguousarray(value).reshape(-1)
        return memoryview(arr).cast("B"), t  # type: ignore[arg-type]
    if isinstance(value, (memoryview, array.array)):
        mv = memoryview(value)
        t = _FORMATS.get(mv.format.lstrip("@=<"))
        if t is None:
            raise EncodeError(f"cannot encode a buffer of format {mv.format!r}")
        if not mv.c_contiguous:
            mv = memoryview(mv.tobytes()).cast(mv.format)
        return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv, t
    return None


# Where a value is, for error messages: "value", or (parent, kind, key) built as the encoder
# descends — a tuple per level, formatted only when an error names it.
_Where = Any
_CYCLE_DEPTH: Final = 16  # containers are checked for cycles from this depth on (a cycle always gets there)
_KEYS: dict[str, bytes] = {}  # encoded short ASCII map keys (fixstr)
_KEYS_MAX: Final = 4096


def _path(where: _Where) -> str:
    """The readable form of a ``where`` (``value.a[0]``)."""
    parts: list[str] = []
    while isinstance(where, tuple):
        where, kind, key = where
        parts.append(f".{key}" if kind == 0 else f"[{key}]" if kind == 1 else f"[{key!r}]" if kind == 2 else f" ({key})")
    return str(where) + "".join(reversed(parts))


class _Encoder:
    __slots__ = ("out", "buffers", "types", "seen", "stack", "wide_maps")

    def __init__(self, wide_maps: bool = False) -> None:
        self.wide_maps = wide_maps  # map 16 headers for every map (the control protocol's form)
        self.out = bytearray()
        self.buffers: list[memoryview] = []
        self.types: list[int] = []
        self.seen: dict[int, int] = {}
        self.stack: set[int] = set()

    def value(self, v: object, where: _Where, depth: int) -> None:
        out = self.out
        t = type(v)  # the common exact types first: no isinstance chain for them
        if t is str:
            self.string(v)  # type: ignore[arg-type]
            return
        if t is int:
            if 0 <= v < 0x80:  # type: ignore[operator]
                out.append(v)  # type: ignore[arg-type]
            else:
                self.integer(v, where)  # type: ignore[arg-type]
            return
        if t is float:
            out.append(0xCB)
            out += _F64.pack(v)
            return
        if t is dict and not self.wide_maps:
            self.mapping(v, where, depth)  # type: ignore[arg-type]
            return
        if _np is not None and t is _np.ndarray:
            self.buffer(v, where)
            return
        if v is None:
            out.append(0xC0)
        elif v is True:
            out.append(0xC3)
        elif v is False:
            out.append(0xC2)
        elif isinstance(v, int):
            self.integer(v, where)
        elif isinstance(v, float):
            out.append(0xCB)
            out += _F64.pack(v)
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, (list, tuple, dict, set, frozenset)):
            if depth >= MAX_DEPTH:
                raise EncodeError(f"cannot encode {_path(where)}: nested deeper than {MAX_DEPTH} levels")
            key = id(v)
            check = depth >= _CYCLE_DEPTH
            if check:
                if key in self.stack:
                    raise EncodeError(f"cannot encode {_path(where)}: a cycle")
                self.stack.add(key)
            if isinstance(v, (list, tuple)):
                self.header(len(v), 0x90, 0xDC)
                for i, item in enumerate(v):
                    self.value(item, (where, 1, i), depth + 1)
            elif isinstance(v, dict):
                self.mapping(v, where, depth, check=False)
            else:
                out += bytes((0xD4, TAG_SET, 0))
                self.header(len(v), 0x90, 0xDC)
                for item in v:
                    self.value(item, (where, 3, "an element"), depth + 1)
            if check:
                self.stack.discard(key)
        elif isinstance(v, _dt.datetime):
            self.timestamp(v)
        elif _np is not None and isinstance(v, _np.generic) and not isinstance(v, _np.ndarray):
            if isinstance(v, _np.bool_):
                self.value(bool(v), where, depth)
            elif isinstance(v, _np.integer):
                self.integer(int(v), where)
            elif isinstance(v, _np.floating):
                self.value(float(v), where, depth)
            else:
                raise EncodeError(f"cannot encode {_path(where)}: a numpy {type(v).__name__}")
        else:
            self.buffer(v, where)

    def buffer(self, v: object, where: _Where) -> None:
        """An out-of-band buffer (its index; the same object twice is one buffer)."""
        index = self.seen.get(id(v))
        if index is None:
            b = _binary(v)
            if b is None:
                raise EncodeError(f"cannot encode {_path(where)}: {type(v).__name__} is not a type the codec carries")
            index = len(self.buffers)
            self.seen[id(v)] = index
            self.buffers.append(b[0])
            self.types.append(b[1])
        self.out += bytes((0xD4, TAG_BUFFER, 0))
        if index < 0x80:
            self.out.append(index)
        else:
            self.integer(index, where)

    def mapping(self, v: dict[Any, Any], where: _Where, depth: int, check: bool = True) -> None:
        """A dict: a map when every key is a string (but ``__proto__``), else a Map tag."""
        out = self.out
        key = id(v)
        if check:
            if depth >= MAX_DEPTH:
                raise EncodeError(f"cannot encode {_path(where)}: nested deeper than {MAX_DEPTH} levels")
            check = depth >= _CYCLE_DEPTH
            if check:
                if key in self.stack:
                    raise EncodeError(f"cannot encode {_path(where)}: a cycle")
                self.stack.add(key)
        mark, marked = len(out), len(self.buffers)
        if self.wide_maps:
            out += b"\xde" + len(v).to_bytes(2, "big")
        else:
            self.header(len(v), 0x80, 0xDE)
        keys = _KEYS
        for k, item in v.items():
            kb = keys.get(k) if type(k) is str else None
            if kb is None:
                if not isinstance(k, str) or k == "__proto__":
                    # not a plain map after all: back to the mark, then a Map tag and [k0, v0, ...]
                    del out[mark:]
                    self._forget(marked)
                    out += bytes((0xD4, TAG_MAP, 0))
                    self.header(2 * len(v), 0x90, 0xDC)
                    for k2, item2 in v.items():
                        self.value(k2, (where, 3, "a key"), depth + 1)
                        self.value(item2, (where, 2, k2), depth + 1)
                    break
                if len(k) < 32 and k.isascii():
                    kb = bytes((0xA0 | len(k),)) + k.encode("ascii")
                    if len(keys) < _KEYS_MAX:
                        keys[k] = kb
                    out += kb
                else:
                    self.string(k)
            else:
                out += kb
            self.value(item, (where, 0, k), depth + 1)
        if check:
            self.stack.discard(key)

    def _forget(self, marked: int) -> None:
        """Drops the buffers found after ``marked`` (their values are encoded again)."""
        if len(self.buffers) > marked:
            del self.buffers[marked:]
            del self.types[marked:]
            self.seen = {k: i for k, i in self.seen.items() if i < marked}

    def integer(self, v: int, where: _Where) -> None:
        out = self.out
        if 0 <= v < 0x80:
            out.append(v)
        elif -32 <= v < 0:
            out.append(v & 0xFF)
        elif 0 <= v <= 0xFF:
            out += bytes((0xCC, v))
        elif 0 <= v <= 0xFFFF:
            out += b"\xcd" + v.to_bytes(2, "big")
        elif 0 <= v <= 0xFFFFFFFF:
            out += b"\xce" + v.to_bytes(4, "big")
        elif -0x80 <= v < 0:
            out += b"\xd0" + v.to_bytes(1, "big", signed=True)
        elif -0x8000 <= v < 0:
            out += b"\xd1" + v.to_bytes(2, "big", signed=True)
        elif -0x80000000 <= v < 0:
            out += b"\xd2" + v.to_bytes(4, "big", signed=True)
        elif -(1 << 63) <= v < (1 << 63):
            out += b"\xd3" + v.to_bytes(8, "big", signed=True)
        elif 0 <= v < (1 << 64):
            out += b"\xcf" + v.to_bytes(8, "big")
        else:
            raise EncodeError(f"cannot encode {_path(where)}: the integer {v} is outside -2**63 .. 2**64-1")

    def string(self, s: str) -> None:
        if len(s) < 32 and s.isascii():  # a short ASCII string: fixstr, its bytes as they are
            self.out.append(0xA0 | len(s))
            self.out += s.encode("ascii")
            return
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates become U+FFFD, as in TypeScript
            b = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s).encode("utf-8")
        n = len(b)
        if n < 32:
            self.out.append(0xA0 | n)
        elif n <= 0xFF:
            self.out += bytes((0xD9, n))
        elif n <= 0xFFFF:
            self.out += b"\xda" + n.to_bytes(2, "big")
        else:
            self.out += b"\xdb" + n.to_bytes(4, "big")
        self.out += b

    def header(self, n: int, fix: int, wide: int) -> None:
        if n < 16:
            self.out.append(fix | n)
        elif n <= 0xFFFF:
            self.out += bytes((wide,)) + n.to_bytes(2, "big")
        else:
            self.out += bytes((wide + 1,)) + n.to_bytes(4, "big")

    def timestamp(self, d: _dt.datetime) -> None:
        ms = round(d.timestamp() * 1000)
        sec, rem = divmod(ms, 1000)
        nsec = rem * 1_000_000
        if nsec == 0 and 0 <= sec < (1 << 32):
            self.out += b"\xd6\xff" + sec.to_bytes(4, "big")
        elif 0 <= sec < (1 << 34):
            self.out += b"\xd7\xff" + ((nsec << 34) | sec).to_bytes(8, "big")
        else:
            self.out += b"\xc7\x0c\xff" + nsec.to_bytes(4, "big") + sec.to_bytes(8, "big", signed=True)


def plan(value: object) -> FramePlan:
    """Encodes ``value`` once (raises :class:`EncodeError` for what cannot travel).

    ``bytes``, ``bytearray`` and byte-format memoryviews at the top level make a raw frame
    (no MessagePack); everything else a value frame.
    """
    t = type(value)
    if t is dict:  # the common case first
        pass
    elif isinstance(value, (bytes, bytearray)) or (isinstance(value, memoryview) and value.format == "B" and value.ndim == 1):
        mv = memoryview(value)
        if mv.nbytes > MAX_FRAME - HEADER_BYTES:
            raise FrameTooLargeError(f"a raw frame of {mv.nbytes} bytes exceeds the 4 GiB frame limit")
        return FramePlan(_HEADER.pack(FRAME_MAGIC, FRAME_VERSION, KIND_RAW, 0, mv.nbytes, 0), [mv] if mv.nbytes else [], HEADER_BYTES + mv.nbytes)
    enc = _Encoder()
    enc.value(value, "value", 0)
    body = enc.out
    count = len(enc.buffers)
    at = HEADER_BYTES + ENTRY_BYTES * count + len(body)
    table = bytearray()
    for buf, bt in zip(enc.buffers, enc.types):
        start = (at + 15) & ~15
        table += _ENTRY.pack(start, buf.nbytes, bt)
        at = start + buf.nbytes
    if at > MAX_FRAME:
        raise FrameTooLargeError(f"a frame of {at} bytes exceeds the 4 GiB frame limit")
    head = bytearray(_HEADER.pack(FRAME_MAGIC, FRAME_VERSION, KIND_VALUE, 0, len(body), count))
    head += table
    head += body
    return FramePlan(head, enc.buffers, at)


def encode(value: object) -> bytes:
    """One contiguous frame of ``value``."""
    p = plan(value)
    if not p.buffers:
        return p.head
    return p.to_bytes()


# ---- decoding ------------------------------------------------------------------------------


class _Decoder:
    __slots__ = ("b", "end", "views")

    def __init__(self, b: memoryview, end: int, views: list[object]) -> None:
        self.b = b
        self.end = end
        self.views = views

    def need(self, pos: int, n: int) -> None:
        if pos + n > self.end:
            raise ProtocolError("malformed frame: a MessagePack length runs past the body")

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        b = self.b
        if pos >= self.end:
            raise ProtocolError("malformed frame: a MessagePack length runs past the body")
        c = b[pos]
        pos += 1
        if c <= 0x7F:
            return c, pos
        if c >= 0xE0:
            return c - 0x100, pos
        if 0xA0 <= c <= 0xBF:
            n = c & 0x1F
            if pos + n > self.end:
                raise ProtocolError("malformed frame: a MessagePack length runs past the body")
            try:
                return str(b[pos:pos + n], "utf-8"), pos + n
            except UnicodeDecodeError as err:
                raise ProtocolError("malformed frame: a string that is not UTF-8") from err
        if 0x90 <= c <= 0x9F:
            return self.array(pos, c & 0x0F, depth)
        if 0x80 <= c <= 0x8F:
            return self.map(pos, c & 0x0F, depth)
        if c == 0xC0:
            return None, pos
        if c == 0xC2:
            return False, pos
        if c == 0xC3:
            return True, pos
        if c in _FIXED:
            fmt = _FIXED[c]
            self.need(pos, fmt.size)
            return fmt.unpack_from(b, pos)[0], pos + fmt.size
        if c in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6, 0xDC, 0xDD, 0xDE, 0xDF):
            size = _LEN_BYTES[c]
            self.need(pos, size)
            n = int.from_bytes(b[pos:pos + size], "big")
            pos += size
            if c in (0xD9, 0xDA, 0xDB):
                return self.text(pos, n)
            if c in (0xC4, 0xC5, 0xC6):
                self.need(pos, n)
                return b[pos:pos + n], pos + n
            if c in (0xDC, 0xDD):
                return self.array(pos, n, depth)
            return self.map(pos, n, depth)
        if c == 0xD4:  # fixext 1: undefined, invalid date, or a tag
            self.need(pos, 2)
            t, d = b[pos], b[pos + 1]
            pos += 2
            if t == 0 and d == 0:
                return None, pos
            if t == 0xFF:
                return None, pos
            if d == 0 and t in (TAG_BUFFER, TAG_MAP, TAG_SET):
                return self.tagged(t, pos, depth)
            raise ProtocolError(f"malformed frame: extension type {t if t < 128 else t - 256} is not in the codec's profile")
        if c == 0xD6:
            self.need(pos, 5)
            if b[pos] != 0xFF:
                raise ProtocolError("malformed frame: fixext 4 that is not a timestamp")
            sec = int.from_bytes(b[pos + 1:pos + 5], "big")
            return _date(sec, 0), pos + 5
        if c == 0xD7:
            self.need(pos, 9)
            if b[pos] != 0xFF:
                raise ProtocolError("malformed frame: fixext 8 that is not a timestamp")
            v = int.from_bytes(b[pos + 1:pos + 9], "big")
            return _date(v & 0x3FFFFFFFF, v >> 34), pos + 9
        if c == 0xC7:
            self.need(pos, 14)
            if b[pos] != 12 or b[pos + 1] != 0xFF:
                raise ProtocolError("malformed frame: ext 8 that is not a 12-byte timestamp")
            nsec = int.from_bytes(b[pos + 2:pos + 6], "big")
            sec = int.from_bytes(b[pos + 6:pos + 14], "big", signed=True)
            return _date(sec, nsec), pos + 14
        raise ProtocolError(f"malformed frame: MessagePack byte 0x{c:02x} is not in the codec's profile")

    def text(self, pos: int, n: int) -> tuple[str, int]:
        self.need(pos, n)
        try:
            return str(self.b[pos:pos + n], "utf-8"), pos + n
        except UnicodeDecodeError as err:
            raise ProtocolError("malformed frame: a string that is not UTF-8") from err

    def array(self, pos: int, n: int, depth: int) -> tuple[list[Any], int]:
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"malformed frame: nested deeper than {MAX_DEPTH} levels")
        if n > self.end - pos:
            raise ProtocolError("malformed frame: an array longer than the bytes left")
        out: list[Any] = []
        for _ in range(n):
            v, pos = self.value(pos, depth + 1)
            out.append(v)
        return out, pos

    def map(self, pos: int, n: int, depth: int) -> tuple[dict[str, Any], int]:
        if depth >= MAX_DEPTH:
            raise ProtocolError(f"malformed frame: nested deeper than {MAX_DEPTH} levels")
        if n > self.end - pos:
            raise ProtocolError("malformed frame: a map longer than the bytes left")
        out: dict[str, Any] = {}
        b = self.b
        end = self.end
        value = self.value
        for _ in range(n):
            if pos >= end:
                raise ProtocolError("malformed frame: a MessagePack length runs past the body")
            c = b[pos]
            if 0xA0 <= c <= 0xBF:  # a short key, read here
                kn = c & 0x1F
                if pos + 1 + kn > end:
                    raise ProtocolError("malformed frame: a MessagePack length runs past the body")
                try:
                    k = str(b[pos + 1:pos + 1 + kn], "utf-8")
                except UnicodeDecodeError as err:
                    raise ProtocolError("malformed frame: a string that is not UTF-8") from err
                pos += 1 + kn
            elif c in (0xD9, 0xDA, 0xDB):
                k, pos = value(pos, depth + 1)
            else:
                raise ProtocolError("malformed frame: a map key that is not a string")
            if k == "__proto__":
                raise ProtocolError('malformed frame: a map key "__proto__"')
            out[k], pos = value(pos, depth + 1)
        return out, pos

    def tagged(self, tag: int, pos: int, depth: int) -> tuple[Any, int]:
        self.need(pos, 1)
        if self.b[pos] == 0xD4:
            raise ProtocolError("malformed frame: a tag followed by another tag")
        if tag == TAG_BUFFER:
            c = self.b[pos]
            if not (c <= 0x7F or c in (0xCC, 0xCD, 0xCE)):
                raise ProtocolError("malformed frame: a buffer tag not followed by an unsigned integer")
            i, pos = self.value(pos, depth)
            if i >= len(self.views):
                raise ProtocolError(f"malformed frame: buffer {i} of {len(self.views)}")
            return self.views[i], pos
        self.need(pos, 1)
        c = self.b[pos]
        if not (0x90 <= c <= 0x9F or c in (0xDC, 0xDD)):
            raise ProtocolError("malformed frame: a Map or Set tag not followed by an array")
        items, pos = self.value(pos, depth)
        if tag == TAG_SET:
            return {_hashable(x) for x in items}, pos
        if len(items) % 2:
            raise ProtocolError("malformed frame: a Map tag with an odd number of items")
        return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}, pos


_FIXED: Final[dict[int, struct.Struct]] = {
    0xCA: struct.Struct(">f"), 0xCB: struct.Struct(">d"),
    0xCC: struct.Struct(">B"), 0xCD: struct.Struct(">H"), 0xCE: struct.Struct(">I"), 0xCF: struct.Struct(">Q"),
    0xD0: struct.Struct(">b"), 0xD1: struct.Struct(">h"), 0xD2: struct.Struct(">i"), 0xD3: struct.Struct(">q"),
}
_LEN_BYTES: Final[dict[int, int]] = {
    0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4, 0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4,
}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _date(sec: int, nsec: int) -> _dt.datetime | None:
    if nsec > 999_999_999:
        raise ProtocolError("malformed frame: a timestamp with more than 10**9 nanoseconds")
    try:
        return _EPOCH + _dt.timedelta(seconds=sec, milliseconds=nsec // 1_000_000)
    except OverflowError:
        return None  # outside Python's datetime range: like an invalid Date


def _hashable(v: object) -> object:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple((k, _hashable(x)) for k, x in v.items())
    if isinstance(v, set):
        return frozenset(v)
    if isinstance(v, memoryview):
        return v.tobytes()
    if _np is not None and isinstance(v, _np.ndarray):
        return v.tobytes()
    return v


def default_arrays() -> ArrayMode:
    """``"numpy"`` when numpy is installed, else ``"memoryview"``."""
    return "numpy" if HAVE_NUMPY else "memoryview"


def _view(mv: memoryview, t: int, arrays: ArrayMode) -> object:
    if t == 13:
        return bytes(mv)  # an ArrayBuffer: a copy, as in TypeScript
    fmt, _size, dtype = _TYPES[t]
    if t == 12:
        return mv
    if arrays == "numpy" and _np is not None:
        return _np.frombuffer(mv, dtype=_NP_DTYPES[t])
    return mv.cast(fmt) if fmt != "B" else mv


def decode(frame: bytes | bytearray | memoryview, arrays: ArrayMode | None = None) -> Any:
    """Checks the whole frame (docs/codec.md §1.3, §2), then returns the value.

    Binary values are read-only views over ``frame`` (numpy arrays, or memoryviews with
    ``arrays="memoryview"`` or without numpy); a raw frame is a memoryview of its payload.
    Every malformed frame raises :class:`ProtocolError`.
    """
    mode: ArrayMode = arrays if arrays is not None else default_arrays()
    mv = frame if type(frame) is memoryview else memoryview(frame)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    if not mv.readonly:
        mv = mv.toreadonly()
    n = mv.nbytes
    if n < HEADER_BYTES:
        raise ProtocolError(f"malformed frame: {n} bytes, less than its 16-byte header")
    magic, version, kind, flags, body_length, count = _HEADER.unpack_from(mv, 0)
    if magic != FRAME_MAGIC:
        raise ProtocolError(f"malformed frame: magic 0x{magic:08x}, not a Plexus frame")
    if version != FRAME_VERSION:
        raise ProtocolError(f"malformed frame: version {version} (this side reads version {FRAME_VERSION})")
    if kind == KIND_RAW:
        if flags & ~1 or count != 0 or HEADER_BYTES + body_length != n:
            raise ProtocolError("malformed raw frame: flags, buffer count or length do not match")
        return mv[HEADER_BYTES:]
    if kind != KIND_VALUE:
        raise ProtocolError(f"malformed frame: kind {kind}")
    if flags != 0:
        raise ProtocolError("malformed frame: flags of a value frame must be 0")
    table_end = HEADER_BYTES + ENTRY_BYTES * count
    if table_end > n:
        raise ProtocolError(f"malformed frame: a table of {count} buffers does not fit {n} bytes")
    body_end = table_end + body_length
    if body_length < 1 or body_end > n:
        raise ProtocolError("malformed frame: the body does not fit the frame")
    views: list[object] = []
    at = body_end
    for i in range(count):
        e = HEADER_BYTES + ENTRY_BYTES * i
        off, length, t, r1, r2, r4 = _ENTRY_READ.unpack_from(mv, e)
        if not 1 <= t <= 14 or r1 or r2 or r4:
            raise ProtocolError(f"malformed frame: buffer {i} has type {t} or non-zero reserved bytes")
        if off % 16 or off < at or off >= at + 16 or length % _TYPES[t][1] or off + length > n:
            raise ProtocolError(f"malformed frame: buffer {i} (offset {off}, {length} bytes) breaks the layout")
        views.append(_view(mv[off:off + length], t, mode))
        at = off + length
    if at != n:
        raise ProtocolError(f"malformed frame: {n} bytes, but its contents end at {at}")
    dec = _Decoder(mv, body_end, views)
    value, pos = dec.value(table_end, 0)
    if pos != body_end:
        raise ProtocolError("malformed frame: bytes after the body's value")
    return value

"""The ring (docs/protocol.md §1): its layout, a reader and a writer, over a memory mapping.

Memory ordering. The control words are 32-bit integers that the TypeScript side accesses with
sequentially consistent atomics. Here:

* every read-modify-write (claiming a slot, the epoch, the ``sleeping`` swaps, a drop-oldest
  reader's ``head``) and every store that is followed by a load of another word (the sleep
  handshake, ``tail`` before looking at ``writerSleeping``) goes through the C library's
  ``__atomic_*`` functions (libatomic, called with ctypes), sequentially consistent on every
  architecture;
* the per-message loads of ``writePos`` and the reads of frame headers are plain aligned 32-bit
  loads through a memoryview. On x86-64 these are atomic, and TSO gives them acquire order (no
  load is reordered with an older load), which is all a reader needs there. On other
  architectures (arm64) every control-word load goes through ``__atomic_load_4`` with
  sequentially consistent order instead.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import mmap
import os
import platform
import random
import struct
import time
from collections import deque
from typing import Any, Callable, Final

from .errors import (
    BackpressureError,
    ClosedError,
    FrameTooLargeError,
    InvalidArgumentError,
    ProtocolError,
    ResourceExhaustedError,
    SequenceError,
    SystemError,
)

MAGIC: Final = 0x52584C50
VERSION: Final = 1
H_MAGIC, H_VERSION, H_HEADER_BYTES, H_CAPACITY, H_MAX_READERS, H_WRITER_PID, H_WRITER_STATE, H_EPOCH = range(0, 32, 4)
H_WRITE_POS: Final = 64
_I_WRITE_POS: Final = H_WRITE_POS >> 2
H_WRITER_SLEEPING: Final = 128
_I_WRITER_SLEEPING: Final = H_WRITER_SLEEPING >> 2
H_WRITER_WAKE: Final = 132
SLOTS: Final = 192
SLOT_BYTES: Final = 128
S_HEAD, S_TAIL, S_DROPPED = 0, 4, 8
S_STATE, S_POLICY, S_PID, S_SLEEPING, S_WAKE, S_WAKE_KIND = 64, 68, 72, 76, 80, 84
FLAG_WRAP: Final = 1
STATE_FREE, STATE_CLAIMED, STATE_ACTIVE = 0, 1, 2
WRITER_OPEN, WRITER_CLOSED = 1, 2
WAKE_EVENTFD: Final = 1
POLICY_CODES: Final = {"block": 0, "drop-oldest": 1, "fail": 2}
MIN_CAPACITY: Final = 4096
MAX_CAPACITY: Final = 1 << 30
MAX_READERS: Final = 256
_FRAME = struct.Struct("<iiII")
_FRAME_HEAD = struct.Struct("<ii")
_I32 = struct.Struct("<i")

_X86: Final = platform.machine().lower() in ("x86_64", "amd64")

ADAPTIVE_MAX: Final = 75e-6
"""Longest adaptive poll before sleeping (s): the most a waiting reader keeps its core."""
LEARN_SLEEP: Final = 100e-6
"""A sleep that ended within this long teaches a poll budget (1.5 times the sleep, at most
:data:`ADAPTIVE_MAX`). A sleep includes this end's own wake-up, so the bound is above the
longest poll: the peer may answer at once and still have been slept on."""
MIN_BUDGET: Final = 10e-6
"""The shortest budget a probe that paid teaches."""
MAX_FAILURES: Final = 10
"""Backoff after failed polls: 2, 4, 8 ... 1024 waits sleep at once (2 ** failures)."""


class AdaptivePoll:
    """When a waiting side polls before it sleeps: the rules of the Node reader
    (src/ring/reader.ts), for every place the Python side waits for a ring.

    * With no budget learnt, a wait **probes**: it polls for up to :data:`ADAPTIVE_MAX` (a peer
      that answers at once is seen without a sleep, and from then on neither end sleeps); a probe
      that pays teaches a budget of 1.5 times what it took (at least :data:`MIN_BUDGET`).
    * A sleep that ended within :data:`LEARN_SLEEP` with something to read teaches 1.5 times
      its length (:meth:`slept`): messages come faster than a wake-up costs the writer.
    * A poll that does not pay forgets the budget and backs off: the next 2, 4, 8 ... 1024
      waits sleep at once. An idle reader therefore polls once per 2 ** 10 wake-ups and costs
      no CPU otherwise.

    Polls yield the core (``sched_yield``) between looks, so a peer waiting for this core runs
    during the poll, not after it. One waiting thread at a time (not thread-safe).
    """

    __slots__ = ("budget", "failures", "backoff")

    def __init__(self) -> None:
        self.budget = 0.0
        self.failures = 0
        self.backoff = 0

    def poll(self, ready: Callable[[], Any]) -> Any:
        """Calls ``ready`` until it returns something true, for the budget; returns that, or
        None (sleep now) when the budget ran out or the poll is backing off."""
        if self.backoff > 0:
            self.backoff -= 1
            return None
        probe = self.budget == 0.0
        clock = time.perf_counter
        started = clock()
        until = started + (ADAPTIVE_MAX if probe else self.budget)
        yield_ = os.sched_yield
        while True:
            got = ready()
            if got:
                self.failures = 0
                if probe:
                    self.budget = min(ADAPTIVE_MAX, max(MIN_BUDGET, (clock() - started) * 1.5))
                return got
            if clock() >= until:
                break
            yield_()
        self.failures = min(self.failures + 1, MAX_FAILURES)
        self.backoff = 1 << self.failures
        self.budget = 0.0
        return None

    def slept(self, seconds: float, readable: bool) -> None:
        """After a sleep of ``seconds``: a short one that ended with something to read teaches
        a budget."""
        if seconds < LEARN_SLEEP and readable:
            self.budget = min(ADAPTIVE_MAX, max(self.budget, seconds * 1.5))


class _Lib:
    """The C library's atomics (libatomic), looked up by name (a ``__`` prefix inside a class
    body would be mangled)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("atomic") or "libatomic.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as err:
            raise SystemError(f"shared-memory rings need the C library's atomics (libatomic.so.1): {err}") from err
        ptr, i32, order = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int

        def fn(symbol: str, args: list[Any], res: Any) -> Any:
            f = getattr(lib, symbol)
            f.argtypes = args
            f.restype = res
            return f

        self.load = fn("__atomic_load_4", [ptr, order], i32)
        self.store = fn("__atomic_store_4", [ptr, i32, order], None)
        self.exchange = fn("__atomic_exchange_4", [ptr, i32, order], i32)
        self.fetch_add = fn("__atomic_fetch_add_4", [ptr, i32, order], i32)
        self.cas = fn("__atomic_compare_exchange_4", [ptr, ptr, i32, ctypes.c_bool, order, order], ctypes.c_bool)
        # the per-message store, without argument conversion (about half the cost of a call): it
        # takes a prebuilt c_void_p and two ints in the int32 range (positions are kept there)
        self.store_fast = lib["__atomic_store_4"]
        self.store_fast.restype = None


_lib: _Lib | None = None
SEQ_CST: Final = 5


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class Atomics:
    """Sequentially consistent 32-bit atomics on a writable mapping (libatomic through ctypes)."""

    def __init__(self, mm: mmap.mmap) -> None:
        global _lib
        if _lib is None:
            _lib = _Lib()
        self.lib = _lib
        self._anchor = ctypes.c_char.from_buffer(mm)
        self.base = ctypes.addressof(self._anchor)
        self.words = memoryview(mm).cast("i")
        self._expected = ctypes.c_int32()

    def load(self, off: int) -> int:
        """An atomic load (a plain aligned load on x86-64, see the module's notes)."""
        if _X86:
            return int(self.words[off >> 2])
        return int(self.lib.load(self.base + off, SEQ_CST))

    def store(self, off: int, v: int) -> None:
        """A sequentially consistent store."""
        self.lib.store(self.base + off, _i32(v), SEQ_CST)

    def exchange(self, off: int, v: int) -> int:
        """Swaps in ``v``; returns the old value."""
        return int(self.lib.exchange(self.base + off, _i32(v), SEQ_CST))

    def add(self, off: int, v: int) -> int:
        """Adds ``v``; returns the old value."""
        return int(self.lib.fetch_add(self.base + off, _i32(v), SEQ_CST))

    def cas(self, off: int, expected: int, v: int) -> bool:
        """Compare-exchange: True if the word held ``expected`` and now holds ``v``."""
        self._expected.value = _i32(expected)
        return bool(self.lib.cas(self.base + off, ctypes.byref(self._expected), _i32(v), False, SEQ_CST, SEQ_CST))

    def release(self) -> None:
        """Drops this object's hold on the mapping."""
        self.words.release()
        del self._anchor


def header_bytes(max_readers: int) -> int:
    """``headerBytes`` for ``max_readers`` slots."""
    return -(-(SLOTS + SLOT_BYTES * max_readers) // 4096) * 4096


def check_header(mm: mmap.mmap, size: int) -> tuple[int, int, int]:
    """Checks a ring's header (§1.1); returns (headerBytes, capacity, maxReaders)."""
    if size < 4096:
        raise ProtocolError(f"a ring of {size} bytes is smaller than its header")
    magic, version, hb, cap, readers = struct.unpack_from("<IIIII", mm, 0)
    if magic != MAGIC or version != VERSION:
        raise ProtocolError(f"not a Plexus ring (magic 0x{magic:08x}, version {version})")
    if cap < MIN_CAPACITY or cap > MAX_CAPACITY or cap & (cap - 1):
        raise ProtocolError(f"a ring capacity of {cap} bytes (a power of two, 4 KiB..1 GiB)")
    if not 1 <= readers <= MAX_READERS or hb != header_bytes(readers) or size != hb + cap:
        raise ProtocolError(f"a ring header that does not match its size ({hb} + {cap} bytes, {readers} readers, {size} mapped)")
    return hb, cap, readers


class RingReader:
    """A reader slot of a ring: takes frames in order (views), releases them in any order."""

    def __init__(self, mm: mmap.mmap, size: int, policy: str, pid: int) -> None:
        self.hb, self.capacity, self.max_readers = check_header(mm, size)
        self.mask = self.capacity - 1
        self.mm = mm
        self.a = Atomics(mm)
        self.view = memoryview(mm)
        self.leaky = policy == "drop-oldest"
        a = self.a
        ticket = random.randint(1, 0x1FFFFFFE)
        slot = -1
        for s in range(self.max_readers):
            if a.cas(self.slot_off(s, S_STATE), STATE_FREE, (ticket << 2) | STATE_CLAIMED):
                slot = s
                break
        if slot < 0:
            raise ResourceExhaustedError(f"all {self.max_readers} reader slots of the ring are taken")
        self.slot = slot
        self.o_head = self.slot_off(slot, S_HEAD)
        self.o_tail = self.slot_off(slot, S_TAIL)
        self.o_sleeping = self.slot_off(slot, S_SLEEPING)
        self._p_tail = ctypes.c_void_p(a.base + self.o_tail)
        a.store(self.slot_off(slot, S_POLICY), POLICY_CODES[policy])
        a.store(self.slot_off(slot, S_PID), pid)
        a.store(self.slot_off(slot, S_WAKE_KIND), WAKE_EVENTFD)
        a.store(self.o_sleeping, 0)
        a.store(self.slot_off(slot, S_DROPPED), 0)
        self._start_at(a.load(H_WRITE_POS))
        self.state_word = _i32((ticket << 2) | STATE_ACTIVE)
        a.store(self.slot_off(slot, S_STATE), self.state_word)
        a.add(H_EPOCH, 1)
        self.head = self._start_at(a.load(H_WRITE_POS))
        self.expected = -1
        self.held: deque[list[int]] = deque()  # [start, released]
        self.missed_seen = 0
        self.left = False

    @staticmethod
    def slot_off(slot: int, field: int) -> int:
        """Byte offset of a slot's field."""
        return SLOTS + SLOT_BYTES * slot + field

    def _start_at(self, pos: int) -> int:
        self.a.store(self.o_head, pos)
        self.a.store(self.o_tail, pos)
        return pos

    @property
    def writer_closed(self) -> bool:
        """The writer closed gracefully."""
        return self.a.load(H_WRITER_STATE) == WRITER_CLOSED

    def readable(self) -> bool:
        """A frame is committed and not taken."""
        a = self.a
        h = a.load(self.o_head) if self.leaky else self.head
        return (a.words[_I_WRITE_POS] if _X86 else a.load(H_WRITE_POS)) != h

    def try_read(self) -> tuple[int, int, int, int] | None:
        """Takes the next frame: (token, sequence, payload offset, length in the mapping) or None."""
        if self.left:
            raise ClosedError("the ring reader has left")
        a = self.a
        leaky = self.leaky
        while True:
            h = a.load(self.o_head) if leaky else self.head
            if (a.words[_I_WRITE_POS] if _X86 else a.load(H_WRITE_POS)) == h:
                return None
            off = h & self.mask
            length, flags, lo, hi = _FRAME.unpack_from(self.mm, self.hb + off)
            if flags & FLAG_WRAP:
                nxt = _i32(h + (self.capacity - off))
                if leaky:
                    if not a.cas(self.o_head, h, nxt):
                        continue
                else:
                    self.head = nxt
                continue
            if not 0 <= length <= (self.capacity >> 1) - 16 or off + 16 + length > self.capacity:
                raise ProtocolError(f"a ring frame of {length} bytes at offset {off} breaks the layout")
            seq = (hi << 32) | lo
            end = (h + 16 + ((length + 15) & ~15)) & 0xFFFFFFFF
            if end & 0x80000000:
                end -= 1 << 32
            if leaky:
                if not a.cas(self.o_head, h, end):
                    continue
                if self.expected >= 0 and seq < self.expected:
                    raise SequenceError(f"ring message {seq} after {self.expected - 1}")
            else:
                self.head = end
                if self.expected >= 0 and seq != self.expected:
                    raise SequenceError(f"ring message {seq}, expected {self.expected}")
            self.expected = seq + 1
            self.held.append([h, 0])
            return h, seq, self.hb + off + 16, length

    def take_missed(self) -> int:
        """Messages the writer dropped for this reader since the last call."""
        total = self.a.load(self.slot_off(self.slot, S_DROPPED))
        n = (total - self.missed_seen) & 0xFFFFFFFF
        self.missed_seen = total
        return n

    def release(self, token: int) -> bool:
        """Releases the frame taken at ``token``; True if the writer should be woken."""
        if self.left:
            return False
        held = self.held
        if held and held[0][0] == token:  # the oldest (in order: the common case)
            held.popleft()
        else:
            for item in held:
                if item[0] == token and not item[1]:
                    item[1] = 1
                    break
            else:
                return False
            if held[0][1] == 0:
                return False
        while held and held[0][1]:
            held.popleft()
        a = self.a
        tail = held[0][0] if held else (a.load(self.o_head) if self.leaky else self.head)
        a.lib.store_fast(self._p_tail, tail, SEQ_CST)  # (Atomics.store, inlined: once per release)
        return (a.words[_I_WRITER_SLEEPING] if _X86 else a.load(H_WRITER_SLEEPING)) != 0 and a.exchange(H_WRITER_SLEEPING, 0) == 1

    def writer_wants_wake(self) -> bool:
        """Swaps ``writerSleeping`` to 0: True if the writer slept and must be woken."""
        return self.a.load(H_WRITER_SLEEPING) != 0 and self.a.exchange(H_WRITER_SLEEPING, 0) == 1

    def prepare_sleep(self) -> bool:
        """Raises the sleeping flag; False (flag lowered) if there is something to read now."""
        self.a.store(self.o_sleeping, 1)
        if self.readable() or self.writer_closed:
            self.a.store(self.o_sleeping, 0)
            return False
        return True

    def woke(self) -> None:
        """Lowers the sleeping flag after a sleep."""
        self.a.store(self.o_sleeping, 0)

    def leave(self) -> bool:
        """Frees the slot (compare-exchange: a new owner is never evicted); True if the writer should be woken."""
        if self.left:
            return False
        self.left = True
        a = self.a
        if a.cas(self.slot_off(self.slot, S_STATE), self.state_word, STATE_FREE):
            a.add(H_EPOCH, 1)
        return a.load(H_WRITER_SLEEPING) != 0 and a.exchange(H_WRITER_SLEEPING, 0) == 1


def init_ring(mm: mmap.mmap, capacity: int, max_readers: int, pid: int) -> None:
    """Writes a fresh ring header (§1.1): every field, then the magic last."""
    a = Atomics(mm)
    try:
        for off, v in ((H_VERSION, VERSION), (H_HEADER_BYTES, header_bytes(max_readers)), (H_CAPACITY, capacity),
                       (H_MAX_READERS, max_readers), (H_WRITER_PID, pid), (H_WRITER_STATE, WRITER_OPEN)):
            a.store(off, v)
        a.store(H_MAGIC, MAGIC)
    finally:
        a.release()


def ring_size(capacity: int, max_readers: int) -> int:
    """Bytes of a ring: its header and its data region."""
    if capacity < MIN_CAPACITY or capacity > MAX_CAPACITY or capacity & (capacity - 1):
        raise InvalidArgumentError(f"a ring capacity must be a power of two in {MIN_CAPACITY}..{MAX_CAPACITY}, got {capacity}")
    if not 1 <= max_readers <= MAX_READERS:
        raise InvalidArgumentError(f"a ring's readers must be an integer in 1..{MAX_READERS}, got {max_readers}")
    return header_bytes(max_readers) + capacity


class RingWriter:
    """The writer of a ring (§1.4): reserves frames under every active reader's policy, commits
    them with one sequentially consistent store of ``writePos`` and tells which readers sleep.

    ``doorbell(slot)`` is called for each reader that must be woken. Not thread-safe: one
    writing thread (the publisher serialises its writes).
    """

    def __init__(self, mm: mmap.mmap, doorbell: Callable[[int], None]) -> None:
        self.hb, self.capacity, self.max_readers = check_header(mm, len(mm))
        self.mask = self.capacity - 1
        self.max_payload = self.capacity // 2 - 16
        self.mm = mm
        self.view = memoryview(mm)
        self.a = Atomics(mm)
        self._p_write_pos = ctypes.c_void_p(self.a.base + H_WRITE_POS)
        self.doorbell = doorbell
        self.pos = self.a.load(H_WRITE_POS)
        self.seq = 1
        self.limit = self.pos
        self.epoch = -1
        self.active: list[int] = []
        self.closed = False
        self.dropped = 0
        # frames this writer keeps (in-place answers, §6.1): by pin id, the frame's position; the
        # writer's limit is also the oldest pinned frame + capacity, as if it were a reader's tail
        self.pins: dict[int, int] = {}
        self._pin_ids = itertools.count(1)

    def slot_off(self, slot: int, field: int) -> int:
        """Byte offset of a slot's field."""
        return SLOTS + SLOT_BYTES * slot + field

    def pin(self, pos: int) -> int:
        """Keeps the frame at ``pos`` (a position this writer reserved) from being written over
        until :meth:`unpin`; returns the pin's id. From the writing thread."""
        k = next(self._pin_ids)
        self.pins[k] = pos
        return k

    def unpin(self, k: int) -> None:
        """Gives a pinned frame back (idempotent; from any thread)."""
        self.pins.pop(k, None)

    def readers(self) -> int:
        """Active readers now."""
        self._refresh()
        return len(self.active)

    def _refresh(self) -> None:
        a = self.a
        epoch = a.words[H_EPOCH >> 2] if _X86 else a.load(H_EPOCH)
        if epoch == self.epoch:
            return
        self.epoch = epoch
        self.active = [s for s in range(self.max_readers) if a.load(self.slot_off(s, S_STATE)) & 3 == STATE_ACTIVE]

    def try_reserve(self, n: int) -> int | None:
        """Reserves a frame for ``n`` payload bytes: the payload's offset in the mapping, or None
        if a ``block`` reader has no room (BackpressureError for a ``fail`` one)."""
        if self.closed:
            raise ClosedError("the ring writer is closed")
        if not 0 <= n <= self.max_payload:
            raise FrameTooLargeError(f"a message of {n} bytes exceeds the ring's limit of {self.max_payload} bytes (capacity {self.capacity} / 2 - 16)")
        total = 16 + ((n + 15) & ~15)
        pos = self.pos
        off = pos & self.mask
        room = self.capacity - off
        needed = total if total <= room else room + total
        if _i32(self.limit - pos - needed) < 0 or self.a.load(H_EPOCH) != self.epoch:
            if not self._scan(pos, needed):
                return None
        if total <= room:
            return self.hb + off + 16
        # wrap: a marker covers the rest of this lap (its length is room - 16), the frame starts the next
        _FRAME_HEAD.pack_into(self.mm, self.hb + off, room - 16, FLAG_WRAP)
        self.pos = _i32(pos + room)
        return self.hb + 16

    def commit(self, n: int) -> int:
        """Publishes the reserved frame with ``n`` payload bytes; returns its sequence number."""
        pos = self.pos
        seq = self.seq
        _FRAME.pack_into(self.mm, self.hb + (pos & self.mask), n, 0, seq & 0xFFFFFFFF, seq >> 32)
        self.seq = seq + 1
        p = (pos + 16 + ((n + 15) & ~15)) & 0xFFFFFFFF
        if p & 0x80000000:
            p -= 1 << 32
        self.pos = p
        a = self.a
        a.lib.store_fast(self._p_write_pos, p, SEQ_CST)  # (Atomics.store, inlined: once per message)
        words = a.words
        for slot in self.active:
            o = SLOTS + SLOT_BYTES * slot + S_SLEEPING
            if (words[o >> 2] if _X86 else a.load(o)) != 0 and a.exchange(o, 0) != 0:
                self.doorbell(slot)
        return seq

    def _scan(self, pos: int, needed: int) -> bool:
        self._refresh()
        a = self.a
        want = _i32(pos + needed)
        limit = _i32(pos + self.capacity)
        blocked = False
        leaky: list[int] = []
        for slot in self.active:
            if a.load(self.slot_off(slot, S_STATE)) & 3 != STATE_ACTIVE:
                continue
            tail = a.load(self.slot_off(slot, S_TAIL))
            if _i32(want - tail) > self.capacity:
                policy = a.load(self.slot_off(slot, S_POLICY))
                if policy == POLICY_CODES["fail"]:
                    raise BackpressureError(f"reader {slot} has no room for a {needed}-byte frame (policy \"fail\")")
                if policy == POLICY_CODES["drop-oldest"]:
                    leaky.append(slot)
                else:
                    blocked = True
            end = _i32(tail + self.capacity)
            if _i32(end - limit) < 0:
                limit = end
        for p in list(self.pins.values()):
            end = _i32(p + self.capacity)
            if _i32(end - limit) < 0:
                limit = end
        if not blocked and leaky:
            for slot in leaky:
                if not self._drop(slot, _i32(want - self.capacity)):
                    blocked = True
            if not blocked:
                return self._scan(pos, needed)
        self.limit = limit
        return not blocked and _i32(limit - want) >= 0

    def _drop(self, slot: int, need: int) -> bool:
        """§1.6: skips a drop-oldest reader's oldest frames up to ``need``; False if it holds frames."""
        a = self.a
        oh, ot = self.slot_off(slot, S_HEAD), self.slot_off(slot, S_TAIL)
        for _ in range(4):
            head = a.load(oh)
            if a.load(ot) != head:
                return False
            p, frames = head, 0
            while _i32(p - need) < 0 and p != self.pos:
                off = p & self.mask
                length, flags = _FRAME_HEAD.unpack_from(self.mm, self.hb + off)
                if flags & FLAG_WRAP:
                    p = _i32(p + self.capacity - off)
                    continue
                p = _i32(p + 16 + ((length + 15) & ~15))
                frames += 1
            if a.cas(oh, head, p):
                a.cas(ot, head, p)
                a.add(self.slot_off(slot, S_DROPPED), frames)
                self.dropped += frames
                return True
        return False

    def want_wake(self) -> None:
        """Before sleeping for room: raises ``writerSleeping`` (readers that release swap it and ring)."""
        self.a.store(H_WRITER_SLEEPING, 1)

    def evict(self, slot: int, state_word: int) -> None:
        """Frees a dead reader's slot (compare-exchange: a new owner is never evicted)."""
        if self.a.cas(self.slot_off(slot, S_STATE), state_word, STATE_FREE):
            self.a.add(H_EPOCH, 1)

    def slot_state(self, slot: int) -> int:
        """A slot's state word now."""
        return self.a.load(self.slot_off(slot, S_STATE))

    def close(self) -> None:
        """Stores ``writerState = 2`` and wakes every active reader."""
        if self.closed:
            return
        self.closed = True
        self.a.store(H_WRITER_STATE, WRITER_CLOSED)
        self.epoch = -1
        self._refresh()
        for slot in self.active:
            self.a.exchange(self.slot_off(slot, S_SLEEPING), 0)
            self.doorbell(slot)

"""The ring (docs/protocol.md §1) and the shm handshake (§2): the page's vectors, and a writer
and readers of this package over real shared memory and Unix sockets."""
from __future__ import annotations

import mmap
import threading
import time

import pytest

from plexus import ring, shm
from plexus.errors import BackpressureError, TimeoutError
from vectors import VECTORS


def fresh(capacity: int = 4096, readers: int = 1) -> mmap.mmap:
    mm = mmap.mmap(-1, ring.ring_size(capacity, readers))
    ring.init_ring(mm, capacity, readers, 4242)
    return mm


def test_vector_ring_header() -> None:
    mm = fresh()
    assert mm[:32] == VECTORS["ring.header"]
    assert not any(mm[32:4096])
    assert ring.check_header(mm, len(mm)) == (4096, 4096, 1)


def test_vectors_ring_frame_and_wrap() -> None:
    mm = fresh()
    reader = ring.RingReader(mm, len(mm), "block", 1)
    writer = ring.RingWriter(mm, lambda slot: None)
    hb = 4096

    def write(payload: bytes) -> None:
        at = writer.try_reserve(len(payload))
        assert at is not None
        mm[at:at + len(payload)] = payload
        writer.commit(len(payload))

    def read() -> tuple[int, bytes, int]:
        got = reader.try_read()
        assert got is not None
        token, seq, at, length = got
        data = bytes(mm[at:at + length])
        reader.release(token)
        return seq, data, at - hb - 16

    write(b"abc")
    assert mm[hb:hb + 32] == VECTORS["ring.frame"]
    assert read() == (1, b"abc", 0)
    write(bytes(2032))
    assert read() == (2, bytes(2032), 32)
    write(b"\x5a" * 2032)
    assert mm[hb + 2080:hb + 2096] == VECTORS["ring.wrap"]
    assert read() == (3, b"\x5a" * 2032, 0)
    assert reader.try_read() is None


def test_vectors_of_the_shm_handshake() -> None:
    assert shm.join_message(0, 0x1234 << 2 | 2, 4242) == VECTORS["shm.join"]
    assert shm.answer_message(0) == VECTORS["shm.accept"]
    assert shm.answer_message(1) == VECTORS["shm.refuse"]


def test_a_reader_refuses_a_header_that_breaks_the_rules() -> None:
    mm = fresh()
    mm[12:16] = (3000).to_bytes(4, "little")
    with pytest.raises(Exception, match="capacity"):
        ring.check_header(mm, len(mm))


def connect(tx: shm.ShmSender, policy: str = "block") -> shm.ShmReceiver:
    rx = shm.ShmReceiver(tx.name, tx.socket_name, policy=policy)
    deadline = time.monotonic() + 5
    while tx.receivers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return rx


def send(tx: shm.ShmSender, payload: bytes, timeout: float = 2.0) -> None:
    at = tx.reserve(len(payload), timeout)
    tx.writer.view[at:at + len(payload)] = payload
    tx.writer.commit(len(payload))


def test_messages_cross_in_order_through_many_laps_with_releases_out_of_order() -> None:
    tx = shm.ShmSender(capacity=4096, max_readers=2)
    a, b = connect(tx), connect(tx)
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def consume(name: str, rx: shm.ShmReceiver) -> None:
        held: list[int] = []
        while True:
            m = rx.receive(5)
            if m is None:
                break
            got[name].append(bytes(m[1]))
            held.append(m[2])
            if len(held) == 3:  # releases the newest first
                for t in reversed(held):
                    rx.release(t)
                held.clear()
        for t in held:
            rx.release(t)

    threads = [threading.Thread(target=consume, args=(n, r)) for n, r in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    sent = [bytes([i % 256]) * (i % 700) for i in range(400)]
    for m in sent:
        send(tx, m)
    tx.close()
    for t in threads:
        t.join(10)
    assert got["a"] == sent and got["b"] == sent
    a.close()
    b.close()


def test_block_waits_for_room_and_times_out_fail_refuses() -> None:
    tx = shm.ShmSender(capacity=4096)
    rx = connect(tx)
    send(tx, bytes(2032))
    m = rx.receive(1)
    assert m is not None
    send(tx, bytes(2032))  # the ring is full: the reader holds the first half, has not taken the second
    with pytest.raises(TimeoutError):
        send(tx, bytes(16), timeout=0.1)
    threading.Timer(0.05, rx.release, args=(m[2],)).start()
    send(tx, bytes(16), timeout=2)  # room once released: the reader's release woke the writer
    rx.close()
    tx.close()

    tx = shm.ShmSender(capacity=4096)
    rx = connect(tx, "fail")
    send(tx, bytes(2000))
    send(tx, bytes(1000))
    with pytest.raises(BackpressureError):
        send(tx, bytes(2000))
    rx.close()
    tx.close()


def test_drop_oldest_loses_the_oldest_and_counts_them() -> None:
    tx = shm.ShmSender(capacity=4096)
    rx = connect(tx, "drop-oldest")
    for i in range(10):
        send(tx, bytes([i]) * 1000)
    seqs = []
    while True:
        m = rx.receive(0.05) if rx.reader.readable() else None
        if m is None:
            break
        seqs.append((m[0], m[1][0]))
        rx.release(m[2])
    assert seqs[-1] == (10, 9) and len(seqs) < 10
    assert rx.take_missed() == 10 - len(seqs)
    rx.close()
    tx.close()


def test_a_reader_that_leaves_or_whose_socket_ends_frees_its_slot() -> None:
    tx = shm.ShmSender(capacity=4096, max_readers=1)
    rx = connect(tx)
    assert tx.writer.readers() == 1
    rx.close()
    deadline = time.monotonic() + 5
    while (tx.writer.readers() or tx.receivers) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert tx.writer.readers() == 0 and tx.receivers == 0
    again = connect(tx)  # the freed slot is taken again
    assert tx.receivers == 1
    again.close()
    tx.close()


def test_the_end_after_what_was_committed() -> None:
    tx = shm.ShmSender(capacity=8192)
    rx = connect(tx)
    send(tx, b"last")
    tx.close()
    m = rx.receive(1)
    assert m is not None and bytes(m[1]) == b"last"
    rx.release(m[2])
    assert rx.receive(1) is None
    rx.close()


def test_a_pinned_frame_is_not_written_over_once_readers_released_it_until_unpinned() -> None:
    mm = fresh()  # 4096 bytes of data
    reader = ring.RingReader(mm, len(mm), "block", 1)
    writer = ring.RingWriter(mm, lambda slot: None)

    def write(n: int, fill: int) -> int | None:
        at = writer.try_reserve(n)
        if at is None:
            return None
        mm[at:at + n] = bytes([fill]) * n
        writer.commit(n)
        return at

    def drain() -> None:
        while (got := reader.try_read()) is not None:
            reader.release(got[0])

    held_at = writer.pos
    at = write(1008, 1)  # a 1024-byte frame, pinned (an in-place request's)
    assert at is not None
    pin = writer.pin(held_at)
    drain()  # the reader let go of it: only the pin keeps it
    assert write(1008, 2) is not None and write(1008, 3) is not None and write(1008, 4) is not None
    drain()
    assert write(1008, 5) is None, "the next frame would be written over the pinned one"
    assert bytes(mm[at:at + 1008]) == b"\x01" * 1008
    writer.unpin(pin)
    assert write(1008, 5) == at, "unpinned: the ring goes round over it"

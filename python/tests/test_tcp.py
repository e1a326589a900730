"""The tcp transport (docs/protocol.md §5) between this package's sender and receiver."""
from __future__ import annotations

import time

import pytest

from plexus import tcp
from plexus.errors import BackpressureError, TimeoutError


def joined(tx: tcp.TcpSender, policy: tcp.Policy) -> tcp.TcpReceiver:
    rx = tcp.TcpReceiver(tx.host, tx.port, policy=policy)
    deadline = time.monotonic() + 5
    while tx.receivers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return rx


def test_block_waits_for_credit_and_fail_refuses() -> None:
    tx = tcp.TcpSender(window=4096)
    rx = joined(tx, "block")
    for _ in range(4):
        tx.send([bytes(1000)], 1000)  # 4 frames of 1024 bytes: the window
    with pytest.raises(TimeoutError):
        tx.send([bytes(1000)], 1000, timeout=0.1)
    for _ in range(4):
        f = rx.receive(1)
        assert f is not None
        f.release()
    tx.send([bytes(1000)], 1000, timeout=2)  # the releases came back as credit
    rx.close()
    tx.close()

    tx = tcp.TcpSender(window=4096)
    rx = joined(tx, "fail")
    for _ in range(4):
        tx.send([bytes(1000)], 1000)
    with pytest.raises(BackpressureError):
        tx.send([bytes(1000)], 1000)
    rx.close()
    tx.close()


def test_drop_oldest_queues_a_window_at_the_sender_and_never_drops_the_newest() -> None:
    tx = tcp.TcpSender(window=4096)
    rx = joined(tx, "drop-oldest")
    for i in range(20):
        tx.send([bytes([i]) * 1000], 1000)  # 4 fit the window, the last 4 stay queued
    got = []
    while len(got) < 8:
        f = rx.receive(2)
        assert f is not None
        got.append((f.sequence, f.payload[0]))
        f.release()
    assert got == [(1, 0), (2, 1), (3, 2), (4, 3), (17, 16), (18, 17), (19, 18), (20, 19)]
    tx.close()
    assert rx.receive(2) is None  # END after the queue
    rx.close()

"""A publisher's own rules (loans, the message format in its ring), without a GraphServer: a
stand-in node answers the publisher's two registrations and a ring reader reads what it writes."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from plexus import pubsub, shm
from plexus.errors import InvalidArgumentError


class Graph:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def request(self, op: str, args: dict[str, Any] | None = None) -> Any:
        self.requests.append((op, args or {}))
        return {"publisher": "p1"} if op == "publisher.add" else {}


class StandIn:
    def __init__(self) -> None:
        self.graph = Graph()
        self.identity = {"host": "h/1", "pid": 1, "threadId": 0}

    def _forget(self, port: object) -> None:
        pass


def publisher() -> tuple[pubsub.Publisher[Any], shm.ShmReceiver, StandIn]:
    node = StandIn()
    pub: pubsub.Publisher[Any] = pubsub.Publisher(node, "t", capacity=1 << 16, transport="shm")  # type: ignore[arg-type]
    ep = node.graph.requests[-1][1]["endpoints"]["shm"]
    rx = shm.ShmReceiver(ep["name"], ep["socket"])
    deadline = time.monotonic() + 5
    while pub.subscribers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return pub, rx, node


def test_registrations_name_the_segment_and_the_ring() -> None:
    pub, rx, node = publisher()
    ops = [op for op, _ in node.graph.requests]
    assert ops == ["segment.add", "publisher.add"]
    assert node.graph.requests[0][1]["name"] == node.graph.requests[1][1]["endpoints"]["shm"]["name"]
    rx.close()
    pub.close()
    assert [op for op, _ in node.graph.requests][-2:] == ["port.remove", "segment.remove"]


def test_published_values_and_loans_in_the_ring() -> None:
    pub, rx, _ = publisher()
    assert pub.publish({"v": np.arange(3, dtype=np.int16)}) == 1
    _, view, token = rx.receive(1)  # type: ignore[misc]
    assert pubsub.decode_message(view)[1]["v"].tolist() == [0, 1, 2]
    rx.release(token)
    loan = pub.loan(8)
    with pytest.raises(InvalidArgumentError):
        pub.publish("not while a loan is open")
    with pytest.raises(InvalidArgumentError):
        pub.loan(1)
    loan.bytes[:] = b"abcdefgh"
    assert loan.commit(3) == 2
    _, view, token = rx.receive(1)  # type: ignore[misc]
    seq, value = pubsub.decode_message(view)
    assert seq == 2 and bytes(value) == b"abc", "the committed length, the publisher's next sequence"
    rx.release(token)
    with pub.loan(4) as dropped:
        dropped.bytes[:] = b"zzzz"  # never committed: aborted when the block ends
    assert pub.publish(b"next") == 3
    _, view, token = rx.receive(1)  # type: ignore[misc]
    assert bytes(pubsub.decode_message(view)[1]) == b"next"
    rx.release(token)
    rx.close()
    pub.close()

"""Waiting for a ring: the adaptive poll's rules (those of the Node reader), and what an idle
reader costs — a subscriber and a bare ring receiver (the rpc server's and client's waits) with
no traffic must use (almost) no CPU. Publishers and subscribers here are in-process, linked
through a real ring in shared memory; CPU is the waiting thread's own time."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from plexus import pubsub, ring
from plexus.errors import TimeoutError
from test_pubsub import publisher

IDLE = 2.0  # seconds of waiting with nothing to read
BOUND = 0.2  # CPU seconds allowed meanwhile: a tenth of a core (a reader that kept polling uses all of it)


class Calls:
    """A ``ready`` that answers ``answer`` and counts its calls."""

    def __init__(self, answer: Any = False) -> None:
        self.answer = answer
        self.n = 0

    def __call__(self) -> Any:
        self.n += 1
        return self.answer


def test_a_poll_that_does_not_pay_backs_off_2_4_8_up_to_1024_waits() -> None:
    p = ring.AdaptivePoll()
    ready = Calls(False)
    backoffs = []
    for _ in range(12):
        assert p.poll(ready) is None
        assert ready.n >= 1, "a probe looks at least once"
        backoffs.append(p.backoff)
        for _ in range(p.backoff):  # the next waits sleep at once: ready is not even looked at
            ready.n = 0
            assert p.poll(ready) is None
            assert ready.n == 0
        ready.n = 0
    assert backoffs == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024]
    assert p.budget == 0.0


def test_a_probe_that_pays_teaches_a_bounded_budget_and_ends_the_backoff() -> None:
    p = ring.AdaptivePoll()
    assert p.poll(Calls(False)) is None
    for _ in range(p.backoff):
        p.poll(Calls(False))
    assert p.poll(Calls(7)) == 7, "the poll returns what ready returned"
    assert ring.MIN_BUDGET <= p.budget <= ring.ADAPTIVE_MAX
    assert p.failures == 0 and p.backoff == 0
    ready = Calls(True)
    assert p.poll(ready) is True and ready.n == 1, "with a budget, a message already there costs one look"


def test_short_sleeps_that_found_a_message_teach_a_budget_of_one_and_a_half_times_them() -> None:
    p = ring.AdaptivePoll()
    p.slept(20e-6, True)
    assert p.budget == pytest.approx(30e-6)
    p.slept(10e-6, True)
    assert p.budget == pytest.approx(30e-6), "a shorter sleep does not lower a budget"
    p.slept(60e-6, False)
    assert p.budget == pytest.approx(30e-6), "a sleep that found nothing teaches nothing"
    p.slept(ring.LEARN_SLEEP * 2, True)
    assert p.budget == pytest.approx(30e-6), "a long sleep teaches nothing"
    p.slept(ring.LEARN_SLEEP * 0.9, True)
    assert p.budget == ring.ADAPTIVE_MAX, "never more than the bound"


def subscriber(pub: pubsub.Publisher[Any], node: Any) -> pubsub.Subscriber[Any]:
    """A subscriber linked to ``pub``'s ring through the stand-in graph of test_pubsub."""
    info = {"id": pub.id, "endpoints": node.graph.requests[-1][1]["endpoints"]}
    node.graph.request = lambda op, args=None: {"subscriber": "s1", "publishers": [info]} if op == "subscriber.add" else {}
    node._subscribers = {}
    sub: pubsub.Subscriber[Any] = pubsub.Subscriber(node, "t", transport="shm")
    assert sub.links == [{"publisher": pub.id, "transport": "shm"}]
    return sub


def test_an_idle_subscriber_uses_almost_no_cpu_after_a_burst_that_made_it_poll() -> None:
    pub, rx, node = publisher()
    rx.close()
    sub = subscriber(pub, node)
    deadline = time.monotonic() + 5
    while pub.subscribers < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    n = 5000

    def burst() -> None:  # messages faster than a wake-up: the consumer learns to poll
        for i in range(n):
            pub.publish(i)

    t = threading.Thread(target=burst)
    t.start()
    for i in range(n):
        with sub.receive(5.0) as s:
            assert s.value == i
    t.join()
    cpu = time.thread_time()
    with pytest.raises(TimeoutError):
        sub.receive(IDLE)
    used = time.thread_time() - cpu
    assert used <= BOUND, f"the idle subscriber used {used * 1000:.0f} ms of CPU in {IDLE} s"
    pub.publish("next")  # it wakes for the next message
    with sub.receive(5.0) as s:
        assert s.value == "next"
    sub.close()
    pub.close()


def test_an_idle_ring_receiver_uses_almost_no_cpu() -> None:
    pub, rx, _ = publisher()
    for i in range(1000):  # a peer that answered at once: the receiver polls from here on
        pub.publish(i)
        got = rx.receive(1.0)
        assert got is not None
        rx.release(got[2])
    cpu = time.thread_time()
    with pytest.raises(TimeoutError):
        rx.receive(IDLE)
    used = time.thread_time() - cpu
    assert used <= BOUND, f"the idle receiver used {used * 1000:.0f} ms of CPU in {IDLE} s"
    pub.publish("next")
    got = rx.receive(5.0)
    assert got is not None and pubsub.decode_message(got[1])[1] == "next"
    rx.release(got[2])
    rx.close()
    pub.close()

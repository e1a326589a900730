"""Acknowledged queues (docs/protocol.md §7): the page's vectors, and a Python server and
clients over real sockets."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from plexus import codec, net, queue
from plexus.errors import PeerDeadError, ProtocolError, TimeoutError
from vectors import VECTORS

CLIENT = bytes(range(16))
SERVER = bytes(range(0xA0, 0xB0))
TOKEN = bytes.fromhex("1122334455667788")
CHECKS = {
    "queue.hello": lambda: net.hello(queue.QUEUE, 1000, queue.handshake_body(False, 16, 64 << 20, CLIENT, TOKEN)),
    "queue.welcome": lambda: net.welcome(queue.QUEUE, 0, 1000, queue.handshake_body(False, 16, 64 << 20, SERVER, TOKEN)),
    "queue.welcome-resumed": lambda: net.welcome(queue.QUEUE, 0, 1000, queue.handshake_body(True, 16, 64 << 20, SERVER, TOKEN)),
    "queue.welcome-superseded": lambda: net.welcome(queue.QUEUE, queue.STATUS_SUPERSEDED, 0, queue.handshake_body(False, 16, 64 << 20, SERVER, TOKEN)),
    "queue.welcome-version": lambda: net.welcome(queue.QUEUE, net.ST_VERSION, 0, queue.handshake_body(False, 16, 64 << 20, SERVER, bytes(8))),
    "queue.data-fast": lambda: net.frame(queue.T_DATA, 0, 1, 0, codec.encode({"a": 1})),
    "queue.data-reliable": lambda: net.frame(queue.T_DATA, queue.FLAG_RELIABLE, 1, 0, codec.encode({"a": 1})),
    "queue.ack": lambda: net.frame(queue.T_ACK, 0, 1, 0),
    "queue.nack": lambda: net.frame(queue.T_NACK, 0, 2, 0, queue.nack_payload(queue.NACK_CLOSED, "queue closed")),
    "queue.nack-failed": lambda: net.frame(queue.T_NACK, 0, 3, 0, queue.nack_payload(queue.NACK_FAILED, "ERR_PLEXUS_TIMEOUT late")),
    "queue.bye": lambda: net.frame(queue.T_BYE, 0, 0, 0),
    "queue.bye-idle": lambda: net.frame(queue.T_BYE, queue.FLAG_IDLE, 0, 0),
    "queue.bye-taken-over": lambda: net.frame(queue.T_BYE, queue.FLAG_TAKEN_OVER, 0, 0),
}
NOT_IMPLEMENTED = {"queue.mqtt-data"}  # queues through an MQTT broker


def test_the_page_and_this_file_name_the_same_queue_vectors() -> None:
    documented = {label for label in VECTORS if label.startswith("queue.")}
    assert documented - NOT_IMPLEMENTED == set(CHECKS)


@pytest.mark.parametrize("label", sorted(CHECKS))
def test_vector(label: str) -> None:
    assert CHECKS[label]() == VECTORS[label]


def test_a_failed_nack_rejects_with_the_class_of_its_code() -> None:
    err = queue._nack_error(queue.NACK_FAILED, "ERR_PLEXUS_TIMEOUT late")
    assert isinstance(err, TimeoutError) and "late" in str(err)
    assert isinstance(queue._nack_error(queue.NACK_FAILED, "nonsense"), PeerDeadError)


def test_the_handshake_body_reads_back() -> None:
    assert queue.read_body(VECTORS["queue.hello"][32:]) == (False, 16, 64 << 20, CLIENT, TOKEN)
    assert queue.read_body(VECTORS["queue.welcome-resumed"][32:])[0] is True
    with pytest.raises(ProtocolError):
        queue.read_body(queue.handshake_body(False, 0, 1, CLIENT, TOKEN))  # 0 slots


@pytest.mark.parametrize("mode", ["fast", "reliable"])
def test_puts_both_ways_return_on_acknowledgements(mode: queue.Mode) -> None:
    with queue.server(mode=mode) as srv, queue.client(srv.url, mode=mode) as cli:
        sent = threading.Thread(target=cli.put, args=({"n": 1, "v": np.arange(4, dtype=np.int64)},))
        sent.start()  # (reliable: returns once the server released the message)
        m = srv.get(5)
        assert m.peer == cli.id and m.value["n"] == 1 and m.value["v"].tolist() == [0, 1, 2, 3]
        m.release()
        sent.join(5)
        assert not sent.is_alive()
        done = threading.Event()

        def put() -> None:
            srv.put("reply", m.peer)
            done.set()

        threading.Thread(target=put).start()
        r = cli.get(5)
        assert r.value == "reply" and r.peer == "server"
        if mode == "reliable":
            time.sleep(0.1)
            assert not done.is_set(), "a reliable put returns once the receiver released the message"
        r.release()
        assert done.wait(5)


def test_a_reliable_message_never_released_times_the_put_out() -> None:
    with queue.server() as srv, queue.client(srv.url, mode="reliable") as cli:
        t = threading.Thread(target=lambda: srv.get(5))  # taken, never released
        t.start()
        with pytest.raises(TimeoutError):
            cli.put("x", timeout=0.3)
        t.join()


def test_a_malformed_message_is_refused_with_nack() -> None:
    with queue.server() as srv, queue.client(srv.url) as cli:
        bad = b"PLXF\x01\x02\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00"
        with cli.lock:
            put = queue._Put([bad], 0)
            cli.session.send_or_queue(put)
        assert put.event.wait(5)
        assert isinstance(put.error, ProtocolError) and "malformed" in put.error.message
        cli.put("after")  # the connection serves on
        assert srv.get(5).value == "after"


def test_another_client_with_the_same_identity_takes_the_session_over() -> None:
    with queue.server() as srv:
        first = queue.client(srv.url)
        second = queue.client(srv.url, identity=first.identity)
        with pytest.raises(PeerDeadError, match="taken over"):
            first.get(5)
        second.put("mine")
        assert srv.get(5).value == "mine"
        assert srv.peers == [second.id]
        first.close()
        second.close()


def test_a_put_to_a_server_without_clients_fails_at_once() -> None:
    with queue.server() as srv:
        with pytest.raises(PeerDeadError):
            srv.put("nobody")

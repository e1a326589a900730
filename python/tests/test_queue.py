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


def _cut(cli: queue.QueueClient) -> None:
    """Breaks the client's connection under it (no BYE): as a lost network would."""
    fs = cli.session.fs
    assert fs is not None
    fs.sock.shutdown(2)


def _crash(srv: queue.QueueServer) -> None:
    """Ends a server as a killed process would: no BYE, connections and listener gone."""
    with srv.lock:
        srv.closed = True
        sessions = list(srv.sessions.values())
    net.close_listener(srv._listener)
    for s in sessions:
        fs = s.fs
        if fs is not None:
            fs.sock.shutdown(2)
            fs.close()


def _events(cli: queue.QueueClient) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    for e in ("disconnect", "reconnect", "session-lost"):
        cli.on(e, lambda arg, e=e: seen.append((e, arg)))  # type: ignore[misc]
    return seen


def _wait(cond: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)


@pytest.mark.parametrize("mode", ["fast", "reliable"])
def test_a_cut_connection_is_made_again_and_the_session_resumed_every_put_delivered_once(mode: queue.Mode) -> None:
    with queue.server(mode=mode) as srv, queue.client(srv.url, mode=mode) as cli:
        seen = _events(cli)
        got: list[int] = []
        done = threading.Event()

        def take() -> None:
            while len(got) < 200:
                with srv.get(10) as m:
                    got.append(m.value)
            done.set()

        threading.Thread(target=take, daemon=True).start()
        errors: list[BaseException] = []

        def put(k: int) -> None:
            for i in range(50):
                try:
                    cli.put(k * 50 + i, timeout=10)
                except BaseException as err:  # noqa: BLE001
                    errors.append(err)

        threads = [threading.Thread(target=put, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for _ in range(3):
            _wait(lambda: cli.state == "connected" and len(got) > 0)
            _cut(cli)
            time.sleep(0.02)
        for t in threads:
            t.join(20)
        assert done.wait(10)
        assert errors == []
        assert sorted(got) == list(range(200)), "each put delivered once"
        reconnects = [arg for e, arg in seen if e == "reconnect"]
        assert reconnects and all(r == {"resumed": True} for r in reconnects)
        assert not [e for e, _ in seen if e == "session-lost"]
        assert cli.state == "connected"


def test_a_restarted_server_loses_the_session_puts_in_flight_fail_the_rest_go_out_in_a_new_one() -> None:
    srv = queue.server(mode="reliable")
    port = srv.port
    with queue.client(srv.url, mode="reliable", reconnect_window=5.0) as cli:
        seen = _events(cli)
        outcome: dict[str, object] = {}

        def put(value: str) -> None:
            try:
                cli.put(value, timeout=10)
                outcome[value] = "ok"
            except plexus_errors() as err:
                outcome[value] = err

        first = threading.Thread(target=put, args=("one",))
        first.start()
        held = srv.get(5)  # taken, never released: its put is in flight when the server dies
        t = threading.Thread(target=put, args=("two",))
        t.start()  # waits for the one slot
        _crash(srv)
        srv2 = queue.server(f"tcp://127.0.0.1:{port}", mode="reliable")
        try:
            first.join(10)
            with srv2.get(10) as m:
                assert m.value == "two", "the waiting put went out in the new session"
            t.join(10)
            assert outcome["two"] == "ok"
            assert isinstance(outcome["one"], PeerDeadError), "in flight when the session was lost: may or may not have arrived"
            kinds = [e for e, _ in seen]
            assert kinds[:1] == ["disconnect"] and "session-lost" in kinds and ("reconnect", {"resumed": False}) in seen
            lost = next(arg for e, arg in seen if e == "session-lost")
            assert isinstance(lost, PeerDeadError) and "lost this client's session" in lost.message
        finally:
            srv2.close()
        del held


def plexus_errors() -> type[BaseException]:
    from plexus.errors import PlexusError

    return PlexusError


def test_a_server_that_does_not_come_back_within_the_window_loses_the_session_the_next_put_starts_a_new_one() -> None:
    srv = queue.server()
    port = srv.port
    cli = queue.client(srv.url, reconnect_window=0.3)
    seen = _events(cli)
    cli.put("before")
    assert srv.get(5).value == "before"
    _crash(srv)
    _wait(lambda: cli.state == "disconnected")
    assert cli.state == "disconnected"
    lost = [arg for e, arg in seen if e == "session-lost"]
    assert len(lost) == 1 and isinstance(lost[0], PeerDeadError) and "did not come back within 300 ms" in lost[0].message
    with pytest.raises(PeerDeadError, match="did not come back"):
        cli.get(1)  # the get after the lost session's messages raises its error, once
    srv2 = queue.server(f"tcp://127.0.0.1:{port}")
    try:
        cli.put("after", timeout=5)  # a new session, with a new token
        assert srv2.get(5).value == "after"
        assert cli.state == "connected"
    finally:
        cli.close()
        srv2.close()
    with pytest.raises(plexus_errors(), match="closed"):
        cli.put("closed")


def test_a_server_that_closes_ends_the_session_pending_puts_fail() -> None:
    srv = queue.server(mode="reliable")
    cli = queue.client(srv.url, mode="reliable")
    seen = _events(cli)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            cli.put("never released", timeout=10)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    t = threading.Thread(target=put)
    t.start()
    srv.get(5)
    srv.close()  # BYE
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], PeerDeadError)
    _wait(lambda: cli.state == "disconnected")
    assert [e for e, _ in seen] == ["session-lost"]
    cli.close()
    assert cli.state == "closed"


def test_a_session_collected_while_idle_starts_again_on_the_next_put() -> None:
    with queue.server() as srv, queue.client(srv.url) as cli:
        seen = _events(cli)
        cli.put(1)
        assert srv.get(5).value == 1
        with srv.lock:  # the server collects the idle session (BYE with the idle flag)
            s = srv.sessions.pop(cli.identity)
            s.end(PeerDeadError("idle"))
            assert s.fs is not None
            s.fs.send(net.frame(queue.T_BYE, queue.FLAG_IDLE, 0, 0))
        _wait(lambda: cli.state == "disconnected")
        assert cli.state == "disconnected"
        assert [e for e, _ in seen] == ["disconnect"]
        cli.put(2, timeout=5)
        assert srv.get(5).value == 2
        assert ("reconnect", {"resumed": False}) in seen and "session-lost" not in [e for e, _ in seen]


def test_close_waits_for_the_puts_in_flight_then_refuses_new_ones() -> None:
    with queue.server(mode="reliable") as srv:
        cli = queue.client(srv.url, mode="reliable")
        outcome: list[object] = []
        t = threading.Thread(target=lambda: outcome.append(_put_error(cli)))
        t.start()
        m = srv.get(5)  # held: the put is in flight
        closing = threading.Thread(target=cli.close, kwargs={"linger": 5.0})
        closing.start()
        _wait(lambda: cli._closing)
        with pytest.raises(plexus_errors(), match="closed"):
            cli.put("too late")
        m.release()  # acknowledged now: the put returns, then close says BYE
        t.join(5)
        closing.join(5)
        assert outcome == ["ok"] and cli.state == "closed"
        cli2 = queue.client(srv.url, mode="reliable")
        t2 = threading.Thread(target=lambda: outcome.append(_put_error(cli2)))
        t2.start()
        srv.get(5)  # never released: close gives up after its linger
        cli2.close(linger=0.1)
        t2.join(5)
        assert isinstance(outcome[-1], plexus_errors()) and "closed" in str(outcome[-1])


def _put_error(cli: queue.QueueClient) -> object:
    try:
        cli.put("never released", timeout=10)
        return "ok"
    except plexus_errors() as err:
        return err

"""TLS on this package's own listeners (docs/protocol.md §0.4): a tcp sender, a queue server,
a publisher's endpoint; the loopback rule and the typed errors of a refused certificate."""
from __future__ import annotations

import ssl
import time
from typing import Any, Iterator

import pytest

from plexus import pubsub, queue, tcp
from plexus.errors import AccessDeniedError, InvalidArgumentError

import certs as certs_mod
from test_pubsub import StandIn


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[certs_mod.Certs]:
    yield certs_mod.make(str(tmp_path_factory.mktemp("certs")))


def server_ctx(c: certs_mod.Certs) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(c.cert, c.key)
    return ctx


def test_a_tls_tcp_sender_reaches_a_receiver_that_trusts_its_authority(certs: certs_mod.Certs) -> None:
    tx = tcp.TcpSender(window=1 << 20, tls=server_ctx(certs))
    assert tx.tls
    rx = tcp.TcpReceiver(tx.host, tx.port, tls=ssl.create_default_context(cafile=certs.ca))
    deadline = time.monotonic() + 5
    while tx.receivers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    tx.send([b"over ", b"tls"], 8)
    big = bytes(range(256)) * 1024
    tx.send([big], len(big))
    f = rx.receive(5)
    assert f is not None and f.payload == b"over tls"
    f.release()
    f = rx.receive(5)
    assert f is not None and f.payload == big
    f.release()
    rx.close()
    tx.close()


def test_a_receiver_with_another_authority_is_refused_with_access_denied(certs: certs_mod.Certs) -> None:
    tx = tcp.TcpSender(tls=server_ctx(certs))
    with pytest.raises(AccessDeniedError, match="TLS handshake"):
        tcp.TcpReceiver(tx.host, tx.port, tls=ssl.create_default_context(cafile=certs.other_ca))
    # the sender serves on: a trusting receiver joins afterwards
    rx = tcp.TcpReceiver(tx.host, tx.port, tls=ssl.create_default_context(cafile=certs.ca))
    rx.close()
    tx.close()


def test_plain_tcp_off_loopback_is_refused_and_a_client_context_is_no_server_context(certs: certs_mod.Certs) -> None:
    with pytest.raises(AccessDeniedError, match="off loopback"):
        tcp.TcpSender("0.0.0.0")
    with pytest.raises(AccessDeniedError, match="off loopback"):
        queue.server("tcp://0.0.0.0:0")
    with pytest.raises(InvalidArgumentError, match="server ssl.SSLContext"):
        tcp.TcpSender(tls=ssl.create_default_context())
    tx = tcp.TcpSender("0.0.0.0", allow_insecure=True)  # the explicit opt-out
    tx.close()
    tx = tcp.TcpSender("0.0.0.0", tls=server_ctx(certs))
    tx.close()


def test_a_publisher_with_tls_says_so_in_its_endpoint(certs: certs_mod.Certs) -> None:
    node = StandIn()
    pub: pubsub.Publisher[Any] = pubsub.Publisher(node, "t", transport="tcp", tls=server_ctx(certs))  # type: ignore[arg-type]
    ep = node.graph.requests[-1][1]["endpoints"]["tcp"]
    assert ep["tls"] is True and ep["host"] == "127.0.0.1"
    rx = tcp.TcpReceiver(ep["host"], ep["port"], tls=ssl.create_default_context(cafile=certs.ca))
    deadline = time.monotonic() + 5
    while pub.subscribers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    pub.publish({"n": 1})
    f = rx.receive(5)
    assert f is not None and pubsub.decode_message(f.payload)[1] == {"n": 1}
    f.release()
    rx.close()
    pub.close()


def test_a_queue_over_tls_and_a_client_of_another_authority(certs: certs_mod.Certs) -> None:
    with queue.server("tls://127.0.0.1:0", tls=server_ctx(certs)) as qs:
        with pytest.raises(AccessDeniedError, match="TLS handshake"):
            queue.client(qs.url, tls=ssl.create_default_context(cafile=certs.other_ca))
        with queue.client(qs.url, tls=ssl.create_default_context(cafile=certs.ca)) as qc:
            qc.put({"job": 1}, timeout=5)
            with qs.get(5) as m:
                assert m.value == {"job": 1}


def test_a_server_that_requires_a_client_certificate_refuses_a_client_without_one(certs: certs_mod.Certs) -> None:
    ctx = server_ctx(certs)
    ctx.verify_mode = ssl.CERT_REQUIRED  # as Node's requestCert + ca
    ctx.load_verify_locations(certs.ca)
    with queue.server("tls://127.0.0.1:0", tls=ctx) as qs:
        with pytest.raises(AccessDeniedError, match="TLS"):  # (TLS 1.3: the refusal comes with the first read)
            queue.client(qs.url, tls=ssl.create_default_context(cafile=certs.ca))
        mine = ssl.create_default_context(cafile=certs.ca)
        mine.load_cert_chain(certs.client_cert, certs.client_key)
        with queue.client(qs.url, tls=mine) as qc:
            qc.put("with a certificate", timeout=5)
            with qs.get(5) as m:
                assert m.value == "with a certificate"

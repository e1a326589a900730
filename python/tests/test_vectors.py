"""The test vectors of docs/protocol.md that the Python package implements: for each, the code
writes exactly the page's bytes from the values the page states, and reads them back."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from plexus import codec, graph, net, pubsub, rpc, tcp
from plexus.errors import ProtocolError

from vectors import VECTORS

EXAMPLE = net.Spec("an example protocol", "example server", 0x45584C50, 4, 2)
CHECKS: dict[str, Callable[[bytes], None]] = {}


def check(label: str) -> Callable[[Callable[[bytes], None]], Callable[[bytes], None]]:
    def register(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
        CHECKS[label] = fn
        return fn
    return register


# ---- §0 connections --------------------------------------------------------------------------

@check("net.header")
def _net_header(v: bytes) -> None:
    assert net.HEADER.pack(0x0102, 3, 1, 0, 0x11223344, 0x55667788) == v
    assert net.parse_header(v) == net.Header(0x0102, 3, 1, 0x11223344, 0x55667788)


@check("net.ping")
def _net_ping(v: bytes) -> None:
    assert net.frame(net.T_PING, 0, 0, 0) == v


@check("net.hello")
def _net_hello(v: bytes) -> None:
    assert net.hello(EXAMPLE, 250, b"body", capabilities=0b101) == v
    p = net.read_preamble(v[16:])
    assert (p.magic, p.version, p.min_version, p.capabilities, p.heartbeat) == (EXAMPLE.magic, 4, 2, 5, 250)


@check("net.welcome")
def _net_welcome(v: bytes) -> None:
    server = net.Spec("an example protocol", "example server", 0x45584C50, 3, 1)
    hello = net.read_preamble(VECTORS["net.hello"][16:])
    chosen = net.negotiate(server, hello)
    assert chosen == 3
    frame = net.HEADER.pack(18, net.T_WELCOME, 0, 0, 0, 0) + net.PREAMBLE.pack(server.magic, chosen, 1, hello.capabilities & 1, 500) + b"ok"
    assert frame == v
    client = net.Spec("an example protocol", "example server", 0x45584C50, 4, 2)
    with pytest.raises(ProtocolError):  # no capability is defined: this package offers none, so a granted bit is refused
        net.check_welcome(client, net.parse_header(v), v[16:], "the server")


@check("net.refusal")
def _net_refusal(v: bytes) -> None:
    server = net.Spec("an example protocol", "example server", 0x45584C50, 3, 3)
    assert net.welcome(server, net.ST_FULL, 0, b"at most 2 peers") == v
    from plexus.errors import ResourceExhaustedError
    with pytest.raises(ResourceExhaustedError, match="at most 2 peers"):
        net.check_welcome(EXAMPLE, net.parse_header(v), v[16:], "the server")


# ---- §3 the control protocol -----------------------------------------------------------------

@check("control.hello")
def _control_hello(v: bytes) -> None:
    body = graph.pack_body({"host": "h1", "pid": 4242, "threadId": 0, "name": "cam", "token": None})
    assert net.hello(graph.CONTROL, 0, body) == v
    assert graph.unpack_body(v[32:]) == {"host": "h1", "pid": 4242, "threadId": 0, "name": "cam", "token": None}


@check("control.welcome")
def _control_welcome(v: bytes) -> None:
    assert net.welcome(graph.CONTROL, 0, 0, graph.pack_body({"node": "n1"})) == v
    _, body = net.check_welcome(graph.CONTROL, net.parse_header(v), v[16:], "the GraphServer")
    assert graph.unpack_body(body) == {"node": "n1"}


@check("control.refused")
def _control_refused(v: bytes) -> None:
    assert net.welcome(graph.CONTROL, graph.STATUS_ACCESS_DENIED, 0, b"wrong or missing access token") == v
    from plexus.errors import AccessDeniedError
    with pytest.raises(AccessDeniedError, match="wrong or missing access token"):
        net.check_welcome(graph.CONTROL, net.parse_header(v), v[16:], "the GraphServer",
                          lambda s, r: AccessDeniedError(r) if s == graph.STATUS_ACCESS_DENIED else None)


def _control(label: str, type_: int, id_: int, body: dict[str, object]) -> None:
    v = VECTORS[label]
    assert graph.control(type_, id_, body) == v
    h = net.parse_header(v)
    assert (h.type, h.a, h.length) == (type_, id_, len(v) - 16)
    assert graph.unpack_body(v[16:]) == body


CHECKS["control.request"] = lambda v: _control("control.request", graph.T_REQUEST, 1, {"id": "p2", "op": "port.remove"})
CHECKS["control.response"] = lambda v: _control("control.response", graph.T_RESPONSE, 1, {"ok": True, "result": {}})
CHECKS["control.error"] = lambda v: _control("control.error", graph.T_RESPONSE, 2, {"ok": False, "code": "ERR_PLEXUS_CYCLE", "message": "cycle"})
CHECKS["control.notify"] = lambda v: _control("control.notify", graph.T_NOTIFY, 3, {"subscriber": "s3", "publishers": []})
CHECKS["control.notify-ack"] = lambda v: _control("control.notify-ack", graph.T_NOTIFY_ACK, 3, {})


# ---- §4 pub/sub messages ---------------------------------------------------------------------

@check("codec.value")
def _codec_value(v: bytes) -> None:
    assert codec.encode({"a": 1}) == v
    assert codec.decode(v) == {"a": 1}


@check("codec.buffer")
def _codec_buffer(v: bytes) -> None:
    assert codec.encode({"a": np.array([1, 2, 3], dtype=np.uint8)}) == v
    assert codec.encode({"a": memoryview(bytes([1, 2, 3]))}) == v
    assert codec.encode({"a": bytes([1, 2, 3])}) == v
    back = codec.decode(v)
    assert back["a"].dtype == np.uint8 and back["a"].tolist() == [1, 2, 3]
    assert codec.decode(v, "memoryview")["a"].tolist() == [1, 2, 3]


@check("pubsub.value")
def _pubsub_value(v: bytes) -> None:
    assert pubsub.message_header(1) + codec.encode({"a": 1}) == v
    assert pubsub.decode_message(v) == (1, {"a": 1})


@check("pubsub.raw")
def _pubsub_raw(v: bytes) -> None:
    assert pubsub.message_header(2) + codec.encode(bytes([1, 2, 3])) == v
    seq, value = pubsub.decode_message(v)
    assert seq == 2 and bytes(value) == b"\x01\x02\x03"


# ---- §5 the tcp transport --------------------------------------------------------------------

@check("tcp.hello")
def _tcp_hello(v: bytes) -> None:
    assert net.hello(tcp.TCP, 1000, tcp.hello_body("drop-oldest", 4242)) == v


@check("tcp.welcome")
def _tcp_welcome(v: bytes) -> None:
    assert net.welcome(tcp.TCP, 0, 1000, tcp.welcome_body(65536, 1024, 1)) == v
    _, body = net.check_welcome(tcp.TCP, net.parse_header(v), v[16:], "the sender")
    assert body == tcp.welcome_body(65536, 1024, 1)


@check("tcp.welcome-full")
def _tcp_welcome_full(v: bytes) -> None:
    assert net.welcome(tcp.TCP, net.ST_FULL, 0, b"maxReceivers (1) reached") == v


@check("tcp.data")
def _tcp_data(v: bytes) -> None:
    assert net.HEADER.pack(3, tcp.T_DATA, 0, 0, 1, 0) + b"abc" + bytes(13) == v
    assert tcp.frame_bytes(3) == len(v)


CHECKS["tcp.end"] = lambda v: _frame(v, tcp.T_END, 5, 0)
CHECKS["tcp.want"] = lambda v: _frame(v, tcp.T_WANT, 0, 0)
CHECKS["tcp.ack"] = lambda v: _frame(v, tcp.T_ACK, 32, 1)
CHECKS["tcp.bye"] = lambda v: _frame(v, tcp.T_BYE, 0, 0)


def _frame(v: bytes, type_: int, a: int, b: int) -> None:
    assert net.frame(type_, 0, a, b) == v
    assert net.parse_header(v) == net.Header(0, type_, 0, a, b)


# ---- §6 request/response (tcp) ---------------------------------------------------------------

@check("rpc.hello-tcp")
def _rpc_hello_tcp(v: bytes) -> None:
    assert net.hello(rpc.RPC, 1000) == v


@check("rpc.refused")
def _rpc_refused(v: bytes) -> None:
    assert net.welcome(rpc.RPC, net.ST_FULL, 0, b"maxClients") == v


@check("rpc.tcp-request")
def _rpc_tcp_request(v: bytes) -> None:
    assert b"".join(bytes(p) for p in rpc.message(rpc.T_REQUEST, 1, codec.plan({"a": 1}))) == v


def _tcp_form(ring_form: bytes) -> bytes:
    """The page: on tcp the same message is the header with the body's length in place of the magic."""
    assert ring_form[:4] == b"PXR1"
    return (len(ring_form) - 16).to_bytes(4, "little") + ring_form[4:]


class Error(Exception):
    """A handler's exception named like JavaScript's plain Error."""


def _ring_form(type_: int, id_: int, body: codec.FramePlan, expected: bytes) -> None:
    """The message as the shm channel writes it into its ring, and its tcp form."""
    ring = bytearray(rpc.RING_HEADER.size + body.byte_length)
    rpc.RING_HEADER.pack_into(ring, 0, rpc.RING_MAGIC, type_, 0, 0, id_, 0)
    body.write_into(memoryview(ring), rpc.RING_HEADER.size)
    assert bytes(ring) == expected
    _same(rpc.message(type_, id_, body), _tcp_form(expected))


CHECKS["rpc.request"] = lambda v: _ring_form(rpc.T_REQUEST, 1, codec.plan({"a": 1}), v)
CHECKS["rpc.response"] = lambda v: _ring_form(rpc.T_RESPONSE, 1, codec.plan({"a": 2}), v)
CHECKS["rpc.error"] = lambda v: _ring_form(rpc.T_ERROR, 2, rpc.error_body(Error("boom")), v)


@check("rpc.hello-shm")
def _rpc_hello_shm(v: bytes) -> None:
    assert net.hello(rpc.RPC, 0, b"/plexus-4242-0123456789ab") == v
    assert rpc._ring_name(v[32:]) == "/plexus-4242-0123456789ab"


def _same(parts: list[bytes | memoryview], expected: bytes) -> None:
    assert b"".join(bytes(p) for p in parts) == expected


def test_an_error_answer_becomes_remote_error() -> None:
    err = rpc.remote_error(VECTORS["rpc.error"][16:])
    assert (err.remote_code, err.remote_name, err.message, err.code) == ("ERR_PLEXUS_HANDLER", "Error", "boom", "ERR_PLEXUS_REMOTE")


# ---- the page and this file name the same vectors ---------------------------------------------

@check("rpc.raw-request")
def _raw_request(v: bytes) -> None:
    # what a client writes in its request ring for an in-place service (ShmChannel.send_raw)
    assert rpc.RING_HEADER.pack(rpc.RING_MAGIC, rpc.T_REQUEST, rpc.FLAG_RAW, 0, 3, 0) + b"\x01\x02\x03" == v


@check("rpc.in-place")
def _in_place(v: bytes) -> None:
    # what a client reads of an in-place answer: type 4, the id, aux = the answer's offset in the
    # request's body, a body of the uint32 length
    magic, type_, flags, reserved, id_, aux = rpc.RING_HEADER.unpack_from(v, 0)
    assert (magic, type_, flags, reserved, id_, aux) == (rpc.RING_MAGIC, rpc.T_IN_PLACE, 0, 0, 3, 1)
    assert len(v) == 20 and int.from_bytes(v[16:], "little") == 2


IMPLEMENTED = ("net.", "control.", "codec.", "pubsub.", "tcp.", "rpc.")
NOT_IMPLEMENTED: set[str] = set()


def test_every_vector_of_the_implemented_sections_is_checked() -> None:
    documented = sorted(label for label in VECTORS if label.startswith(IMPLEMENTED) and label not in NOT_IMPLEMENTED)
    assert sorted(CHECKS) == documented
    assert NOT_IMPLEMENTED <= set(VECTORS), "a vector named here left the page"


@pytest.mark.parametrize("label", sorted(CHECKS))
def test_vector(label: str) -> None:
    CHECKS[label](VECTORS[label])


def test_an_in_place_answer_is_located_in_the_request() -> None:
    req = memoryview(bytearray(range(16)))
    assert rpc.answer_within(req, None) == (0, 16)
    assert rpc.answer_within(req, req[3:7]) == (3, 4)
    assert rpc.answer_within(req, np.frombuffer(req, dtype=np.uint8)[8:]) == (8, 8)
    assert rpc.answer_within(req, req[5:5]) == (0, 0)
    assert rpc.answer_within(req, bytearray(4)) is None, "bytes of its own"
    assert rpc.answer_within(req, req.toreadonly()[2:4]) is None, "read-only: not the request's writable bytes"
    assert rpc.answer_within(req, "text") is None

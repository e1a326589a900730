"""A node's connection to the GraphServer (docs/protocol.md §3): the HELLO with this process's
identity, requests with timeouts, notifications applied in order and acknowledged.
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import threading
from typing import Any, Callable, Final

import msgpack

from . import net
from .codec import _Encoder
from .errors import (
    AccessDeniedError,
    ClosedError,
    InvalidArgumentError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    TimeoutError,
    error_from_wire,
)

CONTROL: Final = net.Spec("the GraphServer control protocol", "GraphServer", 0x47584C50, 2, 2)
MAX_CONTROL: Final = 1 << 20
T_REQUEST: Final = 3
T_RESPONSE: Final = 4
T_NOTIFY: Final = 5
T_NOTIFY_ACK: Final = 6
STATUS_ACCESS_DENIED: Final = 16
DEFAULT_PORT: Final = 25978

_host: str | None = None


def host_id() -> str:
    """This machine and boot: ``<host name>/<boot id>``, as every Plexus node writes it.

    Two nodes with the same host id can share memory.
    """
    global _host
    if _host is None:
        boot = ""
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
                boot = f.read().strip()
        except OSError:
            pass
        _host = f"{socket.gethostname()}/{boot}"
    return _host


def identity() -> dict[str, Any]:
    """This process's identity in the graph: host, pid and thread id (0: one per process)."""
    return {"host": host_id(), "pid": os.getpid(), "threadId": 0}


def parse_address(address: str) -> tuple[str, int, bool | None]:
    """``tcp://host:port``, ``tls://host:port`` or ``host:port`` -> (host, port, tls)."""
    m = re.fullmatch(r"([a-zA-Z]+)://(.*?)/?", address)
    if m is not None:
        scheme = m.group(1).lower()
        if scheme not in ("tcp", "tls"):
            raise InvalidArgumentError(f"unsupported GraphServer address scheme {scheme!r} (tcp://, tls://): {address!r}")
        host, port, _ = parse_address(m.group(2))
        return host, port, scheme == "tls"
    m = re.fullmatch(r"\[?([^\]]+?)\]?:(\d{1,5})", address)
    if m is None or int(m.group(2)) > 65535:
        raise InvalidArgumentError(f"not a GraphServer address (tcp://host:port, tls://host:port or host:port, port 0..65535): {address!r}")
    return m.group(1), int(m.group(2)), None


def default_address() -> str:
    """``PLEXUS_GRAPH``, else ``127.0.0.1:25978``."""
    return os.environ.get("PLEXUS_GRAPH") or f"127.0.0.1:{DEFAULT_PORT}"


def pack_body(body: dict[str, Any]) -> bytes:
    """A control body: a MessagePack map (map 16 headers, as the TypeScript node writes them)."""
    enc = _Encoder(wide_maps=True)
    enc.value(body, "body", 0)
    return bytes(enc.out)


def unpack_body(b: bytes) -> dict[str, Any]:
    """A control body (any MessagePack form of a map; empty: ``{}``)."""
    if not b:
        return {}
    try:
        v = msgpack.unpackb(b, raw=False, strict_map_key=False)
    except Exception as err:  # msgpack raises several classes
        raise ProtocolError("malformed MessagePack body in a control message") from err
    if not isinstance(v, dict):
        raise ProtocolError("a control message body must be a map")
    return v


def control(type_: int, id_: int, body: dict[str, Any]) -> bytes:
    """One control message frame."""
    return net.frame(type_, 0, id_, 0, pack_body(body))


def _check(h: net.Header) -> None:
    if not T_REQUEST <= h.type <= T_NOTIFY_ACK:
        raise ProtocolError(f"unknown control message type {h.type}")
    if h.flags or h.b:
        raise ProtocolError(f"control message type {h.type} with flags or a second word")


NotifyHandler = Callable[[str, list[dict[str, Any]]], None]


class _Pending:
    __slots__ = ("event", "result", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.error: PlexusError | None = None


class GraphClient:
    """A connection to a GraphServer.

    ``on_notify(subscriber, publishers)`` and ``on_servers(client, servers)`` are called on the
    connection's thread, in order; each notification is acknowledged after its handler returns.
    """

    def __init__(self, fs: net.FrameSocket, node: str, timeout: float) -> None:
        self.node = node
        self.timeout = timeout
        self.on_notify: NotifyHandler = lambda s, p: None
        self.on_servers: NotifyHandler = lambda c, s: None
        self.on_close: Callable[[PlexusError | None], None] = lambda e: None
        self._fs = fs
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._next = 1
        self._closed = False
        self._lost: PlexusError | None = None
        self._thread = threading.Thread(target=self._run, name="plexus-graph", daemon=True)
        self._thread.start()

    @classmethod
    def connect(cls, address: str | None = None, *, token: str | None = None, name: str | None = None,
                timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> GraphClient:
        """Connects and joins (``address`` defaults to ``PLEXUS_GRAPH``, else 127.0.0.1:25978).

        A Python process does not start an embedded GraphServer: one must be running.
        """
        host, port, use_tls = parse_address(address if address is not None else default_address())
        if use_tls and tls is None:
            tls = ssl.create_default_context()
        if use_tls is False and tls is not None:
            raise InvalidArgumentError(f"the address {address} says tcp:// but a TLS context was given (use tls://)")
        where = f"the GraphServer at {host}:{port}"
        sock = net.dial(host, port, timeout, "GraphServer", tls)
        fs = net.FrameSocket(sock, MAX_CONTROL, where)
        ident = identity()
        body = pack_body({**ident, "name": name if name is not None else f"pid {ident['pid']}", "token": token})

        def own(status: int, reason: str) -> PlexusError | None:
            return AccessDeniedError(f"{where} refused this node: {reason}") if status == STATUS_ACCESS_DENIED else None

        try:
            _, welcome = net.handshake(fs, CONTROL, net.hello(CONTROL, 0, body), where, timeout, own)
            node = unpack_body(welcome).get("node")
            if not isinstance(node, str):
                raise ProtocolError("welcome without a node id")
        except BaseException:
            fs.close()
            raise
        return cls(fs, node, timeout)

    def request(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Sends a request and waits for its result (the server's typed error if it failed)."""
        p = _Pending()
        with self._lock:
            if self._closed:
                raise self._lost or ClosedError("the graph connection is closed")
            id_ = self._next
            self._next += 1
            self._pending[id_] = p
        self._fs.send(control(T_REQUEST, id_, {**(args or {}), "op": op}))
        wait = self.timeout if timeout is None else timeout
        if not p.event.wait(wait):
            with self._lock:
                self._pending.pop(id_, None)
            raise TimeoutError(f"{op}: no answer from the GraphServer within {wait * 1000:.0f} ms")
        if p.error is not None:
            raise p.error
        return p.result

    def send(self, op: str, args: dict[str, Any] | None = None) -> None:
        """Sends a request whose answer nobody waits for (it is dropped when it comes)."""
        with self._lock:
            if self._closed:
                return
            id_ = self._next
            self._next += 1
        self._fs.try_send(control(T_REQUEST, id_, {**(args or {}), "op": op}))

    def close(self) -> None:
        """Leaves the graph (the server removes this node's ports). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._fs.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(2)

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        error: PlexusError | None = None
        try:
            while True:
                h, payload = self._fs.read_frame(_check)
                body = unpack_body(payload)
                if h.type == T_RESPONSE:
                    with self._lock:
                        p = self._pending.pop(h.a, None)
                    if p is None:
                        continue
                    if body.get("ok") is True:
                        p.result = body.get("result")
                    else:
                        p.error = error_from_wire(body.get("code"), body.get("message"))
                    p.event.set()
                elif h.type == T_NOTIFY:
                    try:
                        if isinstance(body.get("client"), str) and isinstance(body.get("servers"), list):
                            self.on_servers(body["client"], body["servers"])
                        elif isinstance(body.get("subscriber"), str) and isinstance(body.get("publishers"), list):
                            self.on_notify(body["subscriber"], body["publishers"])
                    except Exception:  # a handler's failure must not stop the graph connection
                        pass
                    self._fs.send(control(T_NOTIFY_ACK, h.a, {}))
                else:
                    raise ProtocolError(f"the GraphServer sent a message of type {h.type}")
        except PlexusError as err:
            error = err
        except OSError as err:
            error = PeerDeadError(f"the GraphServer connection was lost ({err})")
        with self._lock:
            graceful = self._closed
            self._closed = True
            lost = None if graceful else PeerDeadError("the GraphServer connection was lost")
            if lost is not None:
                lost.__cause__ = error
            self._lost = lost
            pending = list(self._pending.values())
            self._pending.clear()
        for p in pending:
            p.error = lost or ClosedError("the graph connection is closed")
            p.event.set()
        if not graceful:
            self._fs.close()
        self.on_close(lost)

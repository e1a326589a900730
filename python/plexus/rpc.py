"""Request/response over TCP (docs/protocol.md §6): a server that answers with a Python
function, and a client with many requests in flight, matched by id.
"""
from __future__ import annotations

import itertools
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Final, Generic, TypeVar

from . import codec, net
from .errors import (
    ClosedError,
    NoServerError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    RemoteError,
    TimeoutError,
    error_to_wire,
)

if TYPE_CHECKING:
    from .node import Node

RPC: Final = net.Spec("request/response", "request/response server", 0x52584C50, 4, 4)
T_REQUEST: Final = 1
T_RESPONSE: Final = 2
T_ERROR: Final = 3
FLAG_RAW: Final = 1
HEARTBEAT_MS: Final = 1000
PEER_TIMEOUT_MS: Final = 10_000
MAX_MESSAGE: Final = 64 << 20
Req = TypeVar("Req")
Res = TypeVar("Res")


def message(type_: int, id_: int, body: codec.FramePlan, flags: int = 0) -> list[bytes | memoryview]:
    """One tcp request/response frame as pieces for a vectored write."""
    return [net.HEADER.pack(body.byte_length, type_, flags, 0, id_, 0), *body.chunks()]


def error_body(err: BaseException) -> codec.FramePlan:
    """The codec frame of an error answer: ``{code, name, message}``."""
    code, name, text = error_to_wire(err)
    return codec.plan({"code": code[:200], "name": name[:200], "message": text[:4000]})


def remote_error(payload: bytes) -> RemoteError:
    """A client's error for an error answer."""
    e = codec.decode(payload)
    if not isinstance(e, dict):
        e = {}
    msg, code, name = e.get("message"), e.get("code"), e.get("name")
    return RemoteError(msg if isinstance(msg, str) else "the remote handler failed",
                       code if isinstance(code, str) else "ERR_PLEXUS_HANDLER", name if isinstance(name, str) else "Error")


class _Beats:
    """One thread that writes PINGs on idle connections and ends silent ones."""

    def __init__(self, on_silent: Callable[[net.FrameSocket], None]) -> None:
        self.conns: dict[net.FrameSocket, float] = {}
        self.lock = threading.Lock()
        self.on_silent = on_silent
        self.stopped = False
        threading.Thread(target=self._run, daemon=True, name="plexus-rpc-hb").start()

    def add(self, fs: net.FrameSocket, silence_ms: int) -> None:
        with self.lock:
            self.conns[fs] = silence_ms / 1000

    def remove(self, fs: net.FrameSocket) -> None:
        with self.lock:
            self.conns.pop(fs, None)

    def _run(self) -> None:
        ping = net.frame(net.T_PING, 0, 0, 0)
        while not self.stopped:
            time.sleep(0.25)
            now = time.monotonic()
            with self.lock:
                conns = list(self.conns.items())
            for fs, silence in conns:
                if now - fs.last_read > silence:
                    self.remove(fs)
                    self.on_silent(fs)
                elif now - fs.last_write >= HEARTBEAT_MS / 1000:
                    fs.try_send(ping)


class Server:
    """Answers requests of ``service`` with ``handler(request)``: made by :meth:`plexus.Node.server`.

    What the handler raises reaches the caller as a ``RemoteError`` with the exception's
    ``code`` (``ERR_PLEXUS_HANDLER`` unless it has one) and class name.
    """

    def __init__(self, node: Node, service: str, handler: Callable[[Any], Any], *, max_concurrent: int = 16) -> None:
        self.service = service
        self._handler = handler
        self._node = node
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="plexus-rpc")
        self._conns: set[net.FrameSocket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.counters = {"requests": 0, "errors": 0, "bytes": 0}
        self.in_flight = 0
        self._beats = _Beats(lambda fs: fs.close())
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        net.serve_connections(self._listener, self._serve, "plexus-rpc-conn")
        endpoints = {**node.identity, "tcp": {"host": host, "port": port, "tls": False}}
        try:
            self.id: str = node.graph.request("server.add", {"service": service, "endpoints": endpoints, "inPlace": False})["server"]
        except BaseException:
            self._listener.close()
            raise

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fs = net.FrameSocket(conn, net.MAX_HANDSHAKE, "a client")
        try:
            pre, body = net.accept_hello(fs, RPC, lambda status, reason: f"{reason} (request/response for {self.service!r})".encode())
            if pre.heartbeat == 0 or body:
                fs.try_send(net.welcome(RPC, net.ST_MALFORMED, 0, b"a tcp HELLO needs a heartbeat and no body"))
                raise ProtocolError("malformed")
            fs.send(net.welcome(RPC, net.ST_OK, HEARTBEAT_MS))
        except (PlexusError, OSError):
            fs.close()
            return
        fs.max_message = MAX_MESSAGE
        with self._lock:
            if self._closed:
                fs.close()
                return
            self._conns.add(fs)
        self._beats.add(fs, max(PEER_TIMEOUT_MS, 3 * pre.heartbeat))

        def check(h: net.Header) -> None:
            if h.type != T_REQUEST or h.flags & ~FLAG_RAW:
                raise ProtocolError(f"a client sent a message of type {h.type}, flags {h.flags}")

        try:
            while True:
                h, body = fs.read_frame(check)
                self._pool.submit(self._answer, fs, h, body)
        except (PlexusError, OSError, RuntimeError):
            pass
        self._beats.remove(fs)
        with self._lock:
            self._conns.discard(fs)
        fs.close()

    def _answer(self, fs: net.FrameSocket, h: net.Header, body: bytes) -> None:
        c = self.counters
        c["requests"] += 1
        c["bytes"] += 16 + len(body)
        self.in_flight += 1
        try:
            if h.flags & FLAG_RAW:
                raise ProtocolError(f"a raw request to {self.service!r}, which is not an in-place service")
            request = codec.decode(body)
        except PlexusError as err:
            c["errors"] += 1
            parts = message(T_ERROR, h.a, error_body(err))
        else:
            try:
                parts = message(T_RESPONSE, h.a, codec.plan(self._handler(request)))
            except Exception as err:  # the handler's failure is the caller's RemoteError
                c["errors"] += 1
                parts = message(T_ERROR, h.a, error_body(err))
        self.in_flight -= 1
        try:
            fs.sendv(parts)
        except OSError:
            pass

    def close(self) -> None:
        """Leaves the graph, stops accepting, finishes what it holds, closes. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        try:
            self._node.graph.request("server.remove", {"id": self.id})
        except PlexusError:
            pass
        self._listener.close()
        self._pool.shutdown(wait=True)
        for fs in conns:
            fs.close()
        self._beats.stopped = True
        self._node._forget(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Call:
    __slots__ = ("event", "value", "error", "link")

    def __init__(self, link: _Link) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: PlexusError | None = None
        self.link = link


class _Link:
    """A client's connection to one server."""

    def __init__(self, client: Client[Any, Any], info: dict[str, Any]) -> None:
        ep = info["endpoints"]
        tcp = ep["tcp"]
        host = str(ep.get("host", "")).split("/")[0]
        self.who = f"the server of {client.service!r} (pid {ep.get('pid')} on {host})"
        self.client = client
        self.id: str = info["id"]
        sock = net.dial(tcp["host"], tcp["port"], 5.0, "request/response server")
        self.fs = net.FrameSocket(sock, MAX_MESSAGE, self.who)
        try:
            p, body = net.handshake(self.fs, RPC, net.hello(RPC, HEARTBEAT_MS), self.who, 5.0)
            if p.heartbeat == 0 or body:
                raise ProtocolError(f"{self.who} answered a WELCOME with a heartbeat of 0 or a body")
        except BaseException:
            self.fs.close()
            raise
        self.calls: dict[int, _Call] = {}
        self.dead: PlexusError | None = None
        client._beats.add(self.fs, max(PEER_TIMEOUT_MS, 3 * p.heartbeat))
        threading.Thread(target=self._read, daemon=True, name="plexus-rpc-link").start()

    def _check(self, h: net.Header) -> None:
        if h.type not in (T_RESPONSE, T_ERROR) or h.flags & ~FLAG_RAW:
            raise ProtocolError(f"{self.who} sent a message of type {h.type}, flags {h.flags}")

    def _read(self) -> None:
        error: PlexusError
        try:
            while True:
                h, body = self.fs.read_frame(self._check)
                with self.client._lock:
                    call = self.calls.pop(h.a, None)
                if call is None:
                    continue  # an answer to a request that ended (timed out)
                try:
                    if h.flags & FLAG_RAW:
                        raise ProtocolError(f"{self.who} answered raw bytes to an encoded request")
                    if h.type == T_ERROR:
                        call.error = remote_error(body)
                    else:
                        call.value = codec.decode(body, self.client.arrays)
                except PlexusError as err:
                    call.error = err
                call.event.set()
        except PlexusError as err:
            error = err
        except OSError as err:
            error = PeerDeadError(str(err))
        self.fail(error)

    def fail(self, error: PlexusError) -> None:
        """Ends the link: its requests in flight reject with PeerDeadError."""
        dead = PeerDeadError(f"{self.who} left" if self.client._closing else f"{self.who} died or lost its connection")
        dead.__cause__ = error
        with self.client._lock:
            self.dead = dead
            calls = list(self.calls.values())
            self.calls.clear()
            self.client._drop(self)
        for c in calls:
            c.error = dead
            c.event.set()
        self.client._beats.remove(self.fs)
        self.fs.close()


class Client(Generic[Req, Res]):
    """Calls a service: made by :meth:`plexus.Node.client`. Requests go round-robin to the
    service's servers; many may be in flight from any number of threads."""

    def __init__(self, node: Node, service: str, *, arrays: codec.ArrayMode | None = None) -> None:
        self.service = service
        self.arrays = arrays
        self._node = node
        self._lock = threading.Lock()
        self._links: dict[str, _Link] = {}
        self._ids = itertools.count(1)
        self._next = 0
        self._closing = False
        self.counters: dict[str, float] = {"requests": 0, "errors": 0, "bytes": 0, "latency": 0.0, "timed": 0}
        self.in_flight = 0
        self._beats = _Beats(lambda fs: self._silent(fs))
        answer = node.graph.request("client.add", {"service": service})
        self.id: str = answer["client"]
        node._clients[self.id] = self
        self.update(answer["servers"])

    @property
    def servers(self) -> int:
        """Servers linked now."""
        with self._lock:
            return len(self._links)

    @property
    def links(self) -> list[dict[str, str]]:
        """The transport of each link, by server id."""
        with self._lock:
            return [{"server": k, "transport": "tcp"} for k in self._links]

    def update(self, servers: list[dict[str, Any]]) -> None:
        """Applies a new server set (called with the GraphServer's notifications)."""
        wanted = {s["id"]: s for s in servers if isinstance(s, dict) and s.get("endpoints", {}).get("tcp") and not s.get("inPlace")}
        with self._lock:
            gone = [link for k, link in self._links.items() if k not in wanted]
            new = [s for k, s in wanted.items() if k not in self._links]
        for link in gone:
            link.fail(PeerDeadError(f"{link.who} left the graph"))
        for s in new:
            try:
                link = _Link(self, s)
            except PlexusError:
                continue
            with self._lock:
                if self._closing:
                    link.fs.close()
                else:
                    self._links[link.id] = link

    def _drop(self, link: _Link) -> None:
        if self._links.get(link.id) is link:
            del self._links[link.id]

    def _silent(self, fs: net.FrameSocket) -> None:
        with self._lock:
            link = next((x for x in self._links.values() if x.fs is fs), None)
        if link is not None:
            fs.close()  # its reader fails the link with PeerDeadError

    def request(self, value: Req, timeout: float = 5.0) -> Res:
        """Sends ``value`` and waits for the answer.

        Raises ``NoServerError`` at once without a server, ``RemoteError`` if the handler
        raised, ``PeerDeadError`` if the server died first, ``TimeoutError`` after ``timeout`` s.
        """
        body = codec.plan(value)
        c = self.counters
        with self._lock:
            if self._closing:
                raise ClosedError(f"the client of {self.service!r} is closed")
            links = list(self._links.values())
            if not links:
                c["requests"] += 1
                c["errors"] += 1
                raise NoServerError(f"no server for {self.service!r}")
            link = links[self._next % len(links)]
            self._next += 1
            id_ = next(self._ids) & 0xFFFFFFFF or next(self._ids)
            call = _Call(link)
            link.calls[id_] = call
            self.in_flight += 1
        started = time.monotonic()
        try:
            try:
                link.fs.sendv(message(T_REQUEST, id_, body))
            except OSError:
                pass  # the reader fails the link and this call with it
            c["bytes"] += 16 + body.byte_length
            if not call.event.wait(timeout):
                with self._lock:
                    link.calls.pop(id_, None)
                if not call.event.is_set():
                    raise TimeoutError(f"service {self.service!r} did not answer within {timeout * 1000:.0f} ms")
            if call.error is not None:
                raise call.error
            c["latency"] += (time.monotonic() - started) * 1000
            c["timed"] += 1
            result: Res = call.value
            return result
        except PlexusError:
            c["errors"] += 1
            raise
        finally:
            c["requests"] += 1
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        """Leaves the graph; requests in flight reject. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            links = list(self._links.values())
        self._node._clients.pop(self.id, None)
        try:
            self._node.graph.request("client.remove", {"id": self.id})
        except PlexusError:
            pass
        for link in links:
            link.fail(ClosedError(f"the client of {self.service!r} is closed"))
        self._beats.stopped = True
        self._node._forget(self)

    def __enter__(self) -> Client[Req, Res]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

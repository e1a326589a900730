"""Request/response over TCP (docs/protocol.md §6): a server that answers with a Python
function, and a client with many requests in flight, matched by id.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Final, Generic, TypeVar

from . import codec, net
from .shm import ShmReceiver, ShmSender
from .errors import (
    ClosedError,
    InvalidArgumentError,
    LinkWarning,
    NoServerError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    RemoteError,
    SystemError,
    TimeoutError,
    error_to_wire,
)

if TYPE_CHECKING:
    from .node import Node

RPC: Final = net.Spec("request/response", "request/response server", 0x52584C50, 4, 4)
T_REQUEST: Final = 1
T_RESPONSE: Final = 2
T_ERROR: Final = 3
T_IN_PLACE: Final = 4
FLAG_RAW: Final = 1
HEARTBEAT_MS: Final = net.HEARTBEAT_MS
PEER_TIMEOUT_MS: Final = net.PEER_TIMEOUT_MS
MAX_MESSAGE: Final = 64 << 20
RING_MAGIC: Final = 0x31525850
RING_HEADER: Final = struct.Struct("<IBBHII")
RING_NAME: Final = re.compile(r"/plexus-\d{1,10}-[0-9a-f]{1,32}")
RING_CAPACITY: Final = 1 << 20
RECHECK: Final = 0.25
STATUS_NO_SHM: Final = 16
SUN_PATH: Final = 108  # bytes of a Unix socket address's path on Linux


def unix_address(name: str) -> str:
    """The address of a request/response server's shm socket (§6.3): its abstract name padded
    with NUL bytes to the whole 108-byte path, as Node.js binds and connects to abstract names."""
    if not name.startswith("\0") or len(name.encode()) > SUN_PATH:
        raise ProtocolError(f"not an abstract Unix socket name: {name!r}")
    return name + "\0" * (SUN_PATH - len(name.encode()))
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


def answer_within(request: memoryview, answer: object) -> tuple[int, int] | None:
    """Where an in-place handler's ``answer`` lies in ``request`` (writable, contiguous bytes):
    (offset, length); None (the whole request) means all of it; None if it lies elsewhere."""
    if answer is None:
        return 0, request.nbytes
    try:
        a = memoryview(answer)  # type: ignore[arg-type]
    except TypeError:
        return None
    if a.readonly or not a.c_contiguous:
        return None
    n = a.nbytes
    if n == 0:
        return 0, 0
    base = ctypes.c_char.from_buffer(request)
    here = ctypes.c_char.from_buffer(a)
    try:
        off = ctypes.addressof(here) - ctypes.addressof(base)
    finally:
        del base, here
    return (off, n) if 0 <= off and off + n <= request.nbytes else None


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

    def __init__(self, node: Node, service: str, handler: Callable[[Any], Any], *, max_concurrent: int = 16, inline: bool = True,
                 host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None, allow_insecure: bool = False,
                 in_place: bool = False) -> None:
        self.service = service
        # in place (§6.1): requests are bytes the handler gets as a writable memoryview — over shm
        # the request's own bytes in the client's ring — and answers with them or a slice of them
        self.in_place = in_place
        # inline: a request that arrives alone on its connection is handled by the thread that
        # read it (no hand-over to a pool thread, several times faster); several at once go to
        # the pool. A handler that blocks for long then delays the requests that arrive meanwhile
        # on the same connection: inline=False sends every request to the pool.
        self._inline = inline
        self._handler = handler
        self._node = node
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="plexus-rpc")
        self._conns: set[net.FrameSocket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.counters = {"requests": 0, "errors": 0, "bytes": 0}
        self.in_flight = 0
        self._beats = _Beats(lambda fs: fs.close())
        self._channels: set[ShmChannel] = set()
        self._listener = net.listen(host, port, tls, allow_insecure, f"the server of {service!r}")
        port = self._listener.getsockname()[1]
        net.serve_connections(self._listener, self._serve, "plexus-rpc-conn", tls)
        endpoints: dict[str, Any] = {**node.identity, "tcp": {"host": host, "port": port, "tls": tls is not None}}
        ident = f"plexus-rpc-{os.getpid()}-{secrets.token_hex(6)}"
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(unix_address(f"\0{ident}"))
        self._unix.listen(64)
        net.serve_connections(self._unix, self._serve_shm, "plexus-rpc-shm")
        endpoints["shm"] = {"name": f"/{ident}", "socket": f"\0{ident}"}
        try:
            self.id: str = node.graph.request("server.add", {"service": service, "endpoints": endpoints, "inPlace": in_place})["server"]
        except BaseException:
            net.close_listener(self._listener)
            net.close_listener(self._unix)
            raise

    def _serve(self, conn: socket.socket) -> None:
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
                if self._inline and not fs.buf:  # nothing else has arrived on this connection
                    self._answer(fs, h, body)
                else:
                    self._pool.submit(self._answer, fs, h, body)
        except (PlexusError, OSError, RuntimeError):
            pass
        self._beats.remove(fs)
        with self._lock:
            self._conns.discard(fs)
        fs.close()

    def _handle(self, flags: int, body: bytes | memoryview) -> tuple[int, codec.FramePlan]:
        """Runs the handler on a request body: the answer's type and frame."""
        c = self.counters
        c["requests"] += 1
        c["bytes"] += 16 + len(body)
        self.in_flight += 1
        try:
            if flags & FLAG_RAW:
                raise ProtocolError(f"a raw request to {self.service!r}, which is not an in-place service")
            request = codec.decode(body)
        except PlexusError as err:  # an undecodable request: an error answer, the channel serves on
            c["errors"] += 1
            return T_ERROR, error_body(err)
        else:
            try:
                return T_RESPONSE, codec.plan(self._handler(request))
            except Exception as err:  # the handler's failure is the caller's RemoteError
                c["errors"] += 1
                return T_ERROR, error_body(err)
        finally:
            self.in_flight -= 1

    def _handle_in_place(self, flags: int, body: memoryview) -> tuple[int, codec.FramePlan | None, int, int]:
        """Runs an in-place handler on a request's writable bytes: (T_ERROR, its frame, 0, 0), or
        (T_IN_PLACE, None, the answer's offset in the request, its length)."""
        c = self.counters
        c["requests"] += 1
        c["bytes"] += 16 + body.nbytes
        self.in_flight += 1
        try:
            if not flags & FLAG_RAW:
                raise ProtocolError(f"an encoded request to {self.service!r}, an in-place service (requests are bytes)")
            at = answer_within(body, self._handler(body))
            if at is None:
                raise InvalidArgumentError(f"the in-place handler of {self.service!r} answered something that is not the request's bytes or a slice of them")
            return T_IN_PLACE, None, at[0], at[1]
        except Exception as err:  # the handler's failure is the caller's RemoteError
            c["errors"] += 1
            return T_ERROR, error_body(err), 0, 0
        finally:
            self.in_flight -= 1

    def _answer(self, fs: net.FrameSocket, h: net.Header, body: bytes) -> None:
        if self.in_place:  # over tcp: the answer's bytes travel (raw)
            request = memoryview(bytearray(body))
            type_, plan, at, length = self._handle_in_place(h.flags, request)
            if plan is None:
                type_, plan = T_RESPONSE, codec.FramePlan(request[at:at + length].tobytes(), [], length)
            parts = message(type_, h.a, plan, FLAG_RAW if type_ == T_RESPONSE else 0)
        else:
            type_, plan = self._handle(h.flags, body)
            parts = message(type_, h.a, plan)
        try:
            fs.sendv(parts)
        except OSError:
            pass

    def _serve_shm(self, conn: socket.socket) -> None:
        """The server side of the shm handshake (§6.2, §6.3) on an accepted Unix socket."""
        fs = net.FrameSocket(conn, net.MAX_HANDSHAKE, "a client")
        try:
            _pre, body = net.accept_hello(fs, RPC, lambda status, reason: f"{reason} (request/response for {self.service!r})".encode())
            name = _ring_name(body)
            if name is None or fs.buf:
                fs.try_send(net.welcome(RPC, net.ST_MALFORMED, 0, b"the HELLO names no Plexus ring (/plexus-<pid>-<hex>), or bytes follow it"))
                raise ProtocolError("malformed")
            try:
                rx = ShmReceiver(name, "\0" + name[1:])
                rx.writable = self.in_place
            except PlexusError as err:
                fs.try_send(net.welcome(RPC, net.ST_MALFORMED, 0, f"the ring {name} cannot be attached ({err.message})".encode()[:256]))
                raise
            try:
                tx = ShmSender(capacity=RING_CAPACITY, max_readers=1)
            except PlexusError as err:
                rx.close()
                fs.try_send(net.welcome(RPC, STATUS_NO_SHM, 0, err.message.encode()[:256]))
                raise
            if not fs.try_send(net.welcome(RPC, net.ST_OK, 0, tx.name.encode())):
                rx.close()
                tx.close()
                raise PeerDeadError("the client left during the handshake")
        except (PlexusError, OSError):
            fs.close()
            return
        holder: list[ShmChannel] = []

        def on_message(type_: int, flags: int, id_: int, body: memoryview, token: int, aux: int) -> None:
            if type_ != T_REQUEST or flags & ~FLAG_RAW:
                rx.release(token)
                raise ProtocolError(f"a client sent a message of type {type_}, flags {flags}")
            if self._inline and not rx.readable():  # alone in the ring: answered by this thread
                answer(flags, id_, body, token)
            else:
                self._pool.submit(answer, flags, id_, body, token)

        def answer(flags: int, id_: int, body: memoryview, token: int) -> None:
            try:
                if self.in_place:  # the answer stays where it is: its place in the request goes back
                    type_, plan, at, length = self._handle_in_place(flags, body)
                    if plan is None:
                        holder[0].send(T_IN_PLACE, id_, codec.FramePlan(struct.pack("<I", length), [], 4), timeout=None, aux=at)
                    else:
                        holder[0].send(type_, id_, plan, timeout=None)
                    return
                type_, plan = self._handle(flags, body)  # the request is a view into the client's ring until here
                holder[0].send(type_, id_, plan, timeout=None)
            except PlexusError:
                pass  # the channel ended
            except Exception as err:  # never a request left unanswered in silence: the client sees the channel end
                holder[0].end(ProtocolError(f"the server of {self.service!r} failed to answer: {err!r}"))
            finally:
                rx.release(token)

        def on_end(error: PlexusError) -> None:
            with self._lock:
                self._channels.discard(holder[0])

        channel = ShmChannel(tx, rx, conn, "a client", on_message, on_end)
        holder.append(channel)  # before the first request can arrive
        with self._lock:
            closed = self._closed
            if not closed:
                self._channels.add(channel)
        if closed:
            channel.end(ClosedError("the server is closed"))
        else:
            channel.start()

    def close(self) -> None:
        """Leaves the graph, stops accepting, finishes what it holds, closes. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
            channels = list(self._channels)
        try:
            self._node.graph.request("server.remove", {"id": self.id})
        except PlexusError:
            pass
        net.close_listener(self._listener)
        net.close_listener(self._unix)
        self._pool.shutdown(wait=True)
        for fs in conns:
            fs.close()
        for ch in channels:
            ch.end(ClosedError(f"the server of {self.service!r} is closed"))
        self._beats.stopped = True
        self._node._forget(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Call:
    __slots__ = ("event", "value", "error", "link", "mode", "at", "size", "pin")

    def __init__(self, link: _Link, mode: str = "value") -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: PlexusError | None = None
        self.link = link
        self.mode = mode  # "value" (codec), "copy" (raw bytes, a copy of the answer), "in-place"
        self.at = -1  # shm: the request body's offset in the request ring's mapping
        self.size = 0  # raw: the request body's size (an in-place answer lies within it)
        self.pin = 0  # shm: the pin on the request's frame (0: none), the client's until answered


class InPlaceResponse:
    """The answer of :meth:`Client.request_in_place`: ``bytes`` is the response where the server
    left it — over shared memory, a writable view of the request's own bytes in this client's
    request ring (over TCP, a copy). The ring does not reuse that memory until :meth:`release`
    (``with`` releases it too): release promptly, and do not use ``bytes`` after."""

    __slots__ = ("bytes", "_release")

    def __init__(self, view: memoryview, release: Callable[[], None] | None = None) -> None:
        self.bytes = view
        self._release = release

    def release(self) -> None:
        """Gives the memory back to the request ring (idempotent)."""
        r, self._release = self._release, None
        if r is not None:
            try:
                self.bytes.release()
            except BufferError:
                pass  # a view made from it (numpy) still refers to the ring: the rule is the caller's
            r()

    def __enter__(self) -> InPlaceResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ShmChannel:
    """The shm form of a request/response channel (§6.3): this end's ring (it writes), the
    peer's ring (it reads) and the handshake socket, whose end is the peer's end."""

    def __init__(self, tx: ShmSender, rx: ShmReceiver, control: socket.socket, what: str,
                 on_message: Callable[[int, int, int, memoryview, int, int], None], on_end: Callable[[PlexusError], None]) -> None:
        self.tx = tx
        self.rx = rx
        self.control = control
        self.what = what
        self.on_message = on_message
        self.on_end = on_end
        self.lock = threading.Lock()
        self.ended = False

    def start(self, reader: bool = True) -> ShmChannel:
        """Starts watching the socket and (``reader``) a thread reading the peer's ring, once the
        owner holds this channel. Without the thread the owner reads with :meth:`take`."""
        if reader:
            threading.Thread(target=self._read, daemon=True, name="plexus-rpc-shm").start()
        threading.Thread(target=self._watch, daemon=True, name="plexus-rpc-shm-control").start()
        return self

    def take(self, got: tuple[int, memoryview, int]) -> None:
        """Checks one message read from the peer's ring and hands it to ``on_message``."""
        _seq, view, token = got
        if view.nbytes < RING_HEADER.size:
            self.rx.release(token)
            raise ProtocolError("not a Plexus request/response message (shorter than a header)")
        magic, type_, flags, reserved, id_, aux = RING_HEADER.unpack_from(view, 0)
        if magic != RING_MAGIC or reserved:
            self.rx.release(token)
            raise ProtocolError("not a Plexus request/response message (bad magic or reserved bytes)")
        self.on_message(type_, flags, id_, view[RING_HEADER.size:], token, aux)

    def send(self, type_: int, id_: int, body: codec.FramePlan, flags: int = 0, timeout: float | None = None, aux: int = 0) -> None:
        """Writes one message into this end's ring (waits for room as the peer releases)."""
        size = RING_HEADER.size + body.byte_length
        with self.lock:
            if self.ended:
                raise PeerDeadError(f"{self.what} is gone")
            w = self.tx.writer
            at = w.try_reserve(size)
            if at is None:
                at = self.tx.reserve(size, timeout)
            view = w.view
            RING_HEADER.pack_into(view, at, RING_MAGIC, type_, flags, 0, id_, aux)
            body.write_into(view, at + RING_HEADER.size)
            w.commit(size)

    def send_raw(self, id_: int, size: int, fill: Callable[[memoryview], None], placed: Callable[[int, int], None],
                 timeout: float | None) -> None:
        """Writes a raw request of ``size`` bytes that ``fill`` writes in place, and pins its frame
        (§6.1: an in-place answer lies in it); ``placed(offset, pin)`` gets the body's offset in
        this end's mapping and the pin before the request is committed (its answer may come at once)."""
        with self.lock:
            if self.ended:
                raise PeerDeadError(f"{self.what} is gone")
            w = self.tx.writer
            at = self.tx.reserve(RING_HEADER.size + size, timeout)
            frame_pos = w.pos
            RING_HEADER.pack_into(w.view, at, RING_MAGIC, T_REQUEST, FLAG_RAW, 0, id_, 0)
            body = w.view[at + RING_HEADER.size:at + RING_HEADER.size + size]
            try:
                fill(body)  # raises: nothing is committed, the reservation is written over
            finally:
                body.release()
            placed(at + RING_HEADER.size, w.pin(frame_pos))
            w.commit(RING_HEADER.size + size)

    def unpin(self, pin: int) -> None:
        """Gives a pinned request frame back to this end's ring; wakes a send waiting for room."""
        self.tx.writer.unpin(pin)
        self.tx._interrupt()

    def _read(self) -> None:
        error: PlexusError = PeerDeadError(f"{self.what} closed its ring")
        try:
            while True:
                got = self.rx.receive()
                if got is None:
                    break
                self.take(got)
        except PlexusError as err:
            error = err
        self.end(error)

    def _watch(self) -> None:
        try:
            data = self.control.recv(1)
        except OSError:
            data = b""
        self.end(ProtocolError(f"{self.what} wrote on the handshake socket after the handshake") if data
                 else PeerDeadError(f"{self.what} closed the connection or died"))

    def end(self, error: PlexusError) -> None:
        """Ends the channel once: both rings and the socket are closed, ``on_end(error)`` is called."""
        with self.lock:
            if self.ended:
                return
            self.ended = True
        try:
            self.control.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.control.close()
        self.rx.close()
        self.tx.close()
        self.on_end(error)


def _ring_name(body: bytes) -> str | None:
    """The ring a handshake body names (``/plexus-<pid>-<hex>``), or None."""
    try:
        name = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return name if len(body) <= 64 and RING_NAME.fullmatch(name) else None


class _Link:
    """A client's connection to one server: over shm (two rings) on the server's host, else tcp."""

    def __init__(self, client: Client[Any, Any], info: dict[str, Any]) -> None:
        ep = info["endpoints"]
        host = str(ep.get("host", "")).split("/")[0]
        self.who = f"the server of {client.service!r} (pid {ep.get('pid')} on {host})"
        self.client = client
        self.id: str = info["id"]
        self.in_place = bool(info.get("inPlace"))  # requests and answers are raw bytes (§6.1)
        self.calls: dict[int, _Call] = {}
        self.dead: PlexusError | None = None
        self.fs: net.FrameSocket | None = None
        self.channel: ShmChannel | None = None
        same_host = ep.get("host") == client._node.identity["host"]
        if same_host and ep.get("shm") and client.transport in (None, "shm"):
            self.transport = "shm"
            self._open_shm(ep["shm"]["socket"])
            return
        self.transport = "tcp"
        tcp = ep["tcp"]
        tls = (client.tls or ssl.create_default_context()) if tcp.get("tls") else None
        sock = net.dial(tcp["host"], tcp["port"], 5.0, "request/response server", tls)
        fs = net.FrameSocket(sock, MAX_MESSAGE, self.who)
        try:
            p, body = net.handshake(fs, RPC, net.hello(RPC, HEARTBEAT_MS), self.who, 5.0)
            if p.heartbeat == 0 or body:
                raise ProtocolError(f"{self.who} answered a WELCOME with a heartbeat of 0 or a body")
        except BaseException:
            fs.close()
            raise
        self.fs = fs
        client._beats.add(fs, max(PEER_TIMEOUT_MS, 3 * p.heartbeat))
        threading.Thread(target=self._read, daemon=True, name="plexus-rpc-link").start()

    def _open_shm(self, path: str) -> None:
        tx = ShmSender(capacity=RING_CAPACITY, max_readers=1)
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control.settimeout(5.0)
            try:
                control.connect(unix_address(path))
            except OSError as err:
                raise PeerDeadError(f"{self.who} does not answer on its shm socket") from err
            fs = net.FrameSocket(control, net.MAX_HANDSHAKE, self.who)

            def own(status: int, reason: str) -> PlexusError | None:
                return SystemError(f"{self.who} has no shared memory: {reason}") if status == STATUS_NO_SHM else None

            _, body = net.handshake(fs, RPC, net.hello(RPC, 0, tx.name.encode()), self.who, 5.0, own)
            name = _ring_name(body)
            if name is None:
                raise ProtocolError(f"{self.who} named no Plexus ring in its WELCOME")
            rx = ShmReceiver(name, "\0" + name[1:])
        except BaseException:
            control.close()
            tx.close()
            raise
        control.settimeout(None)
        self.channel = ShmChannel(tx, rx, control, self.who, self._on_ring_message, self.fail)
        self.channel.start(reader=False)  # the threads that wait for answers read the ring (wait())
        self.leader = threading.Lock()

    def wait(self, call: _Call, timeout: float) -> bool:
        """Waits for ``call``'s answer: True once it is set, False after ``timeout`` s.

        Over shm there is no reading thread: one waiting caller at a time (the leader) reads the
        response ring and hands every answer to its caller; the others wait for theirs or for the
        lead. No hand-over between threads for a caller alone, which is most of a round trip."""
        if self.channel is None:
            return call.event.wait(timeout)
        deadline = time.monotonic() + timeout
        while not call.event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.leader.acquire(blocking=False):
                try:
                    self._lead(call, deadline)
                finally:
                    self.leader.release()
            else:
                call.event.wait(min(left, 0.001))
        return True

    def _lead(self, call: _Call, deadline: float) -> None:
        ch = self.channel
        assert ch is not None
        rx = ch.rx
        try:
            while not call.event.is_set() and self.dead is None:
                got = rx.try_receive()
                if got is not None:
                    ch.take(got)
                    continue
                if rx.ended:
                    raise PeerDeadError(f"{self.who} closed its ring")
                if rx.spin.poll(rx.readable) or not rx.prepare_sleep():
                    continue  # (a server that answers within the poll's budget is read without a sleep)
                left = deadline - time.monotonic()
                if left <= 0:
                    rx.woke()
                    return
                rx.sleep(min(left, RECHECK))
        except PlexusError as err:
            ch.end(err)  # its end fails every call of this link

    def send(self, id_: int, body: codec.FramePlan, timeout: float) -> None:
        """Writes a request (a lost connection fails it through the reader)."""
        if self.channel is not None:
            try:
                self.channel.send(T_REQUEST, id_, body, timeout=timeout)
            except PeerDeadError:
                pass  # the channel's end fails the call
            return
        assert self.fs is not None
        try:
            self.fs.sendv(message(T_REQUEST, id_, body))
        except OSError:
            pass  # the reader fails the link and this call with it

    def send_raw(self, id_: int, call: _Call, data: bytes | bytearray | memoryview | None, size: int,
                 fill: Callable[[memoryview], None] | None, timeout: float) -> None:
        """Writes a raw request (an in-place service's): ``data``, or ``size`` bytes that ``fill``
        writes — in place in the request ring over shm, where its frame stays pinned for the
        answer. What ``fill`` raises is raised here (nothing was sent)."""
        def write(view: memoryview) -> None:
            if fill is not None:
                fill(view)
            else:
                assert data is not None
                view[:] = memoryview(data).cast("B")

        call.size = size
        if self.channel is not None:
            def placed(at: int, pin: int) -> None:
                call.at, call.pin = at, pin

            try:
                self.channel.send_raw(id_, size, write, placed, timeout)
            except PeerDeadError:
                pass  # the channel's end fails the call
            return
        assert self.fs is not None
        if fill is not None:
            buf = bytearray(size)
            with memoryview(buf) as v:
                fill(v)
            data = buf
        assert data is not None
        try:
            self.fs.sendv([net.HEADER.pack(size, T_REQUEST, FLAG_RAW, 0, id_, 0), memoryview(data).cast("B")])
        except OSError:
            pass  # the reader fails the link and this call with it

    def _check(self, h: net.Header) -> None:
        if h.type not in (T_RESPONSE, T_ERROR) or h.flags & ~FLAG_RAW:
            raise ProtocolError(f"{self.who} sent a message of type {h.type}, flags {h.flags}")

    def _on_ring_message(self, type_: int, flags: int, id_: int, body: memoryview, token: int, aux: int) -> None:
        try:
            if type_ not in (T_RESPONSE, T_ERROR, T_IN_PLACE) or flags & ~FLAG_RAW:
                raise ProtocolError(f"{self.who} sent a message of type {type_}, flags {flags}")
            self._answer(type_, flags, id_, bytes(body), aux)  # a copy: the ring frame goes back at once
        finally:
            assert self.channel is not None
            self.channel.rx.release(token)

    def _answer(self, type_: int, flags: int, id_: int, body: bytes, aux: int = 0) -> None:
        with self.client._lock:
            call = self.calls.pop(id_, None)
        if call is None:
            return  # an answer to a request that ended (timed out)
        try:
            if type_ == T_ERROR:
                call.error = remote_error(body)
            elif call.mode == "value":
                if flags & FLAG_RAW or type_ != T_RESPONSE:
                    raise ProtocolError(f"{self.who} answered raw bytes to an encoded request")
                call.value = codec.decode(body, self.client.arrays)
            elif type_ == T_RESPONSE:  # over tcp: the answer's bytes
                if not flags & FLAG_RAW:
                    raise ProtocolError(f"{self.who} answered an encoded value to an in-place request")
                call.value = body if call.mode == "copy" else InPlaceResponse(memoryview(bytearray(body)))
            else:  # in place: where the answer lies in the request's own bytes
                length = struct.unpack("<I", body)[0] if len(body) == 4 and not flags else -1
                if call.at < 0 or length < 0 or aux + length > call.size:
                    raise ProtocolError(f"{self.who} answered in place outside the request")
                assert self.channel is not None
                view = self.channel.tx.writer.view[call.at + aux:call.at + aux + length]
                if call.mode == "copy":
                    call.value = view.tobytes()
                    view.release()
                else:
                    pin, call.pin = call.pin, 0  # the answer keeps the request's frame now
                    channel = self.channel
                    call.value = InPlaceResponse(view, lambda: channel.unpin(pin))
        except PlexusError as err:
            call.error = err
        call.event.set()

    def _read(self) -> None:
        assert self.fs is not None
        error: PlexusError
        try:
            while True:
                h, body = self.fs.read_frame(self._check)
                self._answer(h.type, h.flags, h.a, body)
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
            if self.dead is not None:
                return
            self.dead = dead
            calls = list(self.calls.values())
            self.calls.clear()
            self.client._drop(self)
        for c in calls:
            c.error = dead
            c.event.set()
        if self.fs is not None:
            self.client._beats.remove(self.fs)
            self.fs.close()
        if self.channel is not None:
            self.channel.end(error)


class Client(Generic[Req, Res]):
    """Calls a service: made by :meth:`plexus.Node.client`. Requests go round-robin to the
    service's servers; many may be in flight from any number of threads."""

    def __init__(self, node: Node, service: str, *, arrays: codec.ArrayMode | None = None, transport: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.tls = tls  # for servers whose TCP endpoint is TLS (default: the system's authorities)
        self.arrays = arrays
        self.transport = transport
        self.link_errors: dict[str, PlexusError] = {}  # by server id: why it could not be linked
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
            return [{"server": k, "transport": v.transport} for k, v in self._links.items()]

    def update(self, servers: list[dict[str, Any]]) -> None:
        """Applies a new server set (called with the GraphServer's notifications)."""
        wanted = {s["id"]: s for s in servers if isinstance(s, dict) and self._reachable(s.get("endpoints") or {})}
        with self._lock:
            gone = [link for k, link in self._links.items() if k not in wanted]
            new = [s for k, s in wanted.items() if k not in self._links]
        for link in gone:
            link.fail(PeerDeadError(f"{link.who} left the graph"))
        for s in new:
            try:
                link = _Link(self, s)
            except PlexusError as err:
                self.link_errors[s["id"]] = err
                warnings.warn(LinkWarning(f"plexus: cannot reach server {s['id']} of {self.service!r}: {type(err).__name__}: {err}", err), stacklevel=2)
                continue
            with self._lock:
                closing = self._closing
                if not closing:
                    self._links[link.id] = link
            if closing:
                link.fail(ClosedError("the client is closed"))

    def _reachable(self, ep: dict[str, Any]) -> bool:
        shm = self.transport in (None, "shm") and ep.get("shm") and ep.get("host") == self._node.identity["host"]
        return bool(shm or (self.transport in (None, "tcp") and ep.get("tcp")))

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
        To an in-place service the request is bytes (``bytes``, ``bytearray``, a byte
        ``memoryview``: ``InvalidArgumentError`` otherwise) and the answer a copy, ``bytes``.
        """
        body = None if isinstance(value, (bytes, bytearray, memoryview)) else codec.plan(value)

        def send(link: _Link, id_: int, call: _Call) -> int:
            if not link.in_place:
                plan = body if body is not None else codec.plan(value)
                link.send(id_, plan, timeout)
                return plan.byte_length
            if body is not None:
                raise InvalidArgumentError(f"{self.service!r} is an in-place service: requests are bytes")
            raw = memoryview(value).cast("B")  # type: ignore[arg-type]
            call.mode = "copy"
            link.send_raw(id_, call, raw, raw.nbytes, None, timeout)
            return raw.nbytes

        result: Res = self._submit(send, timeout)
        return result

    def request_in_place(self, data: bytes | bytearray | memoryview | int, fill: Callable[[memoryview], None] | None = None,
                         timeout: float = 5.0) -> InPlaceResponse:
        """A request to an in-place service (a Node server with ``inPlace: true``; docs/rpc.md):
        ``data`` is copied once into the request ring — or ``data`` is a size and ``fill(view)``
        writes the request straight into the ring (no copy; do not keep ``view``: it is the
        server's once ``fill`` returns; what ``fill`` raises is raised here, nothing is sent).
        The handler changes those bytes in place and the answer is a view of them
        (:class:`InPlaceResponse`): release it promptly — this client's later requests wait for
        room while it is held. Over TCP the answer is a copy. ``InvalidArgumentError`` for a
        service that is not in-place, and the errors of :meth:`request`."""
        if isinstance(data, int):
            if fill is None or not 0 <= data:
                raise InvalidArgumentError("request_in_place(size, fill): a size >= 0 and a fill function")
            raw, size = None, data
        else:
            raw = memoryview(data).cast("B")
            size = raw.nbytes

        def send(link: _Link, id_: int, call: _Call) -> int:
            if not link.in_place:
                raise InvalidArgumentError(f"{self.service!r} is not an in-place service: use request()")
            call.mode = "in-place"
            link.send_raw(id_, call, raw, size, fill, timeout)
            return size

        answer: InPlaceResponse = self._submit(send, timeout)
        return answer

    def _submit(self, send: Callable[[_Link, int, _Call], int], timeout: float) -> Any:
        """Picks a server, sends with ``send(link, id, call)`` (the body's size) and waits for the answer."""
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
                size = send(link, id_, call)
            except BaseException:
                with self._lock:
                    link.calls.pop(id_, None)
                raise
            c["bytes"] += 16 + size
            if not link.wait(call, timeout):
                with self._lock:
                    mine = link.calls.pop(id_, None) is not None
                if mine:
                    raise TimeoutError(f"service {self.service!r} did not answer within {timeout * 1000:.0f} ms")
                call.event.wait()  # its answer is being read right now
            if call.error is not None:
                raise call.error
            c["latency"] += (time.monotonic() - started) * 1000
            c["timed"] += 1
            return call.value
        except PlexusError:
            c["errors"] += 1
            raise
        finally:
            c["requests"] += 1
            if call.pin and link.channel is not None:  # not handed to an in-place answer
                link.channel.unpin(call.pin)
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

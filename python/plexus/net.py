"""The connection every stream protocol is built on (docs/protocol.md §0): the 16-byte frame,
the HELLO / WELCOME handshake and its preamble, PING, and a blocking framed socket.
"""
from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Final, Sequence

from .errors import (
    AccessDeniedError,
    FrameTooLargeError,
    InvalidArgumentError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    ResourceExhaustedError,
    SystemError,
    TimeoutError,
)

HEADER: Final = struct.Struct("<IBBHII")
PREAMBLE: Final = struct.Struct("<IHHII")
FRAME_HEADER: Final = 16
T_HELLO: Final = 0x80
T_WELCOME: Final = 0x81
T_PING: Final = 0x82
MAX_HANDSHAKE: Final = 4096
HEARTBEAT_MS: Final = 1000  # how often an end writes when idle (§0.3; this package's default)
PEER_TIMEOUT_MS: Final = 10_000  # silence after which a peer is dead, at least 3 of its heartbeats

ST_OK: Final = 0
ST_VERSION: Final = 1
ST_MALFORMED: Final = 2
ST_FULL: Final = 3
ST_WRONG_PROTOCOL: Final = 4


@dataclass(frozen=True)
class Spec:
    """A protocol's handshake: its magic, version range and names for messages."""

    name: str
    server: str
    magic: int
    version: int
    min_version: int


@dataclass(frozen=True)
class Header:
    """A frame header."""

    length: int
    type: int
    flags: int
    a: int
    b: int


def frame(type_: int, flags: int, a: int, b: int, payload: bytes | memoryview = b"") -> bytes:
    """One frame: the header, then ``payload``."""
    return HEADER.pack(len(payload), type_, flags, 0, a & 0xFFFFFFFF, b & 0xFFFFFFFF) + bytes(payload)


def parse_header(b: bytes | memoryview, offset: int = 0) -> Header:
    """Reads a frame header (its reserved bytes must be zero)."""
    length, type_, flags, reserved, a, b_ = HEADER.unpack_from(b, offset)
    if reserved != 0:
        raise ProtocolError(f"frame type {type_} with non-zero reserved bytes")
    return Header(length, type_, flags, a, b_)


def hello(spec: Spec, heartbeat_ms: int, body: bytes = b"", capabilities: int = 0) -> bytes:
    """A HELLO frame: the preamble (this side's version range), then ``body``."""
    payload = PREAMBLE.pack(spec.magic, spec.version, spec.min_version, capabilities, heartbeat_ms) + body
    return frame(T_HELLO, 0, 0, 0, payload)


def welcome(spec: Spec, status: int, heartbeat_ms: int, body: bytes = b"", version: int | None = None) -> bytes:
    """A WELCOME frame with ``status`` (0: joined, the chosen version) and ``body``."""
    payload = PREAMBLE.pack(spec.magic, version if version is not None else spec.version, spec.min_version, 0, heartbeat_ms if status == 0 else 0) + body
    return frame(T_WELCOME, 0, status, 0, payload)


@dataclass(frozen=True)
class Preamble:
    """A HELLO or WELCOME preamble."""

    magic: int
    version: int
    min_version: int
    capabilities: int
    heartbeat: int


def read_preamble(payload: bytes | memoryview) -> Preamble:
    """The preamble of a HELLO or WELCOME payload (at least 16 bytes)."""
    if len(payload) < 16:
        raise ProtocolError("a handshake payload shorter than its 16-byte preamble")
    return Preamble(*PREAMBLE.unpack_from(payload, 0))


def negotiate(spec: Spec, p: Preamble) -> int | None:
    """The version a server chooses for a HELLO's preamble, or None if no version both speak."""
    v = min(spec.version, p.version)
    return v if v >= spec.min_version and v >= p.min_version else None


def foreign(spec: Spec, peer: str, first: bytes) -> ProtocolError | None:
    """The error for a server's first 16 bytes that cannot begin a WELCOME, else None."""
    if first.startswith(b"HTTP/"):
        return ProtocolError(f"{peer} is not a Plexus {spec.server} (it answered HTTP)")
    length, type_, flags, reserved, _a, b = HEADER.unpack_from(first, 0)
    if 16 <= length <= MAX_HANDSHAKE and type_ == T_WELCOME and flags == 0 and reserved == 0 and b == 0:
        return None
    return ProtocolError(f"{peer} is not a Plexus {spec.server} (it answered {len(first)} bytes that are not a Plexus handshake)")


def check_welcome(spec: Spec, h: Header, payload: bytes, where: str, protocol_status: Callable[[int, str], PlexusError | None] | None = None) -> tuple[Preamble, bytes]:
    """Checks a WELCOME against this client's HELLO: raises the typed error of a refusal.

    Returns the preamble and the body of an accepting WELCOME.
    """
    if len(payload) < 16:
        raise ProtocolError(f"{where} answered a WELCOME shorter than its preamble")
    p = read_preamble(payload)
    body = payload[16:]
    if p.magic != spec.magic:
        raise ProtocolError(f"{where} speaks another Plexus protocol (magic 0x{p.magic:08x}), not {spec.name}")
    if h.a != ST_OK:
        reason = body[:256].decode("utf-8", "replace")
        own = protocol_status(h.a, reason) if protocol_status is not None and h.a >= 16 else None
        if own is not None:
            raise own
        if h.a == ST_FULL:
            raise ResourceExhaustedError(f"{where} is full: {reason}")
        if h.a == ST_VERSION:
            raise ProtocolError(f"{where} speaks {spec.name} versions {p.min_version}..{p.version}, this client {spec.min_version}..{spec.version}")
        raise ProtocolError(f"{where} refused the handshake (status {h.a}): {reason}")
    if not spec.min_version <= p.version <= spec.version or p.capabilities != 0:
        raise ProtocolError(f"{where} chose version {p.version} or capabilities this client did not offer")
    return p, bytes(body)


class FrameSocket:
    """A blocking socket that reads whole frames and writes them under a lock."""

    def __init__(self, sock: socket.socket, max_message: int, peer: str) -> None:
        self.sock = sock
        self.max_message = max_message
        self.peer = peer
        self.buf = bytearray()
        self.wlock = threading.Lock()
        self.last_write = time.monotonic()
        self.last_read = time.monotonic()

    def send(self, data: bytes | memoryview) -> None:
        """Writes ``data`` whole."""
        with self.wlock:
            self.sock.sendall(data)
            self.last_write = time.monotonic()

    def try_send(self, data: bytes | memoryview) -> bool:
        """Writes ``data`` whole if the connection is up; False if it is not (never raises)."""
        try:
            self.send(data)
            return True
        except OSError:
            return False

    def sendv(self, parts: Sequence[bytes | memoryview]) -> None:
        """Writes ``parts`` in order, whole (a vectored write where it can)."""
        with self.wlock:
            if isinstance(self.sock, ssl.SSLSocket):  # no vectored write: small parts as one record
                if sum(len(p) for p in parts) <= 65536:
                    self.sock.sendall(b"".join(parts))
                else:
                    for p in parts:
                        self.sock.sendall(p)
            else:
                pending = [memoryview(p).cast("B") for p in parts if len(p)]
                while pending:
                    n = self.sock.sendmsg(pending[:512])
                    while n > 0 and pending:
                        if n >= pending[0].nbytes:
                            n -= pending[0].nbytes
                            pending.pop(0)
                        else:
                            pending[0] = pending[0][n:]
                            n = 0
            self.last_write = time.monotonic()

    def fill(self, n: int) -> None:
        """Reads until ``n`` bytes are buffered (PeerDeadError at EOF)."""
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except socket.timeout as err:
                raise TimeoutError(f"{self.peer} sent nothing in time") from err
            except ssl.SSLError as err:  # (TLS 1.3: a refused client certificate comes as an alert on the first read)
                raise AccessDeniedError(f"TLS with {self.peer} failed: {err.reason or err}") from err
            except OSError as err:
                raise PeerDeadError(f"the connection to {self.peer} was lost ({err.strerror or err})") from err
            if not chunk:
                raise PeerDeadError(f"{self.peer} closed the connection")
            self.buf += chunk
            self.last_read = time.monotonic()

    def read_frame(self, check: Callable[[Header], None] | None = None, pad: bool = False) -> tuple[Header, bytes]:
        """The next frame: its header (checked by ``check`` before the payload is read) and payload.

        PINGs are taken here and never returned. ``pad``: payloads are followed by zero bytes up
        to a multiple of 16 (the tcp transport's DATA).
        """
        while True:
            self.fill(FRAME_HEADER)
            h = parse_header(bytes(self.buf[:FRAME_HEADER]))
            if h.type == T_PING:
                if h.length or h.flags or h.a or h.b:
                    raise ProtocolError(f"{self.peer} sent a PING with non-zero fields")
                del self.buf[:FRAME_HEADER]
                continue
            if check is not None:
                check(h)
            if h.length > self.max_message:
                raise FrameTooLargeError(f"{self.peer} sent a frame of {h.length} bytes, more than the {self.max_message} this side accepts")
            size = FRAME_HEADER + h.length
            total = FRAME_HEADER + ((h.length + 15) & ~15) if pad else size
            self.fill(total)
            payload = bytes(self.buf[FRAME_HEADER:size])
            del self.buf[:total]
            return h, payload

    def close(self) -> None:
        """Closes the socket (idempotent)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def dial(host: str, port: int, timeout: float, what: str, tls: ssl.SSLContext | None = None) -> socket.socket:
    """Connects to ``host:port`` (TLS with ``tls``); a failure is a typed error naming ``what``."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout as err:
        raise TimeoutError(f"no {what} answered at {host}:{port} within {timeout * 1000:.0f} ms") from err
    except OSError as err:
        raise SystemError(f"cannot connect to the {what} at {host}:{port}: {err.strerror or err}", errno=err.errno) from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, ssl.CertificateError) as err:
            sock.close()
            raise AccessDeniedError(f"the TLS handshake with the {what} at {host}:{port} failed: {err}") from err
    return sock


def is_loopback(host: str) -> bool:
    """True for the loopback addresses that may serve and reach plain TCP (§0.4)."""
    return host in ("::1", "localhost") or host.startswith("127.")


def plain_allowed(host: str, tls: ssl.SSLContext | None, allow_insecure: bool, verb: str = "to") -> None:
    """Plain TCP only on loopback addresses unless the user opts out (§0.4): AccessDeniedError."""
    if tls is None and not allow_insecure and not is_loopback(host):
        raise AccessDeniedError(f"plain TCP {verb} {host} is refused off loopback: use TLS (or allow_insecure=True)")


def listen(host: str, port: int, tls: ssl.SSLContext | None, allow_insecure: bool, what: str) -> socket.socket:
    """A listening socket at ``host:port`` for ``what``: plain TCP only on loopback unless
    ``allow_insecure`` (AccessDeniedError), a server context for TLS (InvalidArgumentError if
    ``tls`` is a client context), SystemError if the address cannot be bound."""
    if tls is not None and (not isinstance(tls, ssl.SSLContext) or tls.protocol == ssl.PROTOCOL_TLS_CLIENT):
        raise InvalidArgumentError(f"{what}: option \"tls\" must be a server ssl.SSLContext (ssl.PROTOCOL_TLS_SERVER with load_cert_chain())")
    plain_allowed(host, tls, allow_insecure, "on")
    try:
        return socket.create_server((host, port))
    except OSError as err:
        raise SystemError(f"{what}: cannot listen on {host}:{port}: {err.strerror or err}", errno=err.errno) from err


def accept_tls(conn: socket.socket, tls: ssl.SSLContext, timeout: float = 5.0) -> socket.socket | None:
    """A server's side of the TLS handshake on an accepted connection (within ``timeout`` s);
    None (the connection closed) if it failed — the client sees its own typed error."""
    conn.settimeout(timeout)
    try:
        wrapped = tls.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return None
    wrapped.settimeout(None)
    return wrapped


def close_listener(listener: socket.socket) -> None:
    """Closes a listening socket and wakes the thread blocked in its ``accept`` (a plain close
    leaves the port bound while that call lasts)."""
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()


def serve_connections(listener: socket.socket, handle: Callable[[socket.socket], None], name: str,
                      tls: ssl.SSLContext | None = None) -> None:
    """Accepts connections on ``listener`` in a thread of its own and handles each in a thread
    (after the TLS handshake with ``tls``); stops when the listener is closed."""
    def serve(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = accept_tls(conn, tls) if tls is not None else conn
        if wrapped is not None:
            handle(wrapped)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            target = serve if listener.family != socket.AF_UNIX else handle
            threading.Thread(target=target, args=(conn,), daemon=True, name=name).start()

    threading.Thread(target=accept, daemon=True, name=f"{name}-accept").start()


def accept_hello(fs: FrameSocket, spec: Spec, refusal: Callable[[int, str], bytes], timeout: float = 5.0) -> tuple[Preamble, bytes]:
    """A server's side of §0.2: reads the client's HELLO (within ``timeout`` s) and answers the
    refusals every protocol shares — another protocol's magic (status 4), no common version
    (status 1) — with ``refusal(status, reason)`` as the body. Returns the preamble and the body;
    raises ProtocolError (or a connection error) when there is no HELLO to serve."""
    fs.sock.settimeout(timeout)
    h, payload = fs.read_frame()
    if h.type != T_HELLO:
        raise ProtocolError("the first frame is not a HELLO")
    pre = read_preamble(payload)
    if pre.magic != spec.magic:
        fs.try_send(welcome(spec, ST_WRONG_PROTOCOL, 0, refusal(ST_WRONG_PROTOCOL, f"this port serves {spec.name}")))
        raise ProtocolError(f"a HELLO of another protocol (magic 0x{pre.magic:08x})")
    if negotiate(spec, pre) is None:
        fs.try_send(welcome(spec, ST_VERSION, 0, refusal(ST_VERSION, f"no version both speak ({spec.min_version}..{spec.version} here)")))
        raise ProtocolError(f"a HELLO of versions {pre.min_version}..{pre.version}")
    fs.sock.settimeout(None)
    return pre, bytes(payload[16:])


def handshake(fs: FrameSocket, spec: Spec, hello_frame: bytes, where: str, timeout: float, protocol_status: Callable[[int, str], PlexusError | None] | None = None) -> tuple[Preamble, bytes]:
    """Sends ``hello_frame`` and reads the WELCOME (typed errors for a refusal or a foreign server)."""
    try:
        fs.send(hello_frame)
    except ssl.SSLError as err:
        # A TLS server that refused this client (a certificate it requires) may have closed the
        # connection before the HELLO went out: the refusal, whether it arrives on the write or the read.
        raise AccessDeniedError(f"TLS with {where} failed: {err.reason or err}") from err
    fs.sock.settimeout(timeout)
    try:
        fs.fill(FRAME_HEADER)
    except PeerDeadError as err:
        raise PeerDeadError(f"{where} closed the connection during the handshake") from err
    wrong = foreign(spec, where, bytes(fs.buf[:FRAME_HEADER]))
    if wrong is not None:
        raise wrong
    h, payload = fs.read_frame()
    fs.sock.settimeout(None)
    return check_welcome(spec, h, payload, where, protocol_status)

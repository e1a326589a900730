"""Acknowledged queues over TCP (docs/queue.md, docs/protocol.md §7): a client and a server
whose every put returns on an acknowledgement that came back over the wire (``fast``: the
message is in the peer's queue; ``reliable``: the peer's application released it), or raises a
typed error.

A client reconnects when its connection drops, within ``reconnect_window``, and the server
resumes its session (same identity and token): both sides resend what was not acknowledged, and
receivers drop the duplicates (§7.3). A session that cannot be resumed is lost: its pending puts
raise PeerDeadError, and the client's next call starts a new one.
"""
from __future__ import annotations

import collections
import re
import secrets
import socket
import ssl
import struct
import threading
import time
from typing import Any, Callable, Final, Generic, Iterator, Literal, TypeVar

from . import codec, net
from .errors import (
    AccessDeniedError,
    ClosedError,
    FrameTooLargeError,
    InvalidArgumentError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    TimeoutError,
    error_from_wire,
)

QUEUE: Final = net.Spec("queue", "queue server", 0x51584C50, 3, 3)
T_DATA, T_ACK, T_NACK, T_BYE = 3, 4, 5, 7
FLAG_RELIABLE: Final = 1
FLAG_IDLE: Final = 1
FLAG_TAKEN_OVER: Final = 2
STATUS_SUPERSEDED: Final = 16
NACK_MALFORMED: Final = 1
NACK_CLOSED: Final = 2
NACK_FAILED: Final = 3  # the receiver could not handle it: text = error code, space, message
MAX_SLOTS: Final = 1024
MAX_MESSAGE: Final = 64 << 20
HEARTBEAT_MS: Final = net.HEARTBEAT_MS
PEER_TIMEOUT_MS: Final = net.PEER_TIMEOUT_MS
_BODY: Final = struct.Struct("<BBHI16s8s")
Mode = Literal["fast", "reliable"]
T = TypeVar("T")


def handshake_body(resumed: bool, slots: int, max_message: int, identity: bytes, token: bytes) -> bytes:
    """The 32-byte HELLO / WELCOME body of §7.2."""
    return _BODY.pack(1 if resumed else 0, 0, slots, max_message, identity, token)


def read_body(b: bytes) -> tuple[bool, int, int, bytes, bytes]:
    """(resumed, slots, maxMessage, identity, token) of a handshake body; ProtocolError if malformed."""
    if len(b) != 32:
        raise ProtocolError(f"a queue handshake body of {len(b)} bytes (32 expected)")
    resumed, reserved, slots, maxm, ident, token = _BODY.unpack(b)
    if reserved or resumed > 1 or not 1 <= slots <= MAX_SLOTS:
        raise ProtocolError("a malformed queue handshake body")
    return bool(resumed), slots, maxm, ident, token


def _nack_error(reason: int, text: str) -> PlexusError:
    """The error a NACK's reason and text stand for."""
    if reason == NACK_MALFORMED:
        return ProtocolError(f"the peer refused the message as malformed: {text}")
    if reason == NACK_FAILED:
        code, _, message = text.partition(" ")
        if re.fullmatch(r"ERR_PLEXUS[A-Z_]*", code):
            return error_from_wire(code, f"the peer could not handle the message: {message or code}")
    return PeerDeadError(f"the peer closed before taking the message: {text}")


def nack_payload(reason: int, text: str) -> bytes:
    """A NACK payload: the reason, then up to 252 bytes of UTF-8."""
    return struct.pack("<I", reason) + text.encode("utf-8")[:252]


def _check(h: net.Header) -> None:
    if h.type not in (T_DATA, T_ACK, T_NACK, T_BYE) or h.b:
        raise ProtocolError(f"a queue frame of type {h.type}")
    if h.type == T_DATA and h.flags & ~FLAG_RELIABLE or h.type in (T_ACK, T_NACK) and h.flags or h.type == T_BYE and h.flags & ~3:
        raise ProtocolError(f"a queue frame of type {h.type} with flags {h.flags}")
    if h.type in (T_ACK, T_BYE) and h.length or h.type == T_NACK and not 4 <= h.length <= 256:
        raise ProtocolError(f"a queue control frame of type {h.type} with {h.length} bytes")


def _diff(a: int, b: int) -> int:
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d & 0x80000000 else d


def _next(serial: int) -> int:
    return 1 if serial == 0xFFFFFFFF else serial + 1


class QueueMessage(Generic[T]):
    """A message taken from a queue: ``value`` and the ``peer`` it came from (a client's identity
    in hex on a server, "server" on a client). Release it when done (``reliable`` senders are
    acknowledged then); ``with`` releases it too."""

    __slots__ = ("value", "peer", "_release")

    def __init__(self, value: T, peer: str, release: Callable[[], None] | None) -> None:
        self.value = value
        self.peer = peer
        self._release = release

    def release(self) -> None:
        """Releases the message (idempotent)."""
        r, self._release = self._release, None
        if r is not None:
            r()

    def __enter__(self) -> QueueMessage[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Put:
    __slots__ = ("event", "error", "serial", "parts", "flags")

    def __init__(self, parts: list[bytes | memoryview], flags: int) -> None:
        self.event = threading.Event()
        self.error: PlexusError | None = None
        self.serial = 0
        self.parts = parts
        self.flags = flags


class _Session:
    """One peer's session: serials both ways, slots, what is in flight, what was acknowledged."""

    def __init__(self, owner: _Endpoint, peer: str, identity: bytes, token: bytes, peer_slots: int, peer_max: int) -> None:
        self.owner = owner
        self.peer = peer
        self.identity = identity
        self.token = token
        self.peer_slots = peer_slots
        self.peer_max = peer_max
        self.fs: net.FrameSocket | None = None
        self.out_serial = 0
        self.in_flight: collections.OrderedDict[int, _Put] = collections.OrderedDict()
        self.waiting: collections.deque[_Put] = collections.deque()
        self.last_in = 0
        self.unacked_in: set[int] = set()  # received, not yet acknowledged (reliable, or parked)
        self.refused: dict[int, bytes] = {}
        self.ended: PlexusError | None = None
        self.generation = 0  # incremented when the serials start over: older messages' releases are void

    def send_or_queue(self, put: _Put) -> None:
        """Sends ``put`` if a slot is free, else queues it (called under the endpoint's lock)."""
        if len(self.in_flight) < self.peer_slots and self.fs is not None:
            self._send(put)
        else:
            self.waiting.append(put)

    def _send(self, put: _Put) -> None:
        if put.serial == 0:
            self.out_serial = _next(self.out_serial)
            put.serial = self.out_serial
        self.in_flight[put.serial] = put
        fs = self.fs
        if fs is not None:
            length = sum(memoryview(p).nbytes for p in put.parts)
            try:
                fs.sendv([net.HEADER.pack(length, T_DATA, put.flags, 0, put.serial, 0), *put.parts])
            except OSError:
                pass  # the reader sees the connection end

    def settle(self, serial: int, error: PlexusError | None) -> None:
        """An ACK (error None) or NACK for ``serial``; frees its slot."""
        put = self.in_flight.pop(serial, None)
        if put is None:
            return
        put.error = error
        put.event.set()
        while self.waiting and len(self.in_flight) < self.peer_slots and self.fs is not None:
            self._send(self.waiting.popleft())

    def resend(self) -> None:
        """After a resumed handshake: every DATA not acknowledged, in serial order, then the rest."""
        for put in list(self.in_flight.values()):
            self.in_flight.pop(put.serial)
            self._send(put)
        while self.waiting and len(self.in_flight) < self.peer_slots:
            self._send(self.waiting.popleft())

    def _start_over(self) -> None:
        self.out_serial = 0
        self.last_in = 0
        self.unacked_in.clear()
        self.refused.clear()
        self.generation += 1

    def restart(self, error: PlexusError) -> None:
        """The peer did not keep the session: the puts in flight (which may or may not have
        arrived) fail with ``error``, those waiting go out next, with fresh serials."""
        for put in self.in_flight.values():
            put.error = error
            put.event.set()
        self.in_flight.clear()
        self._start_over()

    def requeue(self) -> None:
        """The peer ended the session knowing nothing of what is in flight (idle collection):
        those puts go out again first, with fresh serials."""
        again = list(self.in_flight.values())
        for put in again:
            put.serial = 0
        self.in_flight.clear()
        self.waiting.extendleft(reversed(again))
        self._start_over()

    def end(self, error: PlexusError) -> None:
        """The session is over: every put in flight or waiting fails with ``error``."""
        self.ended = error
        self.generation += 1
        for put in [*self.in_flight.values(), *self.waiting]:
            put.error = error
            put.event.set()
        self.in_flight.clear()
        self.waiting.clear()


class _Endpoint:
    """What a client and a server share: the inbox, acknowledgements, the reading loop."""

    def __init__(self, mode: Mode, slots: int | None, max_message: int, max_queue: int, identity: bytes | None) -> None:
        if mode not in ("fast", "reliable"):
            raise InvalidArgumentError(f"queue: option \"mode\" must be one of \"fast\", \"reliable\", got {mode!r}")
        self.mode = mode
        self.slots = slots if slots is not None else (16 if mode == "fast" else 1)
        if not 1 <= self.slots <= MAX_SLOTS:
            raise InvalidArgumentError(f"queue: option \"slots\" must be an integer in 1..{MAX_SLOTS}, got {slots}")
        self.max_message = max_message
        self.max_queue = max_queue
        self.identity = identity if identity is not None else secrets.token_bytes(16)
        self.lock = threading.Lock()
        self.inbox: collections.deque[tuple[_Session, int, Any, bool, int]] = collections.deque()
        self.parked: collections.deque[tuple[_Session, int, bytes, bool, int]] = collections.deque()
        self.arrived = threading.Condition(self.lock)
        self.closed = False
        self._getters = 0  # gets waiting for a message

    def _ack(self, s: _Session, serial: int) -> None:
        s.unacked_in.discard(serial)
        if s.fs is not None:
            s.fs.try_send(net.frame(T_ACK, 0, serial, 0))

    def on_data(self, s: _Session, h: net.Header, payload: bytes) -> None:
        """A DATA frame of session ``s`` (§7.3, §7.4)."""
        serial = h.a
        reliable = bool(h.flags & FLAG_RELIABLE)
        with self.lock:
            if serial == _next(s.last_in):
                if len(s.unacked_in) >= self.slots:
                    raise ProtocolError(f"{s.peer} sent more than the {self.slots} unacknowledged messages it was allowed")
                s.last_in = serial
                s.unacked_in.add(serial)
                if len(self.inbox) >= self.max_queue:
                    self.parked.append((s, serial, payload, reliable, s.generation))
                    return
                self._take(s, serial, payload, reliable, s.generation)
            elif s.last_in != 0 and _diff(serial, s.last_in) <= 0:
                if serial in s.refused and s.fs is not None:
                    s.fs.send(s.refused[serial])
                elif serial not in s.unacked_in:
                    self._ack(s, serial)
            else:
                raise ProtocolError(f"{s.peer} sent serial {serial} after {s.last_in}")

    def _take(self, s: _Session, serial: int, payload: bytes, reliable: bool, gen: int) -> None:
        if gen != s.generation:
            return  # a message of a session that started over: its sender counts it as failed
        try:
            value = codec.decode(payload)
        except ProtocolError as err:
            s.unacked_in.discard(serial)
            nack = net.frame(T_NACK, 0, serial, 0, nack_payload(NACK_MALFORMED, err.message))
            s.refused[serial] = nack
            if len(s.refused) > 4096:
                s.refused.pop(next(iter(s.refused)))
            if s.fs is not None:
                s.fs.try_send(nack)
            return
        if not reliable:
            self._ack(s, serial)
        self.inbox.append((s, serial, value, reliable, gen))
        self.arrived.notify_all()

    def get(self, timeout: float | None, ended: Callable[[], PlexusError | None]) -> QueueMessage[Any]:
        """The next message from any peer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while not self.inbox:
                if self.closed:
                    raise ClosedError("the queue endpoint is closed")
                err = ended()
                if err is not None:
                    raise err
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no message within {(timeout or 0) * 1000:.0f} ms")
                self._getters += 1
                try:
                    self.arrived.wait(left if left is not None else 0.25)
                finally:
                    self._getters -= 1
            s, serial, value, reliable, gen = self.inbox.popleft()
            if self.parked:  # room again: take a parked message in
                self._take(*self.parked.popleft())
        release = (lambda: self._released(s, serial, gen)) if reliable else None
        return QueueMessage(value, s.peer, release)

    def _released(self, s: _Session, serial: int, gen: int) -> None:
        with self.lock:
            if gen == s.generation and serial in s.unacked_in:
                self._ack(s, serial)

    def on_ack(self, s: _Session, h: net.Header, payload: bytes) -> None:
        """An ACK or NACK from the peer."""
        with self.lock:
            if h.type == T_ACK:
                s.settle(h.a, None)
            else:
                reason = struct.unpack_from("<I", payload)[0]
                text = payload[4:].decode("utf-8", "replace")
                s.settle(h.a, _nack_error(reason, text))

    def put_to(self, sessions: list[_Session], value: object, timeout: float) -> None:
        """Encodes once, puts to every session and waits for each acknowledgement."""
        plan = codec.plan(value)
        flags = FLAG_RELIABLE if self.mode == "reliable" else 0
        puts: list[_Put] = []
        with self.lock:
            if self.closed:
                raise ClosedError("the queue endpoint is closed")
            for s in sessions:
                if plan.byte_length > min(s.peer_max, self.max_message):
                    raise FrameTooLargeError(f"a message of {plan.byte_length} bytes exceeds the limit of {s.peer} ({s.peer_max}) or this end's")
            for s in sessions:
                if s.ended is not None:
                    raise s.ended
                put = _Put(plan.chunks(), flags)
                puts.append(put)
                s.send_or_queue(put)
        deadline = time.monotonic() + timeout
        for put in puts:
            if not put.event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"no acknowledgement within {timeout * 1000:.0f} ms")
            if put.error is not None:
                raise put.error

    def beat(self, sessions: Callable[[], list[_Session]], silence: Callable[[_Session], float]) -> None:
        """Heartbeats: a PING after a heartbeat without writing; a silent peer's connection is closed."""
        ping = net.frame(net.T_PING, 0, 0, 0)
        while not self.closed:
            time.sleep(0.25)
            now = time.monotonic()
            for s in sessions():
                fs = s.fs
                if fs is None:
                    continue
                if now - fs.last_read > silence(s):
                    fs.close()
                elif now - fs.last_write >= HEARTBEAT_MS / 1000:
                    fs.try_send(ping)


def parse_url(url: str) -> tuple[str, int, bool]:
    """``tcp://host:port`` or ``tls://host:port`` -> (host, port, tls)."""
    m = re.fullmatch(r"(tcp|tls)://\[?([^\]]+?)\]?:(\d{1,5})/?", url)
    if m is None or int(m.group(3)) > 65535:
        raise InvalidArgumentError(f"queue: option \"url\" must be tcp://host:port or tls://host:port, got {url!r}")
    return m.group(2), int(m.group(3)), m.group(1) == "tls"


ClientState = Literal["connected", "reconnecting", "disconnected", "failed", "closed"]
ClientEvent = Literal["disconnect", "reconnect", "session-lost"]


class QueueClient(_Endpoint):
    """A queue client over TCP: ``put`` to the server, ``get`` what the server puts.

    One session with the server, over a connection the client makes again (same identity and
    session token, so the server keeps the session) when it drops, for up to
    ``reconnect_window`` seconds; what was not acknowledged is resent then. If the window
    passes or the server says BYE, the session is lost: pending puts raise PeerDeadError and the
    client is ``disconnected`` until its next call starts a new session (a new token). A server
    that restarted and lost the session makes the puts in flight raise PeerDeadError; those not
    sent yet go out in the new session. See :attr:`state` and :meth:`on`.
    """

    def __init__(self, url: str, *, mode: Mode = "fast", slots: int | None = None, max_message: int = MAX_MESSAGE,
                 max_queue: int = 1024, identity: bytes | None = None, timeout: float = 5.0,
                 tls: ssl.SSLContext | None = None, allow_insecure: bool = False, reconnect_window: float = 5.0,
                 heartbeat_ms: int = HEARTBEAT_MS, peer_timeout_ms: int = PEER_TIMEOUT_MS) -> None:
        super().__init__(mode, slots, max_message, max_queue, identity)
        if not reconnect_window >= 0:
            raise InvalidArgumentError(f"queue.client: option \"reconnect_window\" must be a number of seconds >= 0, got {reconnect_window!r}")
        host, port, use_tls = parse_url(url)
        if use_tls and tls is None:
            tls = ssl.create_default_context()  # the system's authorities
        net.plain_allowed(host, tls, allow_insecure)
        self._host, self._port, self._tls, self._timeout = host, port, tls, timeout
        self._heartbeat_ms = heartbeat_ms
        self._peer_timeout_ms = peer_timeout_ms
        self.reconnect_window = reconnect_window
        self.where = f"the queue server at {host}:{port}"
        self.token = secrets.token_bytes(8)
        self.id = self.identity.hex()
        self.server = ""
        self.session = _Session(self, "server", bytes(16), self.token, 1, max_message)
        self._state: Literal["connected", "reconnecting", "idle", "disconnected", "failed", "closed"] = "reconnecting"
        self._started = False  # the current session was attached to a connection (a WELCOME came)
        self._taken_over: PeerDeadError | None = None
        self._interrupt: PlexusError | None = None  # raised once by the get that finds the inbox empty
        self._closing = False  # close() waits for the pending puts
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._silence = max(peer_timeout_ms, 3 * heartbeat_ms) / 1000
        self._wake_up = threading.Condition(self.lock)
        fs, resumed = self._dial(timeout)  # the first connection: its failure is the constructor's
        with self.lock:
            self._attach(fs, resumed)
        threading.Thread(target=self._run, args=(fs,), daemon=True, name="plexus-queue-client").start()
        threading.Thread(target=self.beat, args=(lambda: [self.session], lambda s: self._silence), daemon=True).start()

    @property
    def state(self) -> ClientState:
        """``connected``; ``reconnecting`` (the connection dropped, or a call of a disconnected
        client is connecting: puts and gets wait); ``disconnected`` (the session was lost or the
        server collected it while idle: the next put or get connects again); ``failed`` (another
        client took this identity over: every call raises PeerDeadError); ``closed``."""
        st = self._state
        return "disconnected" if st == "idle" else st

    def on(self, event: ClientEvent, listener: Callable[[Any], None]) -> None:
        """Calls ``listener`` on ``event`` (from the client's own thread; what it raises is ignored):

        - ``"disconnect"`` (a PlexusError: why): the connection dropped, or the server collected
          the idle session; the client reconnects now, or when idle on its next call;
        - ``"reconnect"`` (``{"resumed": bool}``): a connection is up again; ``resumed``: the
          server kept the session (nothing lost), else a new session started;
        - ``"session-lost"`` (a PlexusError): the session ended without a ``close()`` and its
          pending puts raised it (those in flight may or may not have arrived).
        """
        if event not in ("disconnect", "reconnect", "session-lost"):
            raise InvalidArgumentError(f"a queue client has no event {event!r} (disconnect, reconnect, session-lost)")
        self._listeners.setdefault(event, []).append(listener)

    def _emit(self, event: str, arg: object) -> None:
        for listener in list(self._listeners.get(event, [])):
            try:
                listener(arg)
            except Exception:  # noqa: BLE001 - a listener's failure is not the client's
                pass

    def put(self, value: object, timeout: float = 30.0) -> None:
        """Puts ``value`` to the server; returns once it acknowledged it (``fast``: in its queue;
        ``reliable``: released by its application). A disconnected client connects again first
        (a new session). ProtocolError if the server refused it as malformed, PeerDeadError if
        the session was lost first (or another client took this identity over), TimeoutError,
        ClosedError."""
        with self.lock:
            self._check_usable()
            self._wake()
            session = self.session
        self.put_to([session], value, timeout)

    def get(self, timeout: float | None = None) -> QueueMessage[Any]:  # type: ignore[override]
        """The next message from the server. After a lost session, the get that finds no message
        left of it raises the session's error once; the next one connects again."""
        with self.lock:
            if self._state in ("closed", "failed") or self.closed:
                pass  # the base raises ClosedError or the failure
            elif self._interrupt is None:
                self._wake()
        return super().get(timeout, self._get_error)

    def _get_error(self) -> PlexusError | None:  # under the lock
        if self._state == "failed":
            return self.session.ended or PeerDeadError("the queue client failed")
        if self._interrupt is not None:
            err, self._interrupt = self._interrupt, None
            return err
        return None

    def _check_usable(self) -> None:  # under the lock
        if self.closed or self._closing or self._state == "closed":
            raise ClosedError("the queue client is closed")
        if self._state == "failed":
            raise self.session.ended or PeerDeadError("the queue client failed")

    def _wake(self) -> None:
        """A call on a client without a connection: connect again (a new session if the last was lost)."""
        if self._state == "disconnected":
            # a new session: fresh serials and a fresh token, so that a server that still holds
            # the old session does not resume it (§7.3)
            self.token = secrets.token_bytes(8)
            self.session = _Session(self, "server", bytes(16), self.token, 1, self.max_message)
            self._started = False
        if self._state in ("idle", "disconnected"):
            self._state = "reconnecting"
            self._wake_up.notify_all()

    def __iter__(self) -> Iterator[QueueMessage[Any]]:
        last: QueueMessage[Any] | None = None
        while True:
            if last is not None:
                last.release()
            try:
                last = self.get()
            except (ClosedError, PeerDeadError):
                return
            yield last

    def _dial(self, timeout: float) -> tuple[net.FrameSocket, bool]:
        """One connection and handshake with this session's token: the socket and whether the
        server resumed the session. Typed errors for a refusal."""
        where = self.where
        fs = net.FrameSocket(net.dial(self._host, self._port, timeout, "queue server", self._tls), net.MAX_HANDSHAKE, where)

        def own(status: int, reason: str) -> PlexusError | None:
            if status != STATUS_SUPERSEDED:
                return None
            self._taken_over = PeerDeadError(f"{where}: another client connected with this client's identity ({self.id}): its session was taken over")
            return self._taken_over

        token = self.token
        try:
            pre, body = net.handshake(fs, QUEUE, net.hello(QUEUE, self._heartbeat_ms, handshake_body(False, self.slots, self.max_message, self.identity, token)), where, timeout, own)
            resumed, peer_slots, peer_max, server_id, answered = read_body(body)
            if answered != token or pre.heartbeat == 0:
                raise ProtocolError(f"{where} answered a WELCOME for another session")
        except BaseException:
            fs.close()
            raise
        fs.max_message = self.max_message
        self._silence = max(self._peer_timeout_ms, 3 * pre.heartbeat) / 1000
        with self.lock:
            resumed = resumed and self._started and server_id.hex() == self.server
            self.server = server_id.hex()
            self.session.peer_slots = peer_slots
            self.session.peer_max = peer_max
        return fs, resumed

    def _attach(self, fs: net.FrameSocket, resumed: bool) -> PlexusError | None:
        """Under the lock: the session goes on over ``fs``; returns the error of a session the
        server lost (the puts in flight failed with it)."""
        lost = None
        if self._started and not resumed:
            lost = PeerDeadError(f"{self.where} lost this client's session (it restarted?)")
            self.session.restart(lost)
        self.session.fs = fs
        self._state = "connected"
        self._started = True
        self.session.resend()
        return lost

    def _run(self, fs: net.FrameSocket | None) -> None:
        """The client's thread: reads the connection; when it ends, reconnects or gives the session up."""
        while True:
            if fs is not None:
                self._read(fs)
                fs = None
            with self.lock:
                while self._state in ("idle", "disconnected", "connected") and not self.closed:
                    self._wake_up.wait()
                if self.closed or self._state in ("closed", "failed"):
                    return
            fs = self._reconnect()

    def _read(self, fs: net.FrameSocket) -> None:
        """Reads ``fs`` until it ends, then settles the session's state."""
        s = self.session
        error: PlexusError = PeerDeadError(f"lost the connection to {self.where}")
        bye: int | None = None
        try:
            while True:
                h, payload = fs.read_frame(_check)
                if h.type == T_DATA:
                    self.on_data(s, h, payload)
                elif h.type in (T_ACK, T_NACK):
                    self.on_ack(s, h, payload)
                else:
                    bye = h.flags
                    break
        except PlexusError as err:
            if not isinstance(err, PeerDeadError):
                error = err
        except OSError:
            pass
        fs.close()
        events: list[tuple[str, object]] = []
        with self.lock:
            if s.fs is fs:
                s.fs = None
            if self.closed or self._state != "connected" or s is not self.session:
                return
            if bye is not None and bye & FLAG_TAKEN_OVER:
                self._fail(PeerDeadError(f"another client connected with this client's identity ({self.id}): its session was taken over"), events)
            elif bye is not None and bye & FLAG_IDLE:
                # collected while idle: what was in flight was ignored by the server, so it goes
                # out again, first, in a new session (on the next call, or now if something waits)
                s.requeue()
                self._started = False
                self._state = "reconnecting" if s.in_flight or s.waiting or self._getters else "idle"
                events.append(("disconnect", PeerDeadError(f"{self.where} ended this client's session after it was idle")))
            elif bye is not None:
                self._lose(PeerDeadError(f"{self.where} closed"), events)
            else:
                self._state = "reconnecting"
                events.append(("disconnect", error))
        for e, arg in events:
            self._emit(e, arg)

    def _reconnect(self) -> net.FrameSocket | None:
        """Dials until a connection is up, for up to ``reconnect_window``; then the session is lost.
        A refusal that another attempt would not change (TLS, not a queue server) ends it at once."""
        end = time.monotonic() + self.reconnect_window
        pause = 0.02
        last: PlexusError = PeerDeadError(f"lost {self.where}")
        refused = False
        while True:
            with self.lock:
                if self.closed or self._state != "reconnecting":
                    return None
            try:
                fs, resumed = self._dial(max(0.05, min(self._timeout, end - time.monotonic())))
            except PlexusError as err:
                if self._taken_over is not None:
                    events: list[tuple[str, object]] = []
                    with self.lock:
                        self._fail(self._taken_over, events)
                    for e, arg in events:
                        self._emit(e, arg)
                    return None
                last = err
                if isinstance(err, (AccessDeniedError, ProtocolError, ClosedError)):
                    refused = True
                    break
            else:
                with self.lock:
                    if self.closed:
                        fs.close()
                        return None
                    lost = self._attach(fs, resumed)
                if lost is not None:
                    self._emit("session-lost", lost)
                self._emit("reconnect", {"resumed": resumed})
                return fs
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)
        why = "refused the reconnection" if refused else f"did not come back within {self.reconnect_window * 1000:.0f} ms"
        events = []
        with self.lock:
            if not self.closed and self._state == "reconnecting":
                self._lose(PeerDeadError(f"{self.where} {why}: {last.message}"), events)
        for e, arg in events:
            self._emit(e, arg)
        return None

    def _lose(self, err: PlexusError, events: list[tuple[str, object]]) -> None:
        """Under the lock: the session is over without a close; pending puts raise ``err``, the get
        that finds no message of it left raises it once; the next call starts a new session."""
        self._state = "disconnected"
        self.session.end(err)
        self._interrupt = err
        self.arrived.notify_all()
        events.append(("session-lost", err))

    def _fail(self, err: PlexusError, events: list[tuple[str, object]]) -> None:
        """Under the lock: another client took this identity over: every call raises ``err``."""
        self._state = "failed"
        self.session.end(err)
        self.arrived.notify_all()
        fs = self.session.fs
        if fs is not None:
            fs.close()
        events.append(("session-lost", err))

    def close(self, linger: float = 2.0) -> None:
        """Waits (at most ``linger`` seconds) until every pending put was acknowledged — new puts
        raise ClosedError meanwhile — then says BYE and closes; puts still pending then raise
        ClosedError. Idempotent."""
        with self.lock:
            if self.closed or self._closing:
                return
            self._closing = True
            session = self.session
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline:
            with self.lock:
                if not (session.in_flight or session.waiting) or self._state in ("disconnected", "failed"):
                    break
            time.sleep(0.002)
        with self.lock:
            self.closed = True
            self._state = "closed"
            fs = self.session.fs
            self.session.end(ClosedError("the queue client is closed"))
            self.arrived.notify_all()
            self._wake_up.notify_all()
        if fs is not None:
            fs.try_send(net.frame(T_BYE, 0, 0, 0))
            fs.close()

    def __enter__(self) -> QueueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueueServer(_Endpoint):
    """A queue server over TCP: ``get`` what clients put, ``put`` to some or every client."""

    def __init__(self, url: str = "tcp://127.0.0.1:0", *, mode: Mode = "fast", slots: int | None = None,
                 max_message: int = MAX_MESSAGE, max_queue: int = 1024, max_clients: int = 1024, identity: bytes | None = None,
                 tls: ssl.SSLContext | None = None, allow_insecure: bool = False) -> None:
        super().__init__(mode, slots, max_message, max_queue, identity)
        host, port, use_tls = parse_url(url)
        if use_tls and tls is None:
            raise InvalidArgumentError("queue.server: a tls:// URL needs the server's certificate: tls=ssl.SSLContext with load_cert_chain()")
        self._listener = net.listen(host, port, tls, allow_insecure, "queue.server")
        self.port: int = self._listener.getsockname()[1]
        self.url = f"{'tls' if tls is not None else 'tcp'}://{host}:{self.port}"
        self.max_clients = max_clients
        self.sessions: dict[bytes, _Session] = {}
        self.superseded: dict[bytes, set[bytes]] = {}
        self._silence: dict[int, float] = {}
        net.serve_connections(self._listener, self._serve, "plexus-queue-conn", tls)
        threading.Thread(target=self.beat, args=(lambda: list(self.sessions.values()), lambda s: self._silence.get(id(s), PEER_TIMEOUT_MS / 1000)),
                         daemon=True).start()

    @property
    def peers(self) -> list[str]:
        """Clients with a session (identities in hex)."""
        with self.lock:
            return [s.peer for s in self.sessions.values() if s.ended is None]

    def put(self, value: object, *peers: str, timeout: float = 30.0) -> None:
        """Puts ``value`` to those clients (none named: every client) and waits for every
        acknowledgement. PeerDeadError for a client without a session (or none at all)."""
        with self.lock:
            if peers:
                targets = []
                for p in peers:
                    s = self.sessions.get(bytes.fromhex(p))
                    if s is None or s.ended is not None:
                        raise PeerDeadError(f"no client {p} has a session with this queue server")
                    targets.append(s)
            else:
                targets = [s for s in self.sessions.values() if s.ended is None]
                if not targets:
                    raise PeerDeadError("no client is connected to this queue server")
        self.put_to(targets, value, timeout)

    def get(self, timeout: float | None = None) -> QueueMessage[Any]:  # type: ignore[override]
        """The next message from any client (``msg.peer`` is its identity in hex)."""
        return super().get(timeout, lambda: None)

    def _refuse(self, fs: net.FrameSocket, status: int, body: bytes) -> None:
        fs.try_send(net.welcome(QUEUE, status, 0, body))
        fs.close()

    def _serve(self, conn: socket.socket) -> None:
        fs = net.FrameSocket(conn, net.MAX_HANDSHAKE, "a queue client")
        zero = handshake_body(False, self.slots, self.max_message, self.identity, bytes(8))
        try:  # a queue refusal carries the queue's body (§7.2), with a zero token here
            pre, body = net.accept_hello(fs, QUEUE, lambda status, reason: zero)
        except (PlexusError, OSError):
            fs.close()
            return
        try:
            _r, slots, peer_max, ident, token = read_body(body)
            if _r or pre.heartbeat == 0:
                raise ProtocolError("malformed")
        except ProtocolError:
            return self._refuse(fs, net.ST_MALFORMED, zero)
        answer = handshake_body(False, self.slots, self.max_message, self.identity, token)
        with self.lock:
            if token in self.superseded.get(ident, set()):
                return self._refuse(fs, STATUS_SUPERSEDED, answer)
            old = self.sessions.get(ident)
            resumed = old is not None and old.token == token and old.ended is None
            if not resumed and len([s for s in self.sessions.values() if s.ended is None]) >= self.max_clients:
                return self._refuse(fs, net.ST_FULL, answer)
            if resumed:
                assert old is not None
                s = old
                if s.fs is not None:
                    s.fs.close()
            else:
                if old is not None:  # another client takes this identity over
                    self.superseded.setdefault(ident, set()).add(old.token)
                    old.end(PeerDeadError(f"client {ident.hex()} was taken over by another client"))
                    if old.fs is not None:
                        old.fs.try_send(net.frame(T_BYE, FLAG_TAKEN_OVER, 0, 0))
                        old.fs.close()
                s = _Session(self, ident.hex(), ident, token, slots, peer_max)
                self.sessions[ident] = s
            s.peer_slots = slots
            s.fs = fs
            self._silence[id(s)] = max(PEER_TIMEOUT_MS, 3 * pre.heartbeat) / 1000
            fs.send(net.welcome(QUEUE, 0, HEARTBEAT_MS, handshake_body(resumed, self.slots, self.max_message, self.identity, token)))
            if resumed:
                s.resend()
        fs.max_message = self.max_message
        try:
            while True:
                h, payload = fs.read_frame(_check)
                if h.type == T_DATA:
                    if s.ended is None:
                        self.on_data(s, h, payload)
                elif h.type in (T_ACK, T_NACK):
                    self.on_ack(s, h, payload)
                else:  # BYE: the client left
                    with self.lock:
                        s.end(PeerDeadError(f"client {s.peer} left"))
                        if self.sessions.get(ident) is s:
                            del self.sessions[ident]
                    break
        except (PlexusError, OSError):
            pass  # the session waits for the client to come back
        fs.close()
        with self.lock:
            if s.fs is fs:
                s.fs = None

    def close(self) -> None:
        """Says BYE to every client and closes; pending puts raise ClosedError. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            sessions = list(self.sessions.values())
            for s in sessions:
                s.end(ClosedError("the queue server is closed"))
            self.arrived.notify_all()
        net.close_listener(self._listener)
        for s in sessions:
            fs = s.fs
            if fs is not None:
                fs.try_send(net.frame(T_BYE, 0, 0, 0))
                fs.close()

    def __enter__(self) -> QueueServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def server(url: str = "tcp://127.0.0.1:0", **opts: Any) -> QueueServer:
    """A queue server listening at ``url`` (``tcp://host:port``; port 0 picks a free one)."""
    return QueueServer(url, **opts)


def client(url: str, **opts: Any) -> QueueClient:
    """A queue client of the server at ``url``."""
    return QueueClient(url, **opts)


"""The tcp transport (docs/protocol.md §5): a sender that listens and writes every message to
every receiver under a credit window, and a receiver that acknowledges what it released.
"""
from __future__ import annotations

import collections
import os
import queue
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Callable, Final, Literal, Sequence

from . import net
from .errors import (
    BackpressureError,
    ClosedError,
    FrameTooLargeError,
    InvalidArgumentError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    SequenceError,
    TimeoutError,
)

TCP: Final = net.Spec("tcp transport", "tcp sender", 0x54584C50, 2, 2)
T_DATA: Final = 1
T_END: Final = 2
T_WANT: Final = 4
T_ACK: Final = 16
T_BYE: Final = 17
POLICIES: Final = {"block": 0, "drop-oldest": 1, "fail": 2}
Policy = Literal["block", "drop-oldest", "fail"]
MIN_WINDOW: Final = 64
MAX_WINDOW: Final = 1 << 30
HEARTBEAT_MS: Final = net.HEARTBEAT_MS
PEER_TIMEOUT_MS: Final = net.PEER_TIMEOUT_MS
_HELLO_BODY: Final = struct.Struct("<B3xI")
_WELCOME_BODY: Final = struct.Struct("<IIII")


def frame_bytes(length: int) -> int:
    """Window bytes a DATA frame of ``length`` payload bytes costs."""
    return 16 + ((length + 15) & ~15)


def hello_body(policy: Policy, pid: int) -> bytes:
    """A receiver's HELLO body."""
    return _HELLO_BODY.pack(POLICIES[policy], pid)


def welcome_body(window: int, max_message: int, start_seq: int) -> bytes:
    """A sender's accepting WELCOME body."""
    return _WELCOME_BODY.pack(window, max_message, start_seq & 0xFFFFFFFF, start_seq >> 32)


@dataclass
class Frame:
    """A message a receiver got: its sequence number and payload; release it when done."""

    sequence: int
    payload: bytes
    _release: Callable[[int], None]
    _released: bool = False

    def release(self) -> None:
        """Gives the frame's window back to the sender (idempotent)."""
        if not self._released:
            self._released = True
            self._release(frame_bytes(len(self.payload)))


_END = object()


class TcpReceiver:
    """A connection to a tcp sender: ``receive()`` the frames it sends, in order."""

    def __init__(self, host: str, port: int, *, policy: Policy = "block", timeout: float = 5.0,
                 heartbeat_ms: int = HEARTBEAT_MS, peer_timeout_ms: int = PEER_TIMEOUT_MS, max_message: int = 1 << 30,
                 label: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        if policy not in POLICIES:
            raise InvalidArgumentError(f"connect_tcp: option \"policy\" must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy = policy
        where = label or f"the tcp sender at {host}:{port}"
        self.where = where
        sock = net.dial(host, port, timeout, "tcp sender", tls)
        self._fs = net.FrameSocket(sock, max_message, where)
        try:
            p, body = net.handshake(self._fs, TCP, net.hello(TCP, heartbeat_ms, hello_body(policy, os.getpid())), where, timeout)
            if len(body) != 16 or p.heartbeat == 0:
                raise ProtocolError(f"{where} answered a WELCOME that is not the tcp transport's")
            window, maxm, lo, hi = _WELCOME_BODY.unpack(body)
            if not MIN_WINDOW <= window <= MAX_WINDOW or frame_bytes(maxm) > window:
                raise ProtocolError(f"{where} announced a window of {window} and messages of {maxm} bytes")
            if maxm > max_message:
                raise FrameTooLargeError(f"{where} sends messages of up to {maxm} bytes, more than the {max_message} this receiver accepts")
        except BaseException:
            self._fs.close()
            raise
        self._fs.max_message = maxm
        self.window = window
        self.next_seq = hi * 2**32 + lo
        self._peer_heartbeat = p.heartbeat
        self._heartbeat = heartbeat_ms / 1000
        self._silence = max(peer_timeout_ms, 3 * p.heartbeat) / 1000
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._released = 0
        self._acked = 0
        self._wanted = False
        self._closed = False
        self._error: PlexusError | None = None
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="plexus-tcp-rx", daemon=True)
        self._reader.start()
        self._ticker = threading.Thread(target=self._tick, name="plexus-tcp-hb", daemon=True)
        self._ticker.start()

    def receive(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None at the sender's graceful end. PeerDeadError if it died."""
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing arrived from {self.where} within {(timeout or 0) * 1000:.0f} ms") from None
        if isinstance(item, Frame):
            return item
        self._ended = True
        self._queue.put(item)
        if item is _END:
            return None
        assert isinstance(item, PlexusError)
        raise item

    def close(self) -> None:
        """Leaves (BYE) and closes the connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._fs.try_send(net.frame(T_BYE, 0, 0, 0))
        self._fs.close()
        self._queue.put(ClosedError(f"the receiver of {self.where} is closed"))

    def _release(self, n: int) -> None:
        with self._lock:
            self._released += n
            due = self._released - self._acked >= self.window // 4 or self._wanted
        if due:
            self._ack()

    def _ack(self) -> None:
        with self._lock:
            if self._closed or self._released == self._acked:
                return
            self._acked = v = self._released
            self._wanted = False
        self._fs.try_send(net.frame(T_ACK, 0, v & 0xFFFFFFFF, v >> 32))

    def _check(self, h: net.Header) -> None:
        if h.type not in (T_DATA, T_END, T_WANT) or h.flags:
            raise ProtocolError(f"{self.where} sent a frame of type {h.type}, flags {h.flags}")
        if h.type != T_DATA and h.length:
            raise ProtocolError(f"{self.where} sent a control frame with a payload")

    def _read(self) -> None:
        try:
            while True:
                h, payload = self._fs.read_frame(self._check, pad=True)
                value = h.b * 2**32 + h.a
                if h.type == T_DATA:
                    if value != self.next_seq and not (self.policy == "drop-oldest" and value > self.next_seq):
                        raise SequenceError(f"{self.where} sent message {value}, expected {self.next_seq}")
                    self.next_seq = value + 1
                    self._queue.put(Frame(value, payload, self._release))
                elif h.type == T_WANT:
                    with self._lock:
                        self._wanted = True
                    self._ack()
                else:
                    self._queue.put(_END)
                    return
        except PlexusError as err:
            with self._lock:
                closed = self._closed
            if not closed:
                self._queue.put(err if not isinstance(err, PeerDeadError) else PeerDeadError(f"{self.where} died or lost its connection"))
        self._fs.close()

    def _tick(self) -> None:
        while True:
            time.sleep(self._heartbeat)
            with self._lock:
                if self._closed or self._ended:
                    return
            now = time.monotonic()
            if now - self._fs.last_read > self._silence:
                self._queue.put(PeerDeadError(f"{self.where} sent nothing for {self._silence * 1000:.0f} ms"))
                self._fs.close()
                return
            if now - self._fs.last_write >= self._heartbeat:
                if self._released != self._acked:
                    self._ack()
                else:
                    try:
                        self._fs.send(net.frame(net.T_PING, 0, 0, 0))
                    except OSError:
                        return


class _Peer:
    __slots__ = ("fs", "policy", "sent", "acked", "pid", "dead", "cond", "queue", "queued", "wlock")

    def __init__(self, fs: net.FrameSocket, policy: int, pid: int, lock: threading.Lock) -> None:
        self.fs = fs
        self.policy = policy
        self.pid = pid
        self.sent = 0
        self.acked = 0
        self.dead = False
        self.cond = threading.Condition(lock)
        # drop-oldest: frames waiting for credit (cost, bytes), at most a window of them (§5.3)
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.queued = 0
        self.wlock = threading.Lock()  # keeps a drop-oldest receiver's frames in sequence order


class TcpSender:
    """Listens on ``host:port`` and writes every message to every receiver (loopback by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, window: int = 4 << 20, max_message: int | None = None,
                 heartbeat_ms: int = HEARTBEAT_MS, peer_timeout_ms: int = PEER_TIMEOUT_MS, max_receivers: int = 64,
                 label: str = "a tcp sender", tls: ssl.SSLContext | None = None, allow_insecure: bool = False) -> None:
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            raise InvalidArgumentError(f"TcpSender: option \"window\" must be an integer in {MIN_WINDOW}..{MAX_WINDOW}, got {window}")
        self.window = window
        self.max_message = max_message if max_message is not None else window // 2 - 16
        self.label = label
        self._heartbeat = heartbeat_ms
        self._peer_timeout = peer_timeout_ms
        self._max_receivers = max_receivers
        self._lock = threading.Lock()
        self._peers: list[_Peer] = []
        self._seq = 1
        self._closed = False
        self._listener = net.listen(host, port, tls, allow_insecure, label)
        self.port = self._listener.getsockname()[1]
        self.host = host
        self.tls = tls is not None
        net.serve_connections(self._listener, self._serve, "plexus-tcp-conn", tls)
        self._ticker = threading.Thread(target=self._tick, name="plexus-tcp-hb", daemon=True)
        self._ticker.start()

    @property
    def receivers(self) -> int:
        """Receivers joined now."""
        with self._lock:
            return len(self._peers)

    @property
    def next_sequence(self) -> int:
        """The sequence number of the next message."""
        return self._seq

    def send(self, parts: Sequence[bytes | memoryview], length: int, timeout: float | None = 5.0) -> int:
        """Writes one message (``parts``, ``length`` bytes in all) to every receiver; returns its sequence.

        A ``block`` receiver without window room is waited for (TimeoutError after ``timeout``);
        a ``fail`` one makes the message fail for everyone (BackpressureError); for a
        ``drop-oldest`` one the message is queued (a copy), at most a window of bytes, the oldest
        queued dropped first, never the newest; the queue is written as credit comes (§5.3).
        One thread at a time (a publisher serialises its sends).
        """
        if length > self.max_message:
            raise FrameTooLargeError(f"a message of {length} bytes exceeds {self.label}'s maxMessage ({self.max_message})")
        cost = frame_bytes(length)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                raise ClosedError(f"{self.label} is closed")
            for p in self._peers:
                if not p.dead and p.policy == 2 and p.sent - p.acked + cost > self.window:
                    raise BackpressureError(f"a subscriber of {self.label} has no room (policy fail)")
            targets: list[_Peer] = []
            later: list[_Peer] = []
            for p in list(self._peers):
                if p.dead:
                    continue
                if p.policy == 1 and (p.queue or p.sent - p.acked + cost > self.window):
                    later.append(p)
                    continue
                if p.sent - p.acked + cost > self.window:
                    p.fs.try_send(net.frame(T_WANT, 0, 0, 0))
                    while not p.dead and not self._closed and p.sent - p.acked + cost > self.window:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise TimeoutError(f"a subscriber of {self.label} released nothing within {(timeout or 0) * 1000:.0f} ms")
                        p.cond.wait(left)
                    if p.dead:
                        continue
                p.sent += cost
                targets.append(p)
            seq = self._seq
            self._seq += 1
        head = net.HEADER.pack(length, T_DATA, 0, 0, seq & 0xFFFFFFFF, seq >> 32)
        pad = cost - 16 - length
        chunks: list[bytes | memoryview] = [head, *parts]
        if pad:
            chunks.append(bytes(pad))
        for p in targets:
            try:
                if p.policy == 1:
                    with p.wlock:
                        p.fs.sendv(chunks)
                else:
                    p.fs.sendv(chunks)
            except OSError:
                self._drop(p)
        if later:
            frame = b"".join(bytes(c) for c in chunks)  # the caller's buffers may change once this returns
            for p in later:
                with self._lock:
                    p.queue.append((cost, frame))
                    p.queued += cost
                    while p.queued > self.window and len(p.queue) > 1:
                        p.queued -= p.queue.popleft()[0]  # the oldest queued; the receiver counts the gap
                self._flush(p)
        return seq

    def _flush(self, p: _Peer) -> None:
        """Writes a drop-oldest receiver's queued frames while its window has room."""
        with p.wlock:
            while True:
                with self._lock:
                    if p.dead or not p.queue or p.sent - p.acked + p.queue[0][0] > self.window:
                        return
                    cost, frame = p.queue.popleft()
                    p.queued -= cost
                    p.sent += cost
                try:
                    p.fs.send(frame)
                except OSError:
                    self._drop(p)
                    return

    def close(self) -> None:
        """Writes END to every receiver and closes. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            peers = list(self._peers)
            self._peers.clear()
            end = net.frame(T_END, 0, self._seq & 0xFFFFFFFF, self._seq >> 32)
        net.close_listener(self._listener)
        for p in peers:
            self._flush(p)  # what credit allows of a drop-oldest receiver's queue, then END
            p.fs.try_send(end)
            p.fs.close()
            with self._lock:
                p.dead = True
                p.cond.notify_all()

    def _drop(self, p: _Peer) -> None:
        with self._lock:
            p.dead = True
            if p in self._peers:
                self._peers.remove(p)
            p.cond.notify_all()
        p.fs.close()

    def _serve(self, conn: socket.socket) -> None:
        fs = net.FrameSocket(conn, net.MAX_HANDSHAKE, "a receiver")
        try:
            pre, body = net.accept_hello(fs, TCP, lambda status, reason: reason.encode())
            if len(body) != 8 or body[0] > 2 or any(body[1:4]) or pre.heartbeat == 0:
                fs.send(net.welcome(TCP, net.ST_MALFORMED, 0, b"malformed HELLO"))
                raise ProtocolError("malformed")
            policy, pid = _HELLO_BODY.unpack(body)
            with self._lock:
                if self._closed:
                    raise ClosedError("closed")
                if len(self._peers) >= self._max_receivers:
                    fs.send(net.welcome(TCP, net.ST_FULL, 0, f"maxReceivers ({self._max_receivers}) reached".encode()))
                    raise ProtocolError("full")
                peer = _Peer(fs, policy, pid, self._lock)
                fs.send(net.welcome(TCP, net.ST_OK, self._heartbeat, welcome_body(self.window, self.max_message, self._seq)))
                self._peers.append(peer)
        except (PlexusError, OSError):
            fs.close()
            return
        fs.max_message = 0
        silence = max(self._peer_timeout, 3 * pre.heartbeat) / 1000
        conn.settimeout(silence)

        def check(h: net.Header) -> None:
            if h.type not in (T_ACK, T_BYE) or h.flags or h.length:
                raise ProtocolError(f"a receiver sent a frame of type {h.type}")

        try:
            while True:
                h, _ = fs.read_frame(check)
                if h.type == T_BYE:
                    break
                value = h.b * 2**32 + h.a
                with self._lock:
                    if not peer.acked <= value <= peer.sent:
                        raise ProtocolError(f"a receiver acknowledged {value} bytes of {peer.sent} sent")
                    peer.acked = value
                    peer.cond.notify_all()
                if peer.queue:
                    self._flush(peer)
        except (PlexusError, OSError):
            pass
        self._drop(peer)

    def _tick(self) -> None:
        period = self._heartbeat / 1000
        ping = net.frame(net.T_PING, 0, 0, 0)
        while True:
            time.sleep(period)
            with self._lock:
                if self._closed:
                    return
                peers = list(self._peers)
            now = time.monotonic()
            for p in peers:
                if now - p.fs.last_write >= period and not p.fs.try_send(ping):
                    self._drop(p)

"""Publish/subscribe (docs/pubsub.md, docs/protocol.md §4): the message header, publishers and
subscribers linked through the GraphServer.
"""
from __future__ import annotations

import collections
import functools
import os
import ssl
import struct
import threading
import time
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable, Final, Generic, Iterator, Literal, Protocol, TypeVar, cast

from . import codec
from .errors import ClosedError, InvalidArgumentError, LinkWarning, PlexusError, ProtocolError, SystemError, TimeoutError
from .tcp import Policy, TcpReceiver, TcpSender

from .ring import LEARN_SLEEP, AdaptivePoll
from .shm import Poller, ShmReceiver

if TYPE_CHECKING:
    from .node import Node

MAGIC: Final = 0x31535850
RECHECK: Final = 0.25
_eventfd: Callable[[int, int], int] = getattr(os, "eventfd")
_eventfd_read: Callable[[int], int] = getattr(os, "eventfd_read")
_eventfd_write: Callable[[int, int], None] = getattr(os, "eventfd_write")
_EFD_FLAGS: Final[int] = getattr(os, "EFD_NONBLOCK") | getattr(os, "EFD_CLOEXEC")
WIRE_HEADER: Final = 16
_WIRE: Final = struct.Struct("<IId")
_WIRE_RAW: Final = struct.Struct("<IIdIBBHII")  # the header and a codec frame's header (docs/codec.md §1.3)
RAW_PREFIX: Final = WIRE_HEADER + codec.HEADER_BYTES
T = TypeVar("T")
Transport = Literal["shm", "tcp"]


def message_header(sequence: int) -> bytes:
    """The 16-byte pub/sub header of a message with ``sequence``."""
    return _WIRE.pack(MAGIC, 0, float(sequence))


def decode_message(payload: bytes | memoryview, arrays: codec.ArrayMode | None = None) -> tuple[int, Any]:
    """A pub/sub message -> (sequence, value); ProtocolError if it is not one."""
    mv = payload if type(payload) is memoryview else memoryview(payload)
    n = mv.nbytes
    if n >= RAW_PREFIX and mv.readonly and mv.format == "B":  # a raw frame (bytes), whole: taken here
        magic, flags, seq, fmagic, version, kind, fflags, length, count = _WIRE_RAW.unpack_from(mv, 0)
        if (magic == MAGIC and flags == 0 and fmagic == codec.FRAME_MAGIC and version == codec.FRAME_VERSION
                and kind == codec.KIND_RAW and not fflags & ~1 and count == 0 and RAW_PREFIX + length == n):
            return int(seq), mv[RAW_PREFIX:]
    if n < WIRE_HEADER:
        raise ProtocolError(f"a pub/sub message of {n} bytes, shorter than its header")
    magic, flags, seq = _WIRE.unpack_from(mv, 0)
    if magic != MAGIC or flags != 0:
        raise ProtocolError("not a pub/sub message (magic or flags)")
    return int(seq), codec.decode(mv[WIRE_HEADER:], arrays)


class Sample(Generic[T]):
    """A received message: ``value`` (views into the message's memory), its ``sequence``, the
    ``publisher``'s port id. Release it (or use ``with``) when done: on shared memory its bytes
    stay the publisher's to overwrite only after that."""

    __slots__ = ("value", "topic", "sequence", "publisher", "size", "_release")

    def __init__(self, value: T, topic: str, sequence: int, publisher: str, release: Any, size: int = 0) -> None:
        self.value = value
        self.size = size  # bytes of the message on its transport
        self.topic = topic
        self.sequence = sequence
        self.publisher = publisher
        self._release = release

    def release(self) -> None:
        """Gives the message's memory back (idempotent). Views in ``value`` are invalid after."""
        r = self._release
        self._release = None
        if r is not None:
            r()

    def __enter__(self) -> Sample[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def raw_headers(sequence: int, length: int) -> bytes:
    """The pub/sub header and the codec's raw-frame header of a message of ``length`` bytes."""
    return message_header(sequence) + struct.pack("<IBBHII", codec.FRAME_MAGIC, codec.FRAME_VERSION, codec.KIND_RAW, 0, length, 0)


class Loan:
    """The bytes of the next message, lent by :meth:`Publisher.loan`: fill :attr:`bytes`, then
    :meth:`commit` publishes them (subscribers receive bytes: a memoryview in Python, a
    ``Uint8Array`` in Node) or :meth:`abort` drops them. Over shared memory the bytes are the
    ring itself: nothing is copied for subscribers of this host."""

    def __init__(self, pub: Publisher[Any], size: int, at: int | None) -> None:
        self._pub = pub
        self._size = size
        self._at = at
        self._open = True
        shm = pub._shm
        self.bytes: memoryview = shm.writer.view[at + RAW_PREFIX:at + RAW_PREFIX + size] if at is not None and shm is not None else memoryview(bytearray(size))

    def commit(self, length: int | None = None) -> int:
        """Publishes the first ``length`` bytes (all by default); returns the message's sequence number."""
        n = self._size if length is None else length
        if not self._open:
            raise ClosedError("the loan already ended")
        if not 0 <= n <= self._size:
            raise InvalidArgumentError(f"commit length must be in 0..{self._size}, got {n}")
        self._open = False
        return self._pub._commit_loan(self, n)

    def abort(self) -> None:
        """Drops the loan: nothing is published (idempotent)."""
        if self._open:
            self._open = False
            self._pub._loan = None
            self.bytes.release()

    def __enter__(self) -> Loan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a loan left open (an exception, no commit) publishes nothing


class _Link(Protocol):
    transport: str

    def close(self) -> None: ...


class Publisher(Generic[T]):
    """Publishes on a topic: made by :meth:`plexus.Node.publisher`."""

    def __init__(self, node: Node, topic: str, *, capacity: int = 4 << 20, timeout: float = 5.0,
                 transport: Transport | None = None, host: str = "127.0.0.1", port: int = 0,
                 tls: ssl.SSLContext | None = None, allow_insecure: bool = False) -> None:
        from .shm import ShmSender

        self.topic = topic
        self._node = node
        self._timeout = timeout
        self._lock = threading.Lock()
        self._seq = 1
        self._closed = False
        self._loan: Loan | None = None
        self.counters = {"messages": 0, "bytes": 0, "waits": 0}
        self._shm: ShmSender | None = None
        self._tcp: TcpSender | None = None
        endpoints: dict[str, Any] = dict(node.identity)
        try:
            if transport in (None, "shm"):
                try:
                    self._shm = ShmSender(capacity=capacity, timeout=timeout)
                    node.graph.request("segment.add", {"name": self._shm.name})
                    endpoints["shm"] = {"name": self._shm.name, "socket": self._shm.socket_name}
                except SystemError:
                    if transport == "shm":
                        raise
                    if self._shm is not None:
                        self._shm.close()
                    self._shm = None  # no shared memory here: subscribers use TCP
            if transport in (None, "tcp"):
                self._tcp = TcpSender(host, port, window=capacity, label=f"the publisher on {topic!r}", tls=tls, allow_insecure=allow_insecure)
                endpoints["tcp"] = {"host": self._tcp.host, "port": self._tcp.port, "tls": self._tcp.tls}
            self.id: str = node.graph.request("publisher.add", {"topic": topic, "endpoints": endpoints})["publisher"]
        except BaseException:
            self._release_transports()
            raise

    def _release_transports(self) -> None:
        if self._shm is not None:
            self._shm.close()
            try:
                self._node.graph.request("segment.remove", {"name": self._shm.name})
            except PlexusError:
                pass
        if self._tcp is not None:
            self._tcp.close()

    @property
    def subscribers(self) -> int:
        """Subscribers linked now (shared memory and TCP)."""
        return (self._shm.writer.readers() if self._shm is not None else 0) + (self._tcp.receivers if self._tcp is not None else 0)

    def wait_for_subscribers(self, n: int = 1, timeout: float = 10.0) -> None:
        """Waits until ``n`` subscribers are linked (TimeoutError)."""
        import time

        deadline = time.monotonic() + timeout
        while self.subscribers < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} subscriber(s) of {self.topic!r} did not link within {timeout * 1000:.0f} ms")
            time.sleep(0.005)

    def publish(self, value: T, timeout: float | None = None) -> int:
        """Encodes ``value`` once and sends it to every subscriber; returns its sequence number."""
        if self._closed:
            raise ClosedError(f"the publisher on {self.topic!r} is closed")
        if self._loan is not None:
            raise InvalidArgumentError("a loan is open: commit or abort it first")
        raw = cast("bytes | bytearray | memoryview", value)
        t = type(raw)
        if t is bytes or t is bytearray or (t is memoryview and raw.format == "B" and raw.ndim == 1):  # type: ignore[union-attr]
            plan = None  # a raw frame: its header is written with the message's, the bytes after it
            n = raw.nbytes if t is memoryview else len(raw)  # type: ignore[union-attr]
            size = RAW_PREFIX + n
        else:
            plan = codec.plan(value)
            size = WIRE_HEADER + plan.byte_length
        with self._lock:
            seq = self._seq
            shm = self._shm
            c = self.counters
            if shm is not None:
                w = shm.writer
                if w.readers() > 0:
                    at = w.try_reserve(size)  # one copy, into the ring, whatever the number of readers
                    if at is None:
                        waits = shm.waits
                        at = shm.reserve(size, self._timeout if timeout is None else timeout)
                        c["waits"] += shm.waits - waits
                    view = w.view
                    if plan is None:
                        _WIRE_RAW.pack_into(view, at, MAGIC, 0, float(seq), codec.FRAME_MAGIC, codec.FRAME_VERSION, codec.KIND_RAW, 0, n, 0)
                        view[at + RAW_PREFIX:at + size] = raw
                    else:
                        _WIRE.pack_into(view, at, MAGIC, 0, float(seq))
                        plan.write_into(view, at + WIRE_HEADER)
                    w.commit(size)
                    c["bytes"] += size
            tcp = self._tcp
            if tcp is not None:
                receivers = tcp.receivers
                if receivers > 0:
                    if plan is None:
                        plan = codec.plan(value)
                    tcp.send([message_header(seq), *plan.chunks()], size, self._timeout if timeout is None else timeout)
                    c["bytes"] += size * receivers
            c["messages"] += 1
            self._seq = seq + 1
            return seq

    def loan(self, size: int, timeout: float | None = None) -> Loan:
        """Lends ``size`` bytes for the next message, in the ring when subscribers of this host
        are linked (room is taken now: it waits, at most ``timeout`` s, while a ``block``
        subscriber is full); commit or abort it before the next publish or loan."""
        if self._closed:
            raise ClosedError(f"the publisher on {self.topic!r} is closed")
        if not isinstance(size, int) or size < 0:
            raise InvalidArgumentError(f"loan size must be a non-negative integer, got {size!r}")
        with self._lock:
            if self._loan is not None:
                raise InvalidArgumentError("a loan is open: commit or abort it first")
            shm = self._shm
            at = None
            if shm is not None and shm.writer.readers() > 0:
                waits = shm.waits
                at = shm.reserve(RAW_PREFIX + size, self._timeout if timeout is None else timeout)
                self.counters["waits"] += shm.waits - waits
            loan = Loan(self, size, at)
            self._loan = loan
            return loan

    def _commit_loan(self, loan: Loan, n: int) -> int:
        with self._lock:
            self._loan = None
            seq = self._seq
            head = raw_headers(seq, n)
            c = self.counters
            if loan._at is not None and self._shm is not None:
                self._shm.writer.view[loan._at:loan._at + RAW_PREFIX] = head
                self._shm.writer.commit(RAW_PREFIX + n)
                c["bytes"] += RAW_PREFIX + n
            receivers = self._tcp.receivers if self._tcp is not None else 0
            if self._tcp is not None and receivers > 0:  # the loaned bytes, to each TCP subscriber
                self._tcp.send([head, loan.bytes[:n]], RAW_PREFIX + n, self._timeout)
                c["bytes"] += (RAW_PREFIX + n) * receivers
            loan.bytes.release()
            c["messages"] += 1
            self._seq = seq + 1
            return seq

    def close(self) -> None:
        """Leaves the graph; subscribers get what was sent, then the end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._node.graph.request("port.remove", {"id": self.id})
        except PlexusError:
            pass
        self._release_transports()
        self._node._forget(self)

    def __enter__(self) -> Publisher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TcpLink:
    transport = "tcp"

    def __init__(self, sub: Subscriber[Any], info: dict[str, Any]) -> None:
        tcp = info["endpoints"]["tcp"]
        tls = (sub.tls or ssl.create_default_context()) if tcp.get("tls") else None
        self._rx = TcpReceiver(tcp["host"], tcp["port"], policy=sub.backpressure, label=f"the publisher on {sub.topic!r}", tls=tls)
        self._thread = threading.Thread(target=self._pump, args=(sub, info), daemon=True)
        self._thread.start()

    def _pump(self, sub: Subscriber[Any], info: dict[str, Any]) -> None:
        while True:
            try:
                f = self._rx.receive()
            except PlexusError:
                return  # the publisher died or left: the graph will unlink it
            if f is None:
                return
            try:
                seq, value = decode_message(f.payload, sub.arrays)
            except PlexusError:
                f.release()  # a malformed message: skipped, the link serves on
                sub.malformed += 1
                continue
            sub._push(Sample(value, sub.topic, seq, info["id"], f.release, len(f.payload)))

    def close(self) -> None:
        self._rx.close()
        self._thread.join(2)


class ShmLink:
    """A subscriber's link to a publisher's ring. It has no thread: the subscriber's consumer
    reads the ring itself (no thread hop, no lock handed between threads per message)."""

    transport = "shm"

    def __init__(self, sub: Subscriber[Any], info: dict[str, Any]) -> None:
        shm = info["endpoints"]["shm"]
        self.rx = ShmReceiver(shm["name"], shm["socket"], policy=sub.backpressure)
        self.publisher: str = info["id"]
        self.leaky = sub.backpressure == "drop-oldest"  # the writer drops messages only for these
        self.done = False

    def try_sample(self, sub: Subscriber[Any]) -> Sample[Any] | None:
        """The next sample if a message is there (malformed ones are skipped and counted)."""
        rx = self.rx
        while not self.done:
            try:
                got = rx.try_receive()
            except PlexusError:
                self.done = True  # the publisher died or left: the graph will unlink it
                return None
            if got is None:
                if rx.ended:
                    self.done = True
                return None
            _frame_seq, payload, token = got
            try:
                seq, value = decode_message(payload, sub.arrays)
            except PlexusError:
                rx.release(token)
                sub.malformed += 1
                continue
            return Sample(value, sub.topic, seq, self.publisher, functools.partial(rx.release, token), payload.nbytes)
        return None

    def close(self) -> None:
        self.done = True
        self.rx.close()


class Subscriber(Generic[T]):
    """Receives a topic's messages from every publisher upstream: made by
    :meth:`plexus.Node.subscriber`. Iterate it (each sample is released when the next is asked
    for) or call :meth:`receive`."""

    def __init__(self, node: Node, topic: str, *, backpressure: Policy = "block", transport: Transport | None = None,
                 arrays: codec.ArrayMode | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.topic = topic
        self.tls = tls  # for publishers whose TCP endpoint is TLS (default: the system's authorities)
        self.backpressure = backpressure
        self.transport = transport
        self.arrays = arrays
        self.malformed = 0
        self.link_errors: dict[str, PlexusError] = {}  # by publisher id: why it could not be linked
        self.counters = {"messages": 0, "bytes": 0, "drops": 0}
        self._node = node
        self._queue: collections.deque[Sample[T]] = collections.deque()  # from TCP links' threads
        self._efd = _eventfd(0, _EFD_FLAGS)  # rung by TCP links and by link changes
        weakref.finalize(self, os.close, self._efd)
        self._links: dict[str, _Link] = {}
        self._rings: list[ShmLink] = []  # read by the consumer itself, no thread
        self._lock = threading.Lock()
        self._consumer = threading.Lock()
        self._poller = Poller()  # the consumer's
        self._spin = AdaptivePoll()  # the consumer's polls of its rings before it sleeps
        self._closed = False
        self._last: Sample[T] | None = None
        answer = node.graph.request("subscriber.add", {"topic": topic})
        self.id: str = answer["subscriber"]
        node._subscribers[self.id] = self
        self.update(answer["publishers"])

    @property
    def publishers(self) -> list[str]:
        """Ids of the publishers linked now."""
        with self._lock:
            return list(self._links)

    @property
    def links(self) -> list[dict[str, str]]:
        """The transport of each link."""
        with self._lock:
            return [{"publisher": k, "transport": v.transport} for k, v in self._links.items()]

    def update(self, publishers: list[dict[str, Any]]) -> None:
        """Applies a new upstream set (called with the GraphServer's notifications)."""
        wanted = {p["id"]: p for p in publishers if isinstance(p, dict) and isinstance(p.get("id"), str)}
        with self._lock:
            gone = [(k, v) for k, v in self._links.items() if k not in wanted]
            for k, _ in gone:
                del self._links[k]
            new = [p for k, p in wanted.items() if k not in self._links]
            self._rings = [v for v in self._links.values() if isinstance(v, ShmLink)]
        for _, link in gone:
            link.close()
        for p in new:
            try:
                made = self._link(p)
            except PlexusError as err:
                self.link_errors[p["id"]] = err
                warnings.warn(LinkWarning(f"plexus: cannot reach publisher {p['id']} on {self.topic!r}: {type(err).__name__}: {err}", err), stacklevel=2)
                continue
            if made is None:
                continue
            link = made
            with self._lock:
                if self._closed:
                    link.close()
                else:
                    self._links[p["id"]] = link
                    self._rings = [v for v in self._links.values() if isinstance(v, ShmLink)]
        self._wake()

    def _link(self, p: dict[str, Any]) -> _Link | None:
        ep = p.get("endpoints") or {}
        same_host = ep.get("host") == self._node.identity["host"]
        if same_host and ep.get("shm") and self.transport in (None, "shm"):
            return ShmLink(self, p)
        if ep.get("tcp") and self.transport in (None, "tcp"):
            return _TcpLink(self, p)
        return None

    def _push(self, s: Sample[T]) -> None:
        if self._closed:
            s.release()
        else:
            self._queue.append(s)
            self._wake()

    def _wake(self) -> None:
        try:
            _eventfd_write(self._efd, 1)
        except OSError:
            pass

    def receive(self, timeout: float | None = None) -> Sample[T]:
        """The next sample (TimeoutError after ``timeout`` s, ClosedError once closed).

        The calling thread reads the shared-memory rings itself: it polls them for a few tens
        of microseconds, then sleeps until a publisher rings it. One thread at a time.
        """
        with self._consumer:
            s = self._receive(None if timeout is None else time.monotonic() + timeout, timeout)
        c = self.counters
        c["messages"] += 1
        c["bytes"] += s.size
        return s

    def _receive(self, deadline: float | None, timeout: float | None) -> Sample[T]:
        queue = self._queue
        while True:
            if self._closed:
                raise ClosedError(f"the subscriber of {self.topic!r} is closed")
            if queue:
                return queue.popleft()
            rings = self._rings
            for link in rings:
                if link.leaky and not link.done:
                    self.counters["drops"] += link.rx.take_missed()
            for link in rings:
                s = link.try_sample(self)
                if s is not None:
                    return s
            if rings:
                if len(rings) == 1:
                    rx = rings[0].rx
                    ready = lambda: queue or rx.readable()  # noqa: E731
                else:
                    ready = lambda: queue or any(r.rx.readable() for r in rings)  # noqa: E731
                if self._spin.poll(ready):
                    continue  # (a publisher that answers within the poll's budget is read without a sleep)
            sleeping = []
            for link in rings:
                if link.done:
                    continue
                if not link.rx.prepare_sleep():
                    break
                sleeping.append(link)
            else:
                left = RECHECK if deadline is None else min(RECHECK, deadline - time.monotonic())
                if left > 0 and not queue:
                    owner: dict[int, ShmLink] = {fd: link for link in sleeping for fd in link.rx.fds()}
                    events, slept = self._poller.wait((self._efd, *owner), left)
                    for link in sleeping:
                        link.rx.woke()
                    if slept < LEARN_SLEEP:  # woken soon: poll about that long next time
                        self._spin.slept(slept, any(r.rx.readable() for r in rings))
                    for fd, _ in events:
                        if fd == self._efd:
                            try:
                                _eventfd_read(self._efd)
                            except OSError:
                                pass
                        elif fd in owner:
                            owner[fd].rx.on_event(fd)
                    continue
                for link in sleeping:
                    link.rx.woke()
                if left <= 0 and not queue:
                    raise TimeoutError(f"no message on {self.topic!r} within {(timeout or 0) * 1000:.0f} ms")
                continue
            for link in sleeping:  # one had something after all
                link.rx.woke()

    def __iter__(self) -> Iterator[Sample[T]]:
        while True:
            if self._last is not None:
                self._last.release()
                self._last = None
            try:
                s = self.receive()
            except ClosedError:
                return
            self._last = s
            yield s

    def close(self) -> None:
        """Leaves the graph and every link; queued samples are released. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            links = list(self._links.values())
            self._links.clear()
        self._node._subscribers.pop(self.id, None)
        try:
            self._node.graph.request("port.remove", {"id": self.id})
        except PlexusError:
            pass
        self._rings = []
        self._wake()
        for link in links:
            link.close()
        while self._queue:
            self._queue.popleft().release()

    def __enter__(self) -> Subscriber[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

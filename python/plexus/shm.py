"""Shared memory between processes (docs/protocol.md §2): a sender that creates a ring and lets
readers join it, and a receiver that attaches to a ring in another process of this host, with
eventfd wake-ups handed over the sender's Unix socket (``SCM_RIGHTS``).
"""
from __future__ import annotations

import errno
import mmap
import os
import secrets
import select
import socket
import struct
import threading
import time
from typing import Callable, Final

from . import net
from .errors import ClosedError, NoSpaceError, PeerDeadError, PlexusError, ProtocolError, SystemError, TimeoutError
from .ring import AdaptivePoll, RingReader, RingWriter, init_ring, ring_size

JOIN_MAGIC: Final = 0x314A5850
ACCEPT_MAGIC: Final = 0x31415850
RECHECK: Final = 0.25
# os.eventfd and friends (Linux, Python 3.10+), looked up so that older type stubs accept them
_eventfd: Callable[[int, int], int] = getattr(os, "eventfd")
_eventfd_read: Callable[[int], int] = getattr(os, "eventfd_read")
_eventfd_write: Callable[[int, int], None] = getattr(os, "eventfd_write")
EFD_FLAGS: Final[int] = getattr(os, "EFD_NONBLOCK") | getattr(os, "EFD_CLOEXEC")


def join_message(slot: int, state_word: int, pid: int) -> bytes:
    """The reader's join message (§2)."""
    return struct.pack("<IIiI", JOIN_MAGIC, slot, state_word, pid)


def answer_message(status: int) -> bytes:
    """The writer's answer (§2): 0 joined, 1 refused."""
    return struct.pack("<II", ACCEPT_MAGIC, status)


def open_segment(name: str) -> tuple[mmap.mmap, int]:
    """Maps the POSIX shared-memory segment ``name`` (``/plexus-…``) read-write."""
    if not name.startswith("/") or "/" in name[1:]:
        raise ProtocolError(f"not a shared-memory segment name: {name!r}")
    try:
        fd = os.open(f"/dev/shm{name}", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise PeerDeadError(f"no shm sender at {name}") from err
    except OSError as err:
        raise SystemError(f"cannot open the shared memory {name}: {err.strerror}", errno=err.errno) from err
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE), size
    finally:
        os.close(fd)


class Poller:
    """A ``select.poll`` for readability, kept while the descriptors it watches stay the same
    (no poll object and registrations per sleep)."""

    __slots__ = ("_poll", "_key")

    def __init__(self) -> None:
        self._poll = select.poll()
        self._key: tuple[int, ...] = ()

    def wait(self, fds: tuple[int, ...], seconds: float) -> tuple[list[tuple[int, int]], float]:
        """Waits until one of ``fds`` is readable, at most ``seconds``: (the events, seconds slept)."""
        if fds != self._key:
            self._poll = select.poll()
            for fd in fds:
                self._poll.register(fd, select.POLLIN)
            self._key = fds
        started = time.perf_counter()
        events = self._poll.poll(seconds * 1000)
        return events, time.perf_counter() - started


class ShmReceiver:
    """A reader of a ring in another process: ``receive()`` gives (sequence, payload view, token)."""

    def __init__(self, name: str, sock_name: str, *, policy: str = "block", timeout: float = 5.0) -> None:
        self.name = name
        self.writable = False  # views of frames are read-only, but for an in-place server's requests (§6.1)
        self.mm, size = open_segment(name)
        self.reader = RingReader(self.mm, size, policy, os.getpid())
        self.spin = AdaptivePoll()  # the waits of the thread that reads this ring (one at a time)
        self._rw = memoryview(self.mm)  # payload views are slices of this (read-only ones of _ro)
        self._ro = self._rw.toreadonly()
        self.efd = _eventfd(0, EFD_FLAGS)
        self.lock = threading.Lock()
        self._poller = Poller()
        self.dead: PlexusError | None = None
        self.closed = False
        self.sock_done = False
        self.writer_fd = -1
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(sock_name)
            except OSError as err:
                raise PeerDeadError(f"the shm sender of {name} does not answer") from err
            socket.send_fds(self.sock, [join_message(self.reader.slot, self.reader.state_word, os.getpid())], [self.efd])
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 64, 4)
            except socket.timeout as err:
                raise TimeoutError(f"the shm sender of {name} did not answer within {timeout * 1000:.0f} ms") from err
            if not data:
                raise PeerDeadError(f"the shm sender of {name} closed during the handshake")
            if len(data) != 8 or len(fds) != 1 or struct.unpack_from("<I", data)[0] != ACCEPT_MAGIC:
                for f in fds:
                    os.close(f)
                raise ProtocolError("malformed answer from the shm sender")
            if struct.unpack_from("<I", data, 4)[0] != 0:
                os.close(fds[0])
                raise ProtocolError(f"the shm sender refused slot {self.reader.slot}")
            self.writer_fd = fds[0]
            self.sock.settimeout(None)
            self.sock.setblocking(False)
        except BaseException:
            self._teardown()
            raise
        self._wake_writer(self.reader.writer_wants_wake())  # §1.5: wake the writer if it sleeps

    def _wake_writer(self, due: bool) -> None:
        if due and self.writer_fd >= 0:
            try:
                _eventfd_write(self.writer_fd, 1)
            except OSError:
                pass

    def try_receive(self) -> tuple[int, memoryview, int] | None:
        """The next frame if one is committed: (sequence, a read-only view of its payload, token).

        None when there is none now (see :attr:`ended`); the writer's death, once everything it
        committed was read, raises PeerDeadError.
        """
        with self.lock:  # (the view is sliced under the lock: close() releases the mapping's views)
            if self.closed:
                raise ClosedError(f"the receiver of {self.name} is closed")
            got = self.reader.try_read()
            if got is not None:
                token, seq, at, length = got
                return seq, (self._rw if self.writable else self._ro)[at:at + length], token
        if self.dead is not None:
            raise self.dead
        return None

    @property
    def ended(self) -> bool:
        """The writer closed gracefully and everything it committed was read."""
        return self.reader.writer_closed and not self.reader.readable()

    def readable(self) -> bool:
        """A frame is committed and not taken (a cheap poll; False once closed)."""
        return not self.closed and self.reader.readable()

    def prepare_sleep(self) -> bool:
        """Raises the slot's sleeping flag; False (lowered again) if there is something to read."""
        with self.lock:
            return not self.closed and self.reader.prepare_sleep()

    def woke(self) -> None:
        """Lowers the sleeping flag after a sleep."""
        with self.lock:
            if not self.closed:
                self.reader.woke()

    def fds(self) -> tuple[int, ...]:
        """What a sleeper polls for readability: this reader's eventfd and the writer's socket."""
        return (self.efd,) if self.sock_done else (self.efd, self.sock.fileno())

    def on_event(self, fd: int) -> None:
        """Handles a poll event on one of :meth:`fds` (drains the eventfd, or sees the writer's end)."""
        with self.lock:
            if self.closed:
                return
            if fd == self.efd:
                try:
                    _eventfd_read(self.efd)
                except BlockingIOError:
                    pass
            elif fd == self.sock.fileno():
                self._check_socket()

    def receive(self, timeout: float | None = None) -> tuple[int, memoryview, int] | None:
        """The next frame, waiting for it: (sequence, view, token); None at the writer's graceful end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self.try_receive()
            if got is not None:
                return got
            if self.ended:
                return None
            if self.spin.poll(self.readable):
                continue
            if not self.prepare_sleep():
                continue
            left = RECHECK if deadline is None else min(RECHECK, deadline - time.monotonic())
            if left <= 0:
                self.woke()
                raise TimeoutError(f"nothing arrived from {self.name} within {(timeout or 0) * 1000:.0f} ms")
            self.sleep(left)

    def sleep(self, seconds: float) -> None:
        """Sleeps until the writer rings (or ends), at most ``seconds``, with the sleeping flag
        raised by :meth:`prepare_sleep`; lowers it and learns a poll budget from a short sleep."""
        events, slept = self._poller.wait(self.fds(), seconds)
        self.woke()
        for fd, _ in events:
            self.on_event(fd)
        self.spin.slept(slept, self.readable())

    def _check_socket(self) -> None:
        try:
            data = self.sock.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.dead = ProtocolError(f"the shm sender of {self.name} wrote after the handshake")
        elif not self.reader.writer_closed:
            self.dead = PeerDeadError(f"the shm sender of {self.name} died")
            try:
                os.unlink(f"/dev/shm{self.name}")
            except OSError:
                pass
        self.sock_done = True  # EOF stays readable: poll it no more

    def release(self, token: int) -> None:
        """Releases a frame (any thread, any order)."""
        with self.lock:
            if self.closed:
                return
            due = self.reader.release(token)
        self._wake_writer(due)

    def take_missed(self) -> int:
        """Messages the writer dropped for this reader since the last call."""
        with self.lock:
            return 0 if self.closed else self.reader.take_missed()

    def close(self) -> None:
        """Leaves the ring. Views still held keep the mapping alive (never a crash), but their
        bytes may be overwritten by later messages."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            due = self.reader.leave()
            self._wake_writer(due)
            self._teardown()

    def _teardown(self) -> None:
        if self.efd < 0 and self.sock.fileno() < 0:
            return
        for fd in (self.efd, self.writer_fd):
            if fd >= 0:
                os.close(fd)
        self.efd = self.writer_fd = -1
        self.sock.close()
        try:
            self.reader.a.release()
        except (AttributeError, BufferError):
            pass
        for v in (getattr(self, "_ro", None), getattr(self, "_rw", None)):
            if v is not None:
                v.release()  # (payload views sliced from them keep the mapping themselves)
        try:
            self.mm.close()
        except BufferError:
            pass  # views are still held: the mapping goes when the last one does


def sweep() -> int:
    """Unlinks the segments of processes that died (``/dev/shm/plexus-<pid>-*`` whose pid is gone)."""
    n = 0
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return 0
    for name in names:
        parts = name.split("-")
        if len(parts) < 3 or parts[0] != "plexus" or not parts[-2].isdigit():
            continue
        pid = int(parts[-2])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.unlink(f"/dev/shm/{name}")
                n += 1
            except OSError:
                pass
        except PermissionError:
            pass
    return n


_swept = False


class ShmSender:
    """A ring this process writes, in a shared-memory segment other processes of the host join
    (§2): it listens on an abstract Unix socket for their join messages and eventfds."""

    def __init__(self, *, capacity: int = 4 << 20, max_readers: int = 16, timeout: float = 5.0) -> None:
        global _swept
        if not _swept:
            _swept = True
            sweep()
        size = ring_size(capacity, max_readers)
        ident = f"plexus-{os.getpid()}-{secrets.token_hex(6)}"
        self.name = f"/{ident}"
        self.socket_name = f"\0{ident}"
        self.timeout = timeout
        try:
            fd = os.open(f"/dev/shm/{ident}", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise SystemError(f"cannot create shared memory: {err.strerror}", errno=err.errno) from err
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as err:
                os.unlink(f"/dev/shm/{ident}")
                cls = NoSpaceError if err.errno == errno.ENOSPC else SystemError
                raise cls(f"no room for a {size}-byte ring in shared memory: {err.strerror}", errno=err.errno) from err
            self.mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        init_ring(self.mm, capacity, max_readers, os.getpid())
        self.efd = _eventfd(0, EFD_FLAGS)
        self.doorbells: dict[int, int] = {}
        self.lock = threading.Lock()
        self.writer = RingWriter(self.mm, self._ring)
        self.spin = AdaptivePoll()  # waits for room (one writing thread at a time)
        self.closed = False
        self.waits = 0  # reserves that had to wait for room
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_name)
        self.listener.listen(64)
        net.serve_connections(self.listener, self._join, "plexus-shm-join")

    @property
    def receivers(self) -> int:
        """Readers joined now."""
        with self.lock:
            return len(self.doorbells)

    def _ring(self, slot: int) -> None:
        fd = self.doorbells.get(slot, -1)
        if fd >= 0:
            try:
                _eventfd_write(fd, 1)
            except OSError:
                pass

    def _join(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 64, 4)
        except OSError:
            conn.close()
            return
        ok = len(data) == 16 and len(fds) == 1 and struct.unpack_from("<I", data)[0] == JOIN_MAGIC
        if not ok:
            for f in fds:
                os.close(f)
            conn.close()
            return
        _magic, slot, state_word, _pid = struct.unpack("<IIiI", data)
        with self.lock:
            accepted = not self.closed and slot < self.writer.max_readers and self.writer.slot_state(slot) == state_word
            if accepted:
                old = self.doorbells.pop(slot, -1)
                if old >= 0:
                    os.close(old)
                self.doorbells[slot] = fds[0]
        if not accepted:
            os.close(fds[0])
        try:
            socket.send_fds(conn, [answer_message(0 if accepted else 1)], [self.efd])
        except OSError:
            accepted = False
        if not accepted:
            conn.close()
            return
        conn.settimeout(None)
        try:
            while conn.recv(64):
                pass  # nothing is sent after the join: bytes here end the reader too
        except OSError:
            pass
        conn.close()
        with self.lock:  # EOF is death (or a reader that left): free the slot, forget its doorbell
            if self.doorbells.get(slot) == fds[0]:
                del self.doorbells[slot]
                os.close(fds[0])
            if not self.closed:
                self.writer.evict(slot, state_word)
        self._interrupt()

    def _interrupt(self) -> None:
        """Wakes a ``reserve`` waiting for room (from any thread; nothing once closed)."""
        with self.lock:  # close() swaps the fd out under the lock: never a write to a reused number
            if self.efd >= 0:
                try:
                    _eventfd_write(self.efd, 1)
                except OSError:
                    pass

    def reserve(self, n: int, timeout: float | None = None) -> int:
        """Reserves room for ``n`` payload bytes (waits for ``block`` readers; TimeoutError)."""
        w = self.writer
        at = w.try_reserve(n)
        if at is not None:
            return at
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        self.waits += 1
        at = self.spin.poll(lambda: w.try_reserve(n))  # a reader about to release: poll first (adaptive)
        if at is not None:
            return int(at)
        poller = select.poll()
        poller.register(self.efd, select.POLLIN)
        while True:
            w.want_wake()
            at = w.try_reserve(n)
            if at is not None:
                return at
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"a subscriber released nothing within {wait * 1000:.0f} ms (policy block)")
            slept = time.perf_counter()
            woken = poller.poll(min(left, RECHECK) * 1000)
            self.spin.slept(time.perf_counter() - slept, bool(woken))
            if woken:
                try:
                    _eventfd_read(self.efd)
                except OSError:  # (closed meanwhile: the loop sees it)
                    pass
            w.epoch = -1  # re-scan: a reader may have left
            if self.closed:
                raise ClosedError("the shm sender is closed")

    def close(self) -> None:
        """Closes the ring (readers read what was committed, then the end) and unlinks it."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.writer.close()
            for fd in self.doorbells.values():
                os.close(fd)
            self.doorbells.clear()
            efd, self.efd = self.efd, -1
        self.listener.close()
        try:
            os.unlink(f"/dev/shm{self.name}")
        except OSError:
            pass
        os.close(efd)
        self.writer.a.release()
        self.writer.view.release()
        try:
            self.mm.close()
        except BufferError:
            pass

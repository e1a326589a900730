"""``asyncio`` forms of the blocking API: ``await plexus.aio.connect()``, ``async with``,
``async for``, and request handlers that are coroutines.

Each waiting call runs the blocking one in a worker thread (``asyncio.to_thread``), in slices
of at most 250 ms so that a cancelled task never leaves a thread waiting for long; a sample or
message that arrives for a task cancelled meanwhile is kept for the next call, not lost.
"""
from __future__ import annotations

import asyncio
import collections
import inspect
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, TypeVar

from . import codec, queue
from .errors import TimeoutError
from .node import Node
from .node import connect as _connect
from .pubsub import Publisher, Sample, Subscriber, Transport
from .queue import Mode, QueueMessage
from .rpc import Client, InPlaceResponse, Server
from .tcp import Policy

T = TypeVar("T")
SLICE = 0.25


async def _sliced(call: Callable[[float], T], timeout: float | None, keep: Callable[[T], None], what: str) -> T:
    """Runs ``call(slice)`` in a thread until it returns, at most ``timeout`` s (None: no limit).

    A result that arrives after the awaiting task was cancelled goes to ``keep``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE if deadline is None else min(SLICE, deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError(f"{what} within {(timeout or 0) * 1000:.0f} ms")
        task = asyncio.ensure_future(asyncio.to_thread(call, left))
        try:
            return await asyncio.shield(task)
        except TimeoutError:
            continue
        except asyncio.CancelledError:
            def rescue(t: asyncio.Future[T]) -> None:
                if not t.cancelled() and t.exception() is None:
                    keep(t.result())
            task.add_done_callback(rescue)
            raise


class AsyncSubscriber(Generic[T]):
    """A :class:`plexus.Subscriber` for ``asyncio``: ``await receive()``, ``async for``."""

    def __init__(self, sub: Subscriber[T]) -> None:
        self.sync = sub
        self._last: Sample[T] | None = None

    async def receive(self, timeout: float | None = None) -> Sample[T]:
        """The next sample (TimeoutError after ``timeout`` s)."""
        return await _sliced(self.sync.receive, timeout, self.sync._queue.appendleft, f"no message on {self.sync.topic!r}")

    def __aiter__(self) -> AsyncIterator[Sample[T]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Sample[T]]:
        from .errors import ClosedError

        while True:
            if self._last is not None:
                self._last.release()
                self._last = None
            try:
                s = await self.receive()
            except ClosedError:
                return
            self._last = s
            yield s

    async def close(self) -> None:
        """Leaves the graph and every link."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncSubscriber[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncPublisher(Generic[T]):
    """A :class:`plexus.Publisher` for ``asyncio``."""

    def __init__(self, pub: Publisher[T]) -> None:
        self.sync = pub

    async def publish(self, value: T, timeout: float | None = None) -> int:
        """Publishes ``value`` (waits in a thread only when a ``block`` subscriber is full)."""
        return await asyncio.to_thread(self.sync.publish, value, timeout)

    async def wait_for_subscribers(self, n: int = 1, timeout: float = 10.0) -> None:
        """Waits until ``n`` subscribers are linked."""
        deadline = time.monotonic() + timeout
        while self.sync.subscribers < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} subscriber(s) of {self.sync.topic!r} did not link within {timeout * 1000:.0f} ms")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Leaves the graph."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncPublisher[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncClient(Generic[T]):
    """A request/response :class:`plexus.rpc.Client` for ``asyncio``; many requests may be in flight."""

    def __init__(self, client: Client[Any, T]) -> None:
        self.sync = client

    async def request(self, value: object, timeout: float = 5.0) -> T:
        """Sends ``value`` and waits for the answer (the blocking call's errors)."""
        result: T = await asyncio.to_thread(self.sync.request, value, timeout)
        return result

    async def request_in_place(self, data: bytes | bytearray | memoryview | int, fill: Callable[[memoryview], None] | None = None,
                               timeout: float = 5.0) -> InPlaceResponse:
        """:meth:`plexus.rpc.Client.request_in_place` (``fill`` runs in a worker thread). An answer
        that arrives for a cancelled call is released at once: it would pin the request ring."""
        fut = asyncio.get_running_loop().run_in_executor(None, lambda: self.sync.request_in_place(data, fill, timeout))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            def drop(f: asyncio.Future[InPlaceResponse]) -> None:
                if not f.cancelled() and f.exception() is None:
                    f.result().release()

            fut.add_done_callback(drop)
            raise

    async def close(self) -> None:
        """Leaves the graph."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncClient[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncServer:
    """A request/response server whose handler may be a coroutine function (run on the event
    loop the server was made on)."""

    def __init__(self, server: Server) -> None:
        self.sync = server

    async def close(self) -> None:
        """Leaves the graph, finishes the requests it holds."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncNode:
    """A :class:`plexus.Node` for ``asyncio``: made by :func:`connect`."""

    def __init__(self, node: Node) -> None:
        self.sync = node

    async def publisher(self, topic: str, **opts: Any) -> AsyncPublisher[Any]:
        """A publisher on ``topic`` (the options of :meth:`plexus.Node.publisher`)."""
        return AsyncPublisher(await asyncio.to_thread(lambda: self.sync.publisher(topic, **opts)))

    async def subscriber(self, topic: str, *, backpressure: Policy = "block", transport: Transport | None = None,
                         arrays: codec.ArrayMode | None = None) -> AsyncSubscriber[Any]:
        """A subscriber of ``topic``."""
        return AsyncSubscriber(await asyncio.to_thread(lambda: self.sync.subscriber(topic, backpressure=backpressure, transport=transport, arrays=arrays)))

    async def server(self, service: str, handler: Callable[[Any], Any | Awaitable[Any]], *, max_concurrent: int = 16) -> AsyncServer:
        """A server of ``service``; ``handler`` may be a plain function or a coroutine function."""
        loop = asyncio.get_running_loop()

        def call(request: Any) -> Any:
            result = handler(request)
            if inspect.isawaitable(result):
                async def wait() -> Any:
                    return await result
                return asyncio.run_coroutine_threadsafe(wait(), loop).result()
            return result

        # (inline=False: coroutine handlers of one connection run concurrently, each on a pool thread's wait)
        return AsyncServer(await asyncio.to_thread(lambda: self.sync.server(service, call, max_concurrent=max_concurrent, inline=False)))

    async def client(self, service: str, *, arrays: codec.ArrayMode | None = None) -> AsyncClient[Any]:
        """A client of ``service``."""
        return AsyncClient(await asyncio.to_thread(lambda: self.sync.client(service, arrays=arrays)))

    async def connect(self, source: str, target: str, persistent: bool = False) -> None:
        """Adds the topic edge ``source -> target``."""
        await asyncio.to_thread(self.sync.connect, source, target, persistent)

    async def close(self) -> None:
        """Closes every port, then leaves the graph."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncNode:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(address: str | None = None, **opts: Any) -> AsyncNode:
    """Joins the GraphServer (the options of :func:`plexus.connect`)."""
    return AsyncNode(await asyncio.to_thread(lambda: _connect(address, **opts)))


class AsyncQueueEndpoint:
    """A queue client or server for ``asyncio``: ``await put(...)``, ``await get()``, ``async for``."""

    def __init__(self, endpoint: queue.QueueClient | queue.QueueServer) -> None:
        self.sync = endpoint
        self._kept: collections.deque[QueueMessage[Any]] = collections.deque()

    async def put(self, value: object, *peers: str, timeout: float = 30.0) -> None:
        """Puts ``value`` (a server: to ``peers``, none named: every client) and waits for the acknowledgement(s)."""
        sync = self.sync
        if isinstance(sync, queue.QueueServer):
            server: queue.QueueServer = sync
            await asyncio.to_thread(lambda: server.put(value, *peers, timeout=timeout))
        else:
            await asyncio.to_thread(sync.put, value, timeout)

    async def get(self, timeout: float | None = None) -> QueueMessage[Any]:
        """The next message."""
        if self._kept:
            return self._kept.popleft()
        return await _sliced(self.sync.get, timeout, self._kept.append, "no queue message")

    def __aiter__(self) -> AsyncIterator[QueueMessage[Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[QueueMessage[Any]]:
        from .errors import ClosedError, PeerDeadError

        last: QueueMessage[Any] | None = None
        while True:
            if last is not None:
                last.release()
            try:
                last = await self.get()
            except (ClosedError, PeerDeadError):
                return
            yield last

    async def close(self) -> None:
        """Closes the endpoint."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncQueueEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def queue_server(url: str = "tcp://127.0.0.1:0", *, mode: Mode = "fast", **opts: Any) -> AsyncQueueEndpoint:
    """A queue server for ``asyncio`` (the options of :func:`plexus.queue.server`)."""
    return AsyncQueueEndpoint(await asyncio.to_thread(lambda: queue.server(url, mode=mode, **opts)))


async def queue_client(url: str, *, mode: Mode = "fast", **opts: Any) -> AsyncQueueEndpoint:
    """A queue client for ``asyncio`` (the options of :func:`plexus.queue.client`)."""
    return AsyncQueueEndpoint(await asyncio.to_thread(lambda: queue.client(url, mode=mode, **opts)))

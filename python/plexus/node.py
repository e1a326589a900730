"""``connect()`` and :class:`Node`: a Python process's membership of the graph, and the factory
of its ports.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from . import codec
from .errors import PlexusError
from .graph import GraphClient, identity
from .pubsub import Publisher, Subscriber, Transport
from .tcp import Policy

if TYPE_CHECKING:
    from .rpc import Client, Server

T = TypeVar("T")
R = TypeVar("R")


class Node:
    """A participant of the graph: makes publishers, subscribers, servers and clients, and
    closes them with itself."""

    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph
        self.identity: dict[str, Any] = identity()
        self._subscribers: dict[str, Subscriber[Any]] = {}
        self._clients: dict[str, Client[Any, Any]] = {}
        self._ports: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        graph.on_notify = self._on_notify
        graph.on_servers = self._on_servers
        self._last_report = ""
        threading.Thread(target=self._report, daemon=True, name="plexus-stats").start()

    @property
    def id(self) -> str:
        """This node's id in the graph."""
        return self.graph.node

    def publisher(self, topic: str, *, capacity: int = 4 << 20, timeout: float = 5.0, transport: Transport | None = None,
                  host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None, allow_insecure: bool = False) -> Publisher[Any]:
        """A publisher on ``topic``: a shared-memory ring for subscribers of this host, TCP for the others
        (``transport`` offers only one). The TCP endpoint listens on ``host:port``, with TLS given a
        server context ``tls``; plain TCP off loopback needs ``allow_insecure``."""
        p: Publisher[Any] = Publisher(self, topic, capacity=capacity, timeout=timeout, transport=transport,
                                      host=host, port=port, tls=tls, allow_insecure=allow_insecure)
        self._ports.append(p)
        return p

    def subscriber(self, topic: str, *, backpressure: Policy = "block", transport: Transport | None = None,
                   arrays: codec.ArrayMode | None = None, tls: ssl.SSLContext | None = None) -> Subscriber[Any]:
        """A subscriber of ``topic``: shared memory from publishers of this host, else TCP (``tls``:
        the context for publishers that serve TLS)."""
        s: Subscriber[Any] = Subscriber(self, topic, backpressure=backpressure, transport=transport, arrays=arrays, tls=tls)
        self._ports.append(s)
        return s

    def server(self, service: str, handler: Callable[[Any], Any], *, max_concurrent: int = 16, inline: bool = True,
               host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None, allow_insecure: bool = False,
               in_place: bool = False) -> Server:
        """A request/response server of ``service``: ``handler(request)`` returns the answer
        (``inline``: see :class:`plexus.rpc.Server`). Its TCP endpoint listens on ``host:port``,
        with TLS given a server context ``tls``; plain TCP off loopback needs ``allow_insecure``.
        ``in_place``: an in-place service (docs/rpc.md): ``handler(view)`` gets the request's bytes
        as a writable memoryview and answers with it or a slice of it (or None: all of it)."""
        from .rpc import Server

        s = Server(self, service, handler, max_concurrent=max_concurrent, inline=inline, host=host, port=port, tls=tls,
                   allow_insecure=allow_insecure, in_place=in_place)
        self._ports.append(s)
        return s

    def client(self, service: str, *, arrays: codec.ArrayMode | None = None, transport: Transport | None = None,
               tls: ssl.SSLContext | None = None) -> Client[Any, Any]:
        """A client of ``service``: shared memory to servers of this host that offer it, else TCP
        (``transport`` uses only one)."""
        from .rpc import Client

        c: Client[Any, Any] = Client(self, service, arrays=arrays, transport=transport, tls=tls)
        self._ports.append(c)
        return c

    def connect(self, source: str, target: str, persistent: bool = False) -> None:
        """Adds the topic edge ``source -> target`` (CycleError if it closes a cycle)."""
        self.graph.request("edge.add", {"from": source, "to": target, "persistent": persistent})

    def disconnect(self, source: str, target: str) -> None:
        """Removes the topic edge ``source -> target``."""
        self.graph.request("edge.remove", {"from": source, "to": target})

    def snapshot(self) -> dict[str, Any]:
        """The GraphServer's snapshot: nodes, topics, ports, edges, services."""
        result: dict[str, Any] = self.graph.request("snapshot")
        return result

    def stats(self) -> dict[str, list[dict[str, Any]]]:
        """The counters of every port of this node (what it reports to the GraphServer)."""
        from .rpc import Client, Server

        ports = list(self._ports)
        return {
            "publishers": [{"id": p.id, **p.counters} for p in ports if isinstance(p, Publisher)],
            "subscribers": [{"id": s.id, **s.counters, "links": s.links} for s in ports if isinstance(s, Subscriber)],
            "servers": [{"id": s.id, **s.counters, "inFlight": s.in_flight} for s in ports if isinstance(s, Server)],
            "clients": [{"id": c.id, **c.counters, "inFlight": c.in_flight, "links": c.links} for c in ports if isinstance(c, Client)],
        }

    def _report(self) -> None:
        """Every 500 ms, the ports' counters to the GraphServer when they changed (§3 stats.report)."""
        while not self._closed:
            time.sleep(0.5)
            if self._closed or not self._ports:
                continue
            report = self.stats()
            text = json.dumps(report, sort_keys=True)
            if text != self._last_report:
                self._last_report = text
                self.graph.send("stats.report", report)

    def _forget(self, port: object) -> None:
        if port in self._ports:
            self._ports.remove(port)

    def _on_notify(self, subscriber: str, publishers: list[dict[str, Any]]) -> None:
        s = self._subscribers.get(subscriber)
        if s is not None:
            s.update(publishers)

    def _on_servers(self, client: str, servers: list[dict[str, Any]]) -> None:
        c = self._clients.get(client)
        if c is not None:
            c.update(servers)

    def close(self) -> None:
        """Closes every port, then leaves the graph. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for p in list(reversed(self._ports)):
            try:
                p.close()
            except PlexusError:
                pass
        self._ports.clear()
        self.graph.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str | None = None, *, name: str | None = None, token: str | None = None, timeout: float = 5.0,
            tls: ssl.SSLContext | None = None) -> Node:
    """Joins the GraphServer at ``address`` (default ``PLEXUS_GRAPH``, else 127.0.0.1:25978)."""
    return Node(GraphClient.connect(address, name=name, token=token, timeout=timeout, tls=tls))

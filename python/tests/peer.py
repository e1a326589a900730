"""A Python peer for the cross-process tests of test/python-interop.test.ts (not a pytest file).

``python peer.py '<json>'`` joins the GraphServer of ``PLEXUS_GRAPH`` and plays the role the
JSON names, writing one JSON line per event on stdout ("ready" once it can be talked to).
"""
from __future__ import annotations

import datetime
import json
import ssl
import sys
import threading
import time
from typing import Any, Callable

import numpy as np

import plexus
from plexus import codec, pubsub


_SAY = threading.Lock()


def say(obj: object) -> None:
    """One JSON line on stdout, whole (threads say things at once)."""
    with _SAY:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def describe(v: object) -> object:
    """A JSON description of a received value: arrays by dtype and content."""
    if isinstance(v, np.ndarray):
        return {"dtype": str(v.dtype), "values": v.tolist(), "writeable": bool(v.flags.writeable)}
    if isinstance(v, memoryview):
        return {"memoryview": v.format, "values": v.tolist()}
    if isinstance(v, dict):
        return {str(k): describe(x) for k, x in v.items()}
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [describe(x) for x in v]
    return v


def in_mapping(sub: plexus.Subscriber[Any], arr: np.ndarray) -> bool:
    """True if ``arr``'s memory lies inside the shared-memory ring of one of ``sub``'s links."""
    addr = arr.__array_interface__["data"][0]
    for link in sub._links.values():
        rx = getattr(link, "rx", None)
        reader = getattr(rx, "reader", None)
        if reader is not None and reader.a.base <= addr < reader.a.base + len(rx.mm):  # type: ignore[union-attr]
            return True
    return False


def tls_context(a: dict[str, Any]) -> ssl.SSLContext | None:
    """A client context trusting the test's authority (``cafile``), if the test gives one (with a
    client certificate: ``clientcert``, ``clientkey``)."""
    if not a.get("cafile"):
        return None
    ctx = ssl.create_default_context(cafile=a["cafile"])
    if a.get("clientcert"):  # this end's certificate, for servers that require one
        ctx.load_cert_chain(a["clientcert"], a["clientkey"])
    return ctx


def server_tls(a: dict[str, Any]) -> ssl.SSLContext | None:
    """A server context with the test's certificate (``certfile``, ``keyfile``), if the test gives one."""
    if not a.get("certfile"):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a["certfile"], a["keyfile"])
    if a.get("clientca"):  # only clients with a certificate from this authority (Node's requestCert + ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a["clientca"])
    return ctx


def subscribe(node: plexus.Node, a: dict[str, Any]) -> None:
    with node.subscriber(a["topic"], transport=a.get("transport"), tls=tls_context(a)) as sub:
        say("ready")
        if a.get("hold"):  # takes messages and never releases them (until killed)
            held = []
            while True:
                s = sub.receive()
                held.append(s)
                say({"sequence": s.sequence, "value": {"n": s.value["n"]}})
        for i, s in enumerate(sub):
            arr = s.value.get("v") if isinstance(s.value, dict) else None
            say({"sequence": s.sequence, "value": describe(s.value), "links": sub.links,
                 "inShm": in_mapping(sub, arr) if isinstance(arr, np.ndarray) else None})
            if i + 1 == a["count"]:
                break


def publish(node: plexus.Node, a: dict[str, Any]) -> None:
    with node.publisher(a["topic"], transport=a.get("transport"), tls=server_tls(a)) as pub:
        say("ready")
        pub.wait_for_subscribers(1)
        if a.get("malformed"):  # a message whose codec frame is garbage, then a good one
            bad = pubsub.message_header(1) + b"PLXF\x01\x02\x00\x00garbage!"
            if pub._shm is not None:
                at = pub._shm.reserve(len(bad))
                pub._shm.writer.view[at:at + len(bad)] = bad
                pub._shm.writer.commit(len(bad))
            if pub._tcp is not None:
                pub._tcp.send([bad], len(bad))
            pub._seq += 1
        if a.get("loan"):  # bytes written in place, in the ring over shm
            for i in range(a["count"]):
                loan = pub.loan(64)
                loan.bytes[:] = bytes([i]) * 64
                loan.commit(16 + i)
            say("published")
            sys.stdin.readline()
            return
        for i in range(a["count"]):
            pub.publish({"i": i, "v": np.arange(4, dtype=np.float64) * i + 0.5, "n": np.arange(3, dtype=np.int32) - i,
                         "b": bytes([i, 255]), "big": 2**40 + i, "text": "héllo"})
        say("published")
        sys.stdin.readline()  # stays until the test closes stdin


class AppError(Exception):
    code = "E_PY_APP"


def handler(v: Any) -> Any:
    if isinstance(v, dict) and v.get("fail"):
        raise AppError("the Python handler refused")
    if isinstance(v, dict) and v.get("sleep"):
        time.sleep(v["sleep"])
    if isinstance(v, dict) and isinstance(v.get("v"), np.ndarray):
        return {"sum": float(v["v"].sum()), "twice": v["v"] * 2, "dtype": str(v["v"].dtype)}
    return {"echo": v}


def serve(node: plexus.Node, a: dict[str, Any]) -> None:
    with node.server(a["service"], handler, tls=server_tls(a)):
        say("ready")
        sys.stdin.readline()


def serve_in_place(node: plexus.Node, a: dict[str, Any]) -> None:
    """An in-place service: inverts the request's bytes where they are and answers all but the
    first and last; a request starting with 0xFF is answered with bytes of its own (refused)."""
    def invert(view: memoryview) -> object:
        if view.nbytes and view[0] == 0xFF:
            return bytearray(b"elsewhere")
        arr = np.frombuffer(view, dtype=np.uint8)
        np.invert(arr, out=arr)
        return view[1:-1] if view.nbytes >= 2 else None

    with node.server(a["service"], invert, in_place=True):
        say("ready")
        sys.stdin.readline()


def call(node: plexus.Node, a: dict[str, Any]) -> None:
    with node.client(a["service"], transport=a.get("transport"), tls=tls_context(a)) as cli:
        deadline = time.monotonic() + (10 if a.get("wait", True) else 0)
        while cli.servers == 0 and not cli.link_errors and time.monotonic() < deadline:
            time.sleep(0.01)
        if cli.servers:
            say({"links": [link["transport"] for link in cli.links]})
        for err in cli.link_errors.values():
            say({"linkError": type(err).__name__, "code": err.code, "message": err.message})
        for req in a["requests"]:
            value = {k: (np.array(x, dtype=np.float64) if k == "v" else x) for k, x in req.items()}
            try:
                say({"ok": describe(cli.request(value, timeout=5.0))})
            except plexus.RemoteError as err:
                say({"error": type(err).__name__, "code": err.code, "remoteCode": err.remote_code, "remoteName": err.remote_name, "message": err.message})
            except plexus.PlexusError as err:
                say({"error": type(err).__name__, "code": err.code, "message": err.message})


def call_threads(node: plexus.Node, a: dict[str, Any]) -> None:
    """Many threads calling at once, each checking that it gets its own answers."""
    import threading

    with node.client(a["service"], transport=a.get("transport")) as cli:
        deadline = time.monotonic() + 10
        while cli.servers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        wrong: list[object] = []

        def worker(k: int) -> None:
            for i in range(a["each"]):
                answer = cli.request({"k": k, "i": i}, timeout=10)
                if answer != {"got": {"k": k, "i": i}}:
                    wrong.append(answer)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(a["threads"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        say({"links": [link["transport"] for link in cli.links], "wrong": len(wrong), "requests": cli.counters["requests"]})


def malformed_call(node: plexus.Node, a: dict[str, Any]) -> None:
    """A request whose codec frame is garbage, on the wire of a Node server; then a good one."""
    from plexus import net, rpc

    servers = node.graph.request("client.add", {"service": a["service"]})["servers"]
    tcp = servers[0]["endpoints"]["tcp"]
    fs = net.FrameSocket(net.dial(tcp["host"], tcp["port"], 5, "server"), 1 << 20, "the server")
    net.handshake(fs, rpc.RPC, net.hello(rpc.RPC, 1000), "the server", 5)
    garbage = b"PLXF\x01\x02\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00"
    fs.send(net.HEADER.pack(len(garbage), rpc.T_REQUEST, 0, 0, 7, 0) + garbage)
    fs.sendv(rpc.message(rpc.T_REQUEST, 8, codec.plan({"after": True})))
    for _ in range(2):
        h, body = fs.read_frame()
        answer = rpc.remote_error(body) if h.type == rpc.T_ERROR else None
        say({"id": h.a, "type": h.type, "remoteCode": answer.remote_code if answer else None,
             "value": None if answer else describe(codec.decode(body))})
    fs.close()


def call_in_place(node: plexus.Node, a: dict[str, Any]) -> None:
    """Requests to a Node in-place service (it inverts the bytes and answers all but the first
    and last): answers in the request ring, the fill form, a held answer pinning its memory, the
    copy of ``request``, and threads with requests in flight at once."""
    import ctypes
    import threading

    from plexus import rpc

    def expect(req: bytes) -> list[int]:
        inv = [~b & 0xFF for b in req]
        return inv[1:-1] if len(inv) >= 2 else inv

    with node.client(a["service"], transport=a.get("transport")) as cli:
        deadline = time.monotonic() + 10
        while cli.servers == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        link = next(iter(cli._links.values()))
        ring = link.channel.tx.writer if link.channel is not None else None

        def in_ring(view: memoryview) -> bool:
            if ring is None:
                return False
            addr = ctypes.addressof(ctypes.c_char.from_buffer(view))
            return bool(ring.a.base <= addr < ring.a.base + len(ring.mm))

        r = cli.request_in_place(bytes(range(16)))
        say({"links": [x["transport"] for x in cli.links], "answer": list(r.bytes), "ok": list(r.bytes) == expect(bytes(range(16))),
             "inRing": in_ring(r.bytes), "writeable": not r.bytes.readonly})

        def fill(v: memoryview) -> None:
            v[:] = b"\x01" * len(v)

        with cli.request_in_place(8, fill) as f:
            say({"fill": list(f.bytes)})
        # r is held: its frame stays pinned while later requests go round the ring
        big = bytes([7]) * (300 << 10)
        copies = [cli.request(big) for _ in range(3)]
        blocked = None
        try:
            cli.request(big, timeout=0.5)
        except plexus.PlexusError as err:
            blocked = type(err).__name__
        held_intact = list(r.bytes) == expect(bytes(range(16)))
        r.release()
        after = cli.request(big, timeout=5)
        say({"copies": all(isinstance(c, bytes) and len(c) == len(big) - 2 and c[0] == 0xF8 for c in copies),
             "blocked": blocked if ring is not None else "not over shm", "heldIntact": held_intact, "after": len(after)})
        try:
            cli.request({"not": "bytes"})
        except plexus.InvalidArgumentError as err:
            say({"refused": err.code})
        wrong: list[object] = []

        def worker(k: int) -> None:
            for i in range(a.get("each", 50)):
                req = bytes([(k * 31 + i + j) & 0xFF for j in range(1 + (i * 97 + k) % 3000)])
                with cli.request_in_place(req, timeout=10) as ans:
                    if list(ans.bytes) != expect(req):
                        wrong.append((k, i))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        import asyncio

        from plexus import aio

        async def in_place_async() -> list[int]:
            with await aio.AsyncClient(cli).request_in_place(b"\x00\x10\x20") as ans:
                return list(ans.bytes)

        say({"wrong": len(wrong), "pins": len(ring.pins) if ring is not None else 0, "async": asyncio.run(in_place_async())})
        del rpc


ROLES: dict[str, Callable[[Any, dict[str, Any]], None]] = {"subscribe": subscribe, "publish": publish, "serve": serve, "call": call,
                                                          "call-threads": call_threads, "malformed-call": malformed_call,
                                                          "call-in-place": call_in_place, "serve-in-place": serve_in_place}



def queue_client(node: plexus.Node | None, a: dict[str, Any]) -> None:
    from plexus import queue

    with queue.client(a["url"], mode=a["mode"], tls=tls_context(a)) as cli:
        say({"id": cli.id})
        for i in range(a["puts"]):
            cli.put({"job": i, "v": np.arange(3, dtype=np.float64) + i}, timeout=10)
            say({"put": i})
        for _ in range(a["gets"]):
            with cli.get(10) as m:
                say({"got": describe(m.value), "peer": m.peer})


def queue_putter(node: plexus.Node | None, a: dict[str, Any]) -> None:
    """Puts ids 0..puts-1 from ``threads`` threads at once, each outcome on a line ("put" or the
    error's class and code), then the id -1 (after every outcome: the last of the session), the
    client's events and its final state."""
    import threading

    from plexus import queue

    events: list[object] = []
    with queue.client(a["url"], mode=a["mode"], reconnect_window=10.0) as cli:
        for e in ("disconnect", "reconnect", "session-lost"):
            cli.on(e, lambda arg, e=e: events.append([e, arg if isinstance(arg, dict) else type(arg).__name__]))  # type: ignore[misc]
        say("ready")
        ids = iter(range(a["puts"]))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    i = next(ids, None)
                if i is None:
                    return
                try:
                    cli.put({"id": i}, timeout=20)
                    say({"put": i})
                except plexus.PlexusError as err:
                    say({"failed": i, "error": type(err).__name__, "code": err.code})

        threads = [threading.Thread(target=work) for _ in range(a["threads"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cli.put({"id": -1}, timeout=20)
        say({"events": events, "state": cli.state})


def queue_server(node: plexus.Node | None, a: dict[str, Any]) -> None:
    from plexus import queue

    tls = server_tls(a)
    with queue.server("tls://127.0.0.1:0" if tls else "tcp://127.0.0.1:0", mode=a["mode"], tls=tls) as srv:
        say({"url": srv.url})
        for _ in range(a["gets"]):
            m = srv.get(10)
            say({"got": describe(m.value), "peer": m.peer})
            m.release()  # (reliable: the client's put returns now)
            srv.put({"reply": m.value["n"] * 2, "a": np.array([m.value["n"]], dtype=np.int16)}, m.peer, timeout=10)
        sys.stdin.readline()


def async_echo(node: plexus.Node | None, a: dict[str, Any]) -> None:
    """The asyncio forms: an async handler, and an ``async for`` that publishes every value back."""
    import asyncio

    from plexus import aio

    async def main() -> None:
        async with await aio.connect(name="python asyncio") as n:
            async def handler(v: Any) -> Any:
                await asyncio.sleep(0.01)
                return {"async": True, "n": v["n"] + 1}

            async with await n.server(a["service"], handler), await n.publisher(f"{a['topic']}/pong") as pong:
                async with await n.subscriber(f"{a['topic']}/ping") as ping:
                    say("ready")
                    count = 0
                    async for s in ping:
                        await pong.publish({"echo": s.value["i"], "v": s.value["v"] * 2})
                        count += 1
                        if count == a["count"]:
                            break
                    await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(main())


ROLES.update({"queue-client": queue_client, "queue-server": queue_server, "queue-putter": queue_putter, "async-echo": async_echo})


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    if args["role"].startswith("queue-") or args["role"] == "async-echo":  # (queues need no GraphServer; asyncio joins itself)
        ROLES[args["role"]](None, args)
    else:
        with plexus.connect(name=f"python {args['role']}") as n:
            ROLES[args["role"]](n, args)

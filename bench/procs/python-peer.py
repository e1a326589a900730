"""Peer of the "python" bench row (bench/cases/python.ts), run with the repository's virtual
environment. Usage: ``python-peer.py <mode> <json args>``; it writes ``ready`` on stdout when it
can be talked to, then answers each command line on stdin with one line.

- ``plexus-echo {address, topic}``: subscribes to ``<topic>/ping`` and publishes every value
  back on ``<topic>/pong`` (shared-memory rings, through the GraphServer at ``address``);
- ``plexus-rpc {address, service}``: a request/response server that answers every request
  with the request itself;
- ``zmq-echo {endpoint}``: binds a pyzmq PAIR socket and echoes every message;
- ``plexus-stream {address, topic, bytes}`` and ``zmq-stream {endpoint, bytes}``: on the
  command ``<count>``, publishes (pushes) ``count`` numpy arrays of ``bytes`` bytes back to back,
  then answers ``sent``.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import numpy as np

import plexus


def main() -> None:
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "plexus-echo":
        node = plexus.connect(args["address"])
        pong = node.publisher(f"{args['topic']}/pong", transport="shm")
        ping = node.subscriber(f"{args['topic']}/ping", transport="shm")

        def echo() -> None:
            for s in ping:
                pong.publish(s.value)

        threading.Thread(target=echo, daemon=True).start()
        ready(lambda line: None)
    elif mode == "plexus-rpc":
        node = plexus.connect(args["address"])
        node.server(args["service"], lambda v: v)  # echoes the request
        ready(lambda line: None)
    elif mode == "zmq-echo":
        import zmq

        sock = zmq.Context.instance().socket(zmq.PAIR)
        sock.bind(args["endpoint"])

        def zecho() -> None:
            while True:
                sock.send(sock.recv(copy=False), copy=False)

        threading.Thread(target=zecho, daemon=True).start()
        ready(lambda line: None)
    elif mode == "plexus-stream":
        node = plexus.connect(args["address"])
        pub = node.publisher(args["topic"], transport="shm", capacity=max(8 << 20, 4 * (args["bytes"] + 4096)))
        data = np.full(args["bytes"], 7, dtype=np.uint8)

        def stream(line: str) -> None:
            pub.wait_for_subscribers(1)
            for i in range(int(line)):
                pub.publish({"seq": i, "data": data})

        ready(stream)
    elif mode == "zmq-stream":
        import zmq

        push = zmq.Context.instance().socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 1000)
        push.bind(args["endpoint"])
        data = np.full(args["bytes"], 7, dtype=np.uint8)

        def zstream(line: str) -> None:
            for _ in range(int(line)):
                push.send(data, copy=args["bytes"] < 65536)

        ready(zstream)
    elif mode.startswith("pypy-"):
        python_to_python(mode, args)
    else:
        raise SystemExit(f"unknown mode {mode}")


# ---- Python <-> Python: Plexus against multiprocessing pipes, measured in this process ----------

def _echo_child(address: str, topic: str) -> None:
    node = plexus.connect(address)
    pong = node.publisher(f"{topic}/pong", transport="shm")
    with node.subscriber(f"{topic}/ping", transport="shm") as ping:
        for s in ping:
            pong.publish(s.value)


def _pipe_echo_child(conn: Any) -> None:
    while True:
        conn.send_bytes(conn.recv_bytes())


def _sink_child(address: str, topic: str, control: Any) -> None:
    node = plexus.connect(address)
    n = 0
    with node.subscriber(topic, transport="shm") as sub:
        control.send(n)
        while True:
            try:
                s = sub.receive(0.01)
            except plexus.TimeoutError:
                s = None
            if s is not None:
                int(s.value["data"][::64].sum())  # touches one byte per 64
                s.release()
                n += 1
            if control.poll():
                control.send((control.recv(), n))


def _pipe_sink_child(conn: Any, control: Any) -> None:
    n = 0
    buf = bytearray(64 << 20)
    while True:
        if conn.poll(0.01):
            k = conn.recv_bytes_into(buf)
            int(np.frombuffer(buf, dtype=np.uint8, count=k)[::64].sum())
            n += 1
        if control.poll():
            control.send((control.recv(), n))


def python_to_python(mode: str, args: dict[str, Any]) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    topic = f"bench/pypy/{mode}"
    if mode == "pypy-plexus-echo":
        node = plexus.connect(args["address"])
        ping = node.publisher(f"{topic}/ping", transport="shm")
        pong = node.subscriber(f"{topic}/pong", transport="shm")
        ctx.Process(target=_echo_child, args=(args["address"], topic), daemon=True).start()
        ping.wait_for_subscribers(1, timeout=30)
        while not pong.publishers:
            time.sleep(0.002)
        payload = memoryview(bytes(64))

        def rtt(count: int) -> list[float]:
            out = []
            for _ in range(count):
                t0 = time.perf_counter()
                ping.publish(payload)
                pong.receive(10).release()
                out.append((time.perf_counter() - t0) * 1e6)
            return out

        ready(lambda line: print(json.dumps(rtt(int(line))), flush=True))
    elif mode == "pypy-pipe-echo":
        here, there = ctx.Pipe()
        ctx.Process(target=_pipe_echo_child, args=(there,), daemon=True).start()
        payload = bytes(64)

        def prtt(count: int) -> list[float]:
            out = []
            for _ in range(count):
                t0 = time.perf_counter()
                here.send_bytes(payload)
                here.recv_bytes()
                out.append((time.perf_counter() - t0) * 1e6)
            return out

        ready(lambda line: print(json.dumps(prtt(int(line))), flush=True))
    elif mode == "pypy-plexus-stream":
        node = plexus.connect(args["address"])
        pub = node.publisher(topic, transport="shm", capacity=max(8 << 20, 4 * (args["bytes"] + 4096)))
        control, far = ctx.Pipe()
        ctx.Process(target=_sink_child, args=(args["address"], topic, far), daemon=True).start()
        control.recv()
        pub.wait_for_subscribers(1, timeout=30)
        data = np.full(args["bytes"], 7, dtype=np.uint8)
        total = 0

        def stream(count: int) -> float:
            nonlocal total
            t0 = time.perf_counter()
            for i in range(count):
                pub.publish({"seq": i, "data": data})
            total += count
            while True:  # until the child counted them all
                control.send(total)
                _, n = control.recv()
                if n >= total:
                    return time.perf_counter() - t0
                time.sleep(0.0005)

        ready(lambda line: print(json.dumps(stream(int(line))), flush=True))
    elif mode == "pypy-pipe-stream":
        here, there = ctx.Pipe()
        control, far = ctx.Pipe()
        ctx.Process(target=_pipe_sink_child, args=(there, far), daemon=True).start()
        data = np.full(args["bytes"], 7, dtype=np.uint8)
        sent = 0

        def pstream(count: int) -> float:
            nonlocal sent
            t0 = time.perf_counter()
            for _ in range(count):
                here.send_bytes(data)
            sent += count
            while True:
                control.send(sent)
                _, n = control.recv()
                if n >= sent:
                    return time.perf_counter() - t0
                time.sleep(0.0005)

        ready(lambda line: print(json.dumps(pstream(int(line))), flush=True))
    else:
        raise SystemExit(f"unknown mode {mode}")


def ready(command: "Callable[[str], None]") -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command(line.strip())
        print("sent", flush=True)  # (the Python <-> Python modes print their measurement first)


if __name__ == "__main__":
    from typing import Callable  # noqa: F401 - for the annotation above

    main()

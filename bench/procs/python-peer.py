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
    else:
        raise SystemExit(f"unknown mode {mode}")


def ready(command: "Callable[[str], None]") -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command(line.strip())
        print("sent", flush=True)


if __name__ == "__main__":
    from typing import Callable  # noqa: F401 - for the annotation above

    main()

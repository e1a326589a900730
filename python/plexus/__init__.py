"""Plexus for Python: a Python process as a member of a Plexus graph.

Publish and subscribe, call and serve, with the same wire and memory protocols as the
TypeScript library (docs/protocol.md, docs/codec.md); see docs/python.md.
"""
from __future__ import annotations

from . import queue
from .codec import decode, encode
from .errors import (
    AccessDeniedError,
    BackpressureError,
    ClosedError,
    CycleError,
    EncodeError,
    FrameTooLargeError,
    InvalidArgumentError,
    LinkWarning,
    NoServerError,
    NotFoundError,
    PeerDeadError,
    PlexusError,
    ProtocolError,
    RemoteError,
    ResourceExhaustedError,
    SequenceError,
    SystemError,
    TimeoutError,
)
from .node import Node, connect
from .pubsub import Publisher, Sample, Subscriber

__all__ = [
    "AccessDeniedError", "BackpressureError", "ClosedError", "CycleError", "EncodeError", "FrameTooLargeError",
    "InvalidArgumentError", "LinkWarning", "NoServerError", "Node", "NotFoundError", "PeerDeadError", "PlexusError",
    "ProtocolError", "Publisher", "RemoteError", "ResourceExhaustedError", "Sample", "SequenceError",
    "Subscriber", "SystemError", "TimeoutError", "connect", "decode", "encode", "queue",
]

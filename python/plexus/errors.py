"""Typed errors: the same classes and codes as the TypeScript library (docs/errors.md).

Every failure is a :class:`PlexusError` with a stable ``code``; errors that arrive over a
protocol (GraphServer responses, request/response error answers) are rebuilt as the class of
their code by :func:`error_from_wire`.
"""
from __future__ import annotations


class PlexusError(Exception):
    """Base of every Plexus error; ``code`` is stable (``ERR_PLEXUS_*``), the message is for people."""

    CODE = "ERR_PLEXUS"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else type(self).CODE


class TimeoutError(PlexusError):  # noqa: A001 - the library's name, as in TypeScript
    """A timeout passed before a blocking call completed."""

    CODE = "ERR_PLEXUS_TIMEOUT"


class AbortError(PlexusError):
    """The call was aborted."""

    CODE = "ERR_PLEXUS_ABORTED"


class ClosedError(PlexusError):
    """The handle was closed before or while the call waited."""

    CODE = "ERR_PLEXUS_CLOSED"


class PeerDeadError(PlexusError):
    """The peer process or connection died while needed."""

    CODE = "ERR_PLEXUS_PEER_DEAD"


class BackpressureError(PlexusError):
    """A receiver with policy ``fail`` had no room."""

    CODE = "ERR_PLEXUS_BACKPRESSURE"


class ResourceExhaustedError(PlexusError):
    """The server is full, or every reader slot of a ring is taken."""

    CODE = "ERR_PLEXUS_RESOURCE_EXHAUSTED"


class FrameTooLargeError(PlexusError):
    """A message larger than the ring, the frame format or a configured limit."""

    CODE = "ERR_PLEXUS_FRAME_TOO_LARGE"


class ProtocolError(PlexusError):
    """A peer or shared state broke the protocol (magic, version, sizes)."""

    CODE = "ERR_PLEXUS_PROTOCOL"


class SequenceError(PlexusError):
    """A sequence number that was not the expected one."""

    CODE = "ERR_PLEXUS_SEQUENCE"


class AccessDeniedError(PlexusError):
    """A wrong token, a refused certificate, plain TCP to a remote host."""

    CODE = "ERR_PLEXUS_ACCESS_DENIED"


class InvalidArgumentError(PlexusError):
    """An option or argument out of range or of the wrong type."""

    CODE = "ERR_PLEXUS_INVALID_ARGUMENT"


class SystemError(PlexusError):  # noqa: A001 - the library's name, as in TypeScript
    """A system call failed; ``errno`` is its error number when known."""

    CODE = "ERR_PLEXUS_SYSTEM"

    def __init__(self, message: str, code: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, code)
        self.errno = errno


class NoSpaceError(SystemError):
    """No room for shared memory."""

    CODE = "ERR_PLEXUS_NO_SPACE"


class EncodeError(PlexusError):
    """A value the codec cannot encode."""

    CODE = "ERR_PLEXUS_ENCODE"


class NoServerError(PlexusError):
    """A request found no server for its service."""

    CODE = "ERR_PLEXUS_NO_SERVER"


class RemoteError(PlexusError):
    """A remote handler raised: ``remote_code`` and ``remote_name`` are its error's."""

    CODE = "ERR_PLEXUS_REMOTE"

    def __init__(self, message: str, remote_code: str = "ERR_PLEXUS_HANDLER", remote_name: str = "Error") -> None:
        super().__init__(message)
        self.remote_code = remote_code
        self.remote_name = remote_name


class CycleError(PlexusError):
    """An edge would close a cycle in the topic graph."""

    CODE = "ERR_PLEXUS_CYCLE"


class NotFoundError(PlexusError):
    """A port, edge or node that does not exist."""

    CODE = "ERR_PLEXUS_NOT_FOUND"


_CLASSES: tuple[type[PlexusError], ...] = (
    TimeoutError, AbortError, ClosedError, PeerDeadError, BackpressureError, ResourceExhaustedError,
        FrameTooLargeError, ProtocolError, SequenceError, AccessDeniedError, InvalidArgumentError,
        SystemError, NoSpaceError, EncodeError, NoServerError, CycleError, NotFoundError,
)
_BY_CODE: dict[str, type[PlexusError]] = {c.CODE: c for c in _CLASSES}


def error_from_wire(code: object, message: object) -> PlexusError:
    """Rebuilds an error that came over a protocol as the class of its code.

    A code this side does not know becomes a :class:`PlexusError` keeping that code.
    """
    c = code if isinstance(code, str) and code else "ERR_PLEXUS"
    m = message if isinstance(message, str) else "error reported by the peer"
    cls = _BY_CODE.get(c)
    return cls(m) if cls is not None else PlexusError(m, c)


def error_to_wire(err: BaseException) -> tuple[str, str, str]:
    """What an error answer carries: ``(code, name, message)`` of what a handler raised."""
    if isinstance(err, PlexusError):
        return err.code, type(err).__name__, err.message
    code = getattr(err, "code", None)
    return (code if isinstance(code, str) else "ERR_PLEXUS_HANDLER"), type(err).__name__, str(err)


class LinkWarning(UserWarning):
    """A subscriber or client could not reach a publisher or server of the graph (Node's
    ``PLEXUS_LINK`` process warning); ``error`` is the typed error, also kept in the port's
    ``link_errors``."""

    def __init__(self, message: str, error: PlexusError) -> None:
        super().__init__(message)
        self.error = error

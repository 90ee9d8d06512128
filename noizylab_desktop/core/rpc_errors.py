"""The exception tree on the wire: one table from each ``NoizyLabError`` class to its gRPC status code, used both ways.

A handler ends a call with ``abort_with(context, exc)``: the code is the table's entry for the nearest class of
``exc`` in it (a feature's own subclass, such as sync's ``NoRoomError``, travels with its base's code), and the
details are ``"ClassName: message"`` in one line. The caller's side turns the status back with ``error_from_rpc``:

- details naming a class of the table give that class with the same message;
- details naming a class this node does not know (a feature's own subclass, a newer peer's class) give the
  caller's ``failed`` class with the message, never the unknown name;
- untagged details (gRPC's own, or a plain ``context.abort``) give what the caller passes for that code
  (``unavailable``, ``deadline``, ...), else one line saying where it failed.

asyncssh's ``_disc_error_map`` is the model: the table is the only place a class meets a code.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final, NoReturn

import grpc

from noizylab_desktop.core.errors import (
    ClipboardError,
    ConfigError,
    DaskError,
    DisplayError,
    DisplayUnavailableError,
    FilesError,
    IdentityError,
    InvalidRequestError,
    KeychainError,
    LauncherError,
    MergeError,
    MetricsError,
    NoizyLabError,
    NotRunningError,
    PairingError,
    PairingRateLimited,
    PeerError,
    PermissionRefusedError,
    StepUpError,
    StepUpNeeded,
    SyncError,
    TaskError,
    TokenError,
    TransportError,
    TunnelError,
    UpdateError,
    WinRMError,
)

# Characters of a status's details: a whole error message, and far below gRPC's 8 KiB for a status's metadata
# even when every character is percent-encoded (up to 12 bytes each).
MAX_DETAILS = 600

_REFUSED = grpc.StatusCode.PERMISSION_DENIED
_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_FAILED = grpc.StatusCode.FAILED_PRECONDITION

# Every class of core/errors.py, each with the code it travels with (tests/unit/test_rpc_errors.py fails when a new
# class has no entry). A refusal is PERMISSION_DENIED, a request no handler can use INVALID_ARGUMENT, and any other
# error of the tree FAILED_PRECONDITION: the call reached a node that answered, so it is neither retried as
# UNAVAILABLE nor taken for gRPC's own failures.
CODES: Final = MappingProxyType[type[NoizyLabError], grpc.StatusCode](
    {
        NoizyLabError: _FAILED,
        ConfigError: _FAILED,
        KeychainError: _FAILED,
        IdentityError: _FAILED,
        PairingError: _REFUSED,
        PairingRateLimited: _REFUSED,
        TransportError: _FAILED,
        NotRunningError: _FAILED,
        WinRMError: _FAILED,
        PeerError: _FAILED,
        PermissionRefusedError: _REFUSED,
        StepUpError: _REFUSED,
        StepUpNeeded: _REFUSED,
        InvalidRequestError: _INVALID,
        LauncherError: _FAILED,
        DisplayUnavailableError: _FAILED,
        SyncError: _FAILED,
        MergeError: _FAILED,
        TaskError: _FAILED,
        DisplayError: _FAILED,
        ClipboardError: _FAILED,
        DaskError: _FAILED,
        FilesError: _FAILED,
        MetricsError: _FAILED,
        TokenError: _FAILED,
        TunnelError: _FAILED,
        UpdateError: _FAILED,
    }
)

_BY_NAME: Final = {cls.__name__: cls for cls in CODES}

# "ClassName: message": a CamelCase name (not gRPC's own "UNKNOWN: ..." nor a sentence before a colon).
_TAG = re.compile(r"(?P<name>[A-Z]\w*): (?P<message>.*)", re.DOTALL)


def one_line(text: str, limit: int = MAX_DETAILS) -> str:
    """``text`` as one printable line of at most ``limit`` characters: a peer's value quoted in an error (a path with a
    line break, a terminal escape) is escaped as ``\\n``, so it can neither forge a line in a log nor break one."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_of(exc: NoizyLabError) -> grpc.StatusCode:
    """The status code ``exc`` travels with: its nearest class in the table."""
    return next(CODES[cls] for cls in type(exc).__mro__ if cls in CODES)


async def abort_with(context: grpc.aio.ServicerContext, exc: NoizyLabError) -> NoReturn:
    """End the call with ``exc``, in one line; the caller's ``error_from_rpc`` turns it back into the same class."""
    await context.abort(code_of(exc), one_line(f"{type(exc).__name__}: {exc.message}"))
    raise AssertionError("unreachable: context.abort raises")


def _sent(exc: grpc.aio.AioRpcError, failed: type[NoizyLabError] = NoizyLabError) -> NoizyLabError | None:
    """The error the other side sent with ``abort_with``, rebuilt (``failed`` for a class this node does not know);
    None when the status carries no ``"ClassName: message"``."""
    tag = _TAG.fullmatch(exc.details() or "")
    if tag is None or tag["name"].isupper():
        return None
    return _BY_NAME.get(tag["name"], failed)(one_line(tag["message"]))


def error_from_rpc(
    exc: grpc.aio.AioRpcError,
    where: str,
    *,
    unavailable: NoizyLabError | None = None,
    deadline: NoizyLabError | None = None,
    unauthenticated: NoizyLabError | None = None,
    refused: type[NoizyLabError] | None = None,
    failed: type[NoizyLabError] = TransportError,
    sent_as: type[NoizyLabError] | None = None,
) -> NoizyLabError:
    """The ``NoizyLabError`` a failed call to ``where`` (a peer's or node's name, as the user knows it) stands for.

    The error the other side sent comes back as its own class (``failed`` if this node does not know it); with
    ``sent_as``, as that class with ``where: `` before its message. Without one, the caller's error for the code:
    ``unavailable`` (default: ``where`` does not answer), ``deadline`` (default: did not answer in time),
    ``unauthenticated``, ``refused`` (a class given the bare details, for ``PERMISSION_DENIED`` and
    ``RESOURCE_EXHAUSTED``); any other code, or one the caller left out, gives ``failed``: "``where`` failed: ...".
    """
    sent = _sent(exc, failed)
    if sent is not None:
        return sent if sent_as is None else sent_as(one_line(f"{where}: {sent.message}"))
    code = exc.code()
    details = one_line(exc.details() or code.name)
    if code == grpc.StatusCode.UNAVAILABLE:
        return unavailable if unavailable is not None else TransportError(f"{where} does not answer")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return deadline if deadline is not None else TransportError(f"{where} did not answer in time")
    if code == grpc.StatusCode.UNAUTHENTICATED and unauthenticated is not None:
        return unauthenticated
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED) and refused is not None:
        return refused(details)
    return failed(one_line(f"{where} failed: {details}"))

"""The sending side: one file of this machine to a peer's ``Files.Receive``, reporting progress as it goes.

The file's size and SHA-256 are taken first (in a thread); the peer answers how much of it it already holds, so a
send cut off earlier resumes there. The call's deadline grows with the file (a floor plus a slow link's rate), so a
peer that stalls ends the send with one line instead of holding it for ever.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop._proto import noizylab_files_pb2_grpc as fpb_grpc
from noizylab_desktop.core.errors import FilesError, NoizyLabError, PermissionRefusedError
from noizylab_desktop.core.registry import PeerState, Registry
from noizylab_desktop.core.rpc_errors import error_from_rpc
from noizylab_desktop.services.files.names import portable_name

FLOOR_S = 60.0
SLOWEST_BYTES_S = 256 * 1024  # the deadline allows this rate, so only a stalled peer runs past it


@dataclass(frozen=True)
class Progress:
    """Where a send stands: bytes the peer holds of ``size``, and the name it saved under once done."""

    name: str
    size: int
    sent: int
    resumed_from: int = 0
    saved_as: str = ""


def _measure(path: Path) -> tuple[int, bytes]:
    """The size and SHA-256 of the regular file at ``path`` (blocking), or a one-line ``FilesError``."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise FilesError(f"{path} is not a file: send a file (a folder can be shared with `noizylab share add`)")
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except FileNotFoundError:
        raise FilesError(f"{path} does not exist") from None
    except PermissionError:
        raise FilesError(f"{path} cannot be read: this user may not open it") from None
    except OSError as exc:
        raise FilesError(f"{path} cannot be read ({exc.strerror or exc})") from None
    return info.st_size, digest.digest()


def _read(path: Path, offset: int, count: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(count)


async def send_file(
    registry: Registry,
    state: PeerState,
    path: Path,
    chunk: int,
    report: Callable[[Progress], None],
) -> Progress:
    """Send ``path`` to ``state``'s peer; ``report`` hears each step; the last step (with ``saved_as``)."""
    if not path.is_absolute():
        raise FilesError(f"{path} is not an absolute path")
    peer = state.peer.name
    size, sha = await asyncio.to_thread(_measure, path)
    name = portable_name(path.name)
    offer = fpb.FileOffer(name=name, size=size, sha256=sha)
    call = fpb_grpc.FilesStub(registry.channel(state)).Receive(timeout=FLOOR_S + size / SLOWEST_BYTES_S)
    try:
        await call.write(fpb.FilePart(offer=offer))
        first = await call.read()
        if first is grpc.aio.EOF:
            raise FilesError(f"{peer} ended the transfer of {name} without an answer")
        have = first.have
        step = Progress(name, size, have, resumed_from=have)
        report(step)
        sent = have
        while sent < size:
            data = await asyncio.to_thread(_read, path, sent, min(chunk, size - sent))
            if not data:
                raise FilesError(f"{path} shrank while it was being sent: send it again")
            await call.write(fpb.FilePart(data=data))
            sent += len(data)
            report(Progress(name, size, sent, resumed_from=have))
        await call.done_writing()
        last = await call.read()
        if last is grpc.aio.EOF or not last.saved_as:
            raise FilesError(f"{peer} ended the transfer of {name} without saying where it saved it")
    except grpc.aio.AioRpcError as exc:
        raise _error(exc, peer, name) from None
    except asyncio.CancelledError:
        call.cancel()
        raise
    done = Progress(name, size, size, resumed_from=have, saved_as=last.saved_as)
    report(done)
    return done


def _error(exc: grpc.aio.AioRpcError, peer: str, name: str) -> NoizyLabError:
    return error_from_rpc(
        exc,
        peer,
        unavailable=FilesError(f"{peer} does not answer: send {name} again once it is online; it resumes"),
        deadline=FilesError(f"{peer} stopped taking {name}: send it again to resume"),
        refused=PermissionRefusedError,
        failed=FilesError,
    )

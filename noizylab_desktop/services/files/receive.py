"""The receiving side of ``Files.Receive``: one file from a peer allowed ``files``, into the received-files folder.

The bytes go to a partial file named by the sender's fingerprint and the offered SHA-256 (in ``.noizylab-partial``
inside the folder, so the finished file is linked into place on the same file system). A transfer cut off keeps its
partial: the same file offered again by the same peer resumes where it stopped. The whole file's hash is checked
before it is placed; a file that does not match is dropped. A peer can only name a bare file (``names.check_name``),
never send more than it offered, and never replace a file already in the folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import grpc

from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop.core.errors import FilesError, InvalidRequestError, NoizyLabError
from noizylab_desktop.core.feature import first_message, require_permission
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.services.files.events import FileArrived
from noizylab_desktop.services.files.names import check_name, place

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

SCOPE = "files"
PARTIAL = ".noizylab-partial"
MAX_SIZE = 2**62


def sha256_of(path: Path) -> bytes:
    """The SHA-256 of a file's contents (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.digest()


def _append(out: BinaryIO, data: bytes) -> None:
    """Write a frame's bytes through to the file, so what a cut-off transfer leaves is all there to resume from."""
    out.write(data)
    out.flush()


def _prepare(folder: Path, part: Path, size: int) -> int:
    """Make the folders; the bytes of ``part`` already held (a longer partial starts again); refuse if no room."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    free = shutil.disk_usage(folder).free
    if size - have > free:
        raise FilesError(f"{folder} has {free // 2**20} MiB free, less than the file's {size // 2**20} MiB")
    return have


class Receiver:
    """Files arriving from peers; one stream at a time per (peer, file)."""

    def __init__(self, ctx: NodeContext, folder: Path, published: Callable[[FileArrived], None]) -> None:
        self.ctx = ctx
        self.folder = folder
        self._published = published
        self._busy: set[tuple[bytes, bytes]] = set()
        self.received = 0
        self.bytes_in = 0

    async def receive(self, frames: AsyncIterator[fpb.FilePart], context: grpc.aio.ServicerContext) -> None:
        """``Files.Receive``: check the offer, answer what is held, take the rest, check it, place it."""
        first = await first_message(frames)  # before any refusal (core/feature.py says why)
        fp = await require_permission(self.ctx, context, SCOPE)
        try:
            offer = self._check(first)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        key = (fp, offer.sha256)
        if key in self._busy:
            await abort_with(context, FilesError(f"{offer.name} is already arriving from this peer"))
        self._busy.add(key)
        try:
            saved = await self._take(fp, offer, frames, context)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        finally:
            self._busy.discard(key)
        await context.write(fpb.FileAnswer(saved_as=saved))

    @staticmethod
    def _check(first: fpb.FilePart | None) -> fpb.FileOffer:
        if first is None or not first.HasField("offer"):
            raise InvalidRequestError("a file must start with its offer: name, size and SHA-256")
        offer = first.offer
        check_name(offer.name)
        if len(offer.sha256) != 32:
            raise InvalidRequestError("a file's SHA-256 is 32 bytes")
        if offer.size > MAX_SIZE:
            raise InvalidRequestError(f"a file of {offer.size} bytes is past 2**62")
        return offer

    async def _take(
        self, fp: bytes, offer: fpb.FileOffer, frames: AsyncIterator[fpb.FilePart], context: grpc.aio.ServicerContext
    ) -> str:
        """Receive the rest of ``offer`` into its partial, check it, place it; the name it was saved under."""
        part = self.folder / PARTIAL / f"{fp.hex()[:32]}-{offer.sha256.hex()}"
        have = await asyncio.to_thread(_prepare, self.folder, part, offer.size)
        await context.write(fpb.FileAnswer(have=have))
        if have < offer.size:
            with open(part, "ab") as out:
                async for frame in frames:
                    if frame.HasField("offer") or have + len(frame.data) > offer.size:
                        part.unlink(missing_ok=True)  # a peer that breaks the protocol resumes nothing
                        raise InvalidRequestError(f"{offer.name}: more bytes than the {offer.size} offered")
                    await asyncio.to_thread(_append, out, frame.data)
                    have += len(frame.data)
                    self.bytes_in += len(frame.data)
                    if have == offer.size:
                        break
        if have < offer.size:
            # Kept: the same file sent again by this peer resumes from here.
            raise FilesError(f"{offer.name} stopped at {have} of {offer.size} bytes: send it again to resume")
        if await asyncio.to_thread(sha256_of, part) != offer.sha256:
            part.unlink(missing_ok=True)
            raise FilesError(f"{offer.name} arrived damaged (its SHA-256 differs) and was dropped: send it again")
        saved = await asyncio.to_thread(place, part, self.folder, offer.name)
        self.received += 1
        peer = self.ctx.trust.get(fp)
        name = peer.name if peer else format_id(fp)[:11]
        logger.info("received %s from %s (%d bytes), saved as %s", offer.name, name, offer.size, saved)
        self._published(
            FileArrived(
                peer_id=format_id(fp),
                peer_name=name,
                name=saved,
                size=offer.size,
                path=str(self.folder / saved),
            )
        )
        return saved

"""The files feature: ``noizylab send PEER FILE`` (and "Send a file…" in the tray) here, ``Files.Receive`` there.

Sending (``send.py``): this node reads the file, offers its name, size and SHA-256, and sends what the peer does not
hold yet. Receiving (``receive.py``): a peer needs the ``files`` permission (off for a new peer); the file lands in
the ``[files] folder`` (default ``~/Downloads/NOIZYLAB``) under a bare name, never over a file there, and the tray
says so. Each receiving stream relies on the ``files`` scope, so deny and unpair end it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop._proto import noizylab_files_pb2_grpc as fpb_grpc
from noizylab_desktop.core.errors import FilesError, NoizyLabError
from noizylab_desktop.core.feature import Figure, require_self
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.files.events import FileSent
from noizylab_desktop.services.files.receive import Receiver
from noizylab_desktop.services.files.send import Progress, send_file
from noizylab_desktop.services.files.settings import SECTION, FilesSettings

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.2  # how often a send's progress is told to the command line


class FilesFeature(fpb_grpc.FilesServicer):
    """Files this node sends to peers and receives from them."""

    name = "files"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(FilesSettings, ctx.settings.section(SECTION))
        self.folder = self.settings.folder.expanduser()
        self.receiver = Receiver(ctx, self.folder, ctx.bus.publish)
        self.sent = 0
        self.bytes_out = 0

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        fpb_grpc.add_FilesServicer_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Files",)

    async def start(self) -> None:
        """Nothing runs in the background: the folder is made when the first file arrives."""

    async def stop(self) -> None:
        """Nothing to stop: open streams end with the gRPC server."""

    def figures(self) -> Iterable[Figure]:
        yield Figure("noizylab_files_sent_total", "Files this node sent to peers", self.sent, "counter")
        received = self.receiver.received
        yield Figure("noizylab_files_received_total", "Files peers sent to this node", received, "counter")
        for direction, value in (("in", self.receiver.bytes_in), ("out", self.bytes_out)):
            yield Figure(
                "noizylab_files_bytes_total", "Bytes of files sent and received", value, "counter",
                {"direction": direction},
            )  # fmt: skip

    # ------------------------------------------------------------------ sending

    async def send(self, ref: str, path: Path, report: Callable[[Progress], None] = lambda _: None) -> Progress:
        """Send the file at ``path`` to the peer ``ref`` names; the last step, with the name the peer saved it as."""
        peer = self.ctx.trust.find(ref)
        state = next((s for s in self.ctx.registry.peers() if s.peer.fingerprint == peer.fingerprint), None)
        if state is None or state.removed:
            raise FilesError(f"{peer.name} no longer pairs with this machine: pair again to send it files")
        if not state.address:
            raise FilesError(f"no address is known for {peer.name}: send it again once it is online")
        counted = 0

        def step(progress: Progress) -> None:
            nonlocal counted
            self.bytes_out += progress.sent - progress.resumed_from - counted
            counted = progress.sent - progress.resumed_from
            report(progress)

        done = await send_file(self.ctx.registry, state, path, self.settings.chunk_bytes, step)
        self.sent += 1
        logger.info("sent %s to %s, saved there as %s", path.name, peer.name, done.saved_as)
        self.ctx.bus.publish(
            FileSent(peer_id=peer.node_id, peer_name=peer.name, name=done.name, size=done.size, saved_as=done.saved_as)
        )
        return done

    # ------------------------------------------------------------------ RPCs

    # Written with ``context.write`` (answers interleave with the frames read), not yielded: hence the override.
    async def Receive(  # type: ignore[override]  # noqa: N802 (gRPC method name)
        self, request_iterator: AsyncIterator[fpb.FilePart], context: grpc.aio.ServicerContext
    ) -> None:
        await self.receiver.receive(request_iterator, context)

    async def Send(  # type: ignore[override]  # noqa: N802
        self, request: fpb.SendFileRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await require_self(self.ctx, context)
        try:
            peer = self.ctx.trust.find(request.peer)
        except NoizyLabError as exc:
            await abort_with(context, exc)
        steps: asyncio.Queue[Progress] = asyncio.Queue()
        told = 0.0

        def report(p: Progress) -> None:
            nonlocal told
            if time.monotonic() - told >= PROGRESS_EVERY_S:
                told = time.monotonic()
                steps.put_nowait(p)

        sending = asyncio.ensure_future(self.send(request.peer, Path(request.path), report))
        try:
            while not sending.done():
                getting = asyncio.ensure_future(steps.get())
                await asyncio.wait({sending, getting}, return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    await context.write(_message(peer.name, getting.result()))
                getting.cancel()
        finally:
            # The caller went away: the send stops, and what arrived stays there for the next one to resume.
            sending.cancel()
        try:
            done = sending.result()
        except NoizyLabError as exc:
            await abort_with(context, exc)
        await context.write(_message(peer.name, done))


def _message(peer_name: str, p: Progress) -> fpb.SendProgress:
    return fpb.SendProgress(
        peer_name=peer_name, name=p.name, size=p.size, sent=p.sent, resumed_from=p.resumed_from, saved_as=p.saved_as
    )

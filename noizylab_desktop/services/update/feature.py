"""The update feature's node part: says when the node is busy, and confirms that a new version started.

- ``Update.Busy`` (this node's own certificate only) tells ``noizylab update apply``, in another process, how many
  tasks run and how many remote-desktop sessions are open, from the figures the node's features export (read
  through the context, never by importing the tasks or display feature): the update waits while either is above 0.
- ``start`` runs after every feature before it started: when this install is on trial after a swap, the new
  version's node is up, and the trial ends (``restart.py`` waits for that).
- The tray's "Check for updates…" uses ``updater`` (checks and downloads run in worker threads).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_update_pb2 as upb
from noizylab_desktop._proto import noizylab_update_pb2_grpc as upb_grpc
from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.core.feature import Figure, require_self
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.update.install import InstalledApp, app_dir_here
from noizylab_desktop.services.update.repo import Offer, Progress
from noizylab_desktop.services.update.service import DISPLAY_SESSIONS, TASKS_RUNNING, Busy, Updater
from noizylab_desktop.services.update.settings import SECTION, UpdateSettings

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

logger = logging.getLogger(__name__)


class UpdateFeature(upb_grpc.UpdateServicer):
    """Self-update, as far as the running node takes part in it."""

    name = "update"

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.settings = parse_section(UpdateSettings, ctx.settings.section(SECTION))
        self.updater = Updater(self.settings)

    # ------------------------------------------------------------------ Feature

    def add_to_server(self, server: grpc.aio.Server) -> None:
        upb_grpc.add_UpdateServicer_to_server(self, server)

    def interceptors(self) -> Sequence[grpc.aio.ServerInterceptor]:
        return ()

    def service_names(self) -> Sequence[str]:
        return ("noizylab.grid.v1.Update",)

    async def start(self) -> None:
        """End this install's trial when it is this version's first start after a swap."""
        if app_dir_here() is None:
            return
        try:
            app = await asyncio.to_thread(InstalledApp.here)
            if await asyncio.to_thread(app.confirm_started):
                logger.info("%s %s started after an update", app.build.app, app.version)
        except UpdateError as exc:  # a build not signed by packaging/release.py: nothing is on trial
            logger.info("update: %s", exc.message)

    async def stop(self) -> None:
        """Nothing runs in the background."""

    def figures(self) -> Iterable[Figure]:
        return ()

    # ------------------------------------------------------------------ for this node's own user

    def busy(self) -> Busy:
        """Tasks running and remote-desktop sessions open on this node now."""
        wanted = (TASKS_RUNNING, DISPLAY_SESSIONS)
        totals: dict[str, float] = {}
        for figure in self.ctx.figures():
            if figure.name in wanted:
                totals[figure.name] = totals.get(figure.name, 0.0) + figure.value
        return Busy.from_figures(totals)

    async def check(self) -> Offer | None:
        return await asyncio.to_thread(self.updater.check)

    async def fetch(self, offer: Offer, progress: Progress | None = None) -> None:
        await asyncio.to_thread(self.updater.fetch, offer, progress)

    # ------------------------------------------------------------------ gRPC

    async def Busy(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> upb.UpdateBusy:  # noqa: N802
        await require_self(self.ctx, context)
        busy = self.busy()
        return upb.UpdateBusy(tasks_running=busy.tasks_running, display_sessions=busy.display_sessions)

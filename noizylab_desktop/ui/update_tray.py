"""The tray's update row (when ``[update] url`` is set): "Check for updates…", then "Download VERSION…" with its
progress, then "Restart to update to VERSION".

The tray also checks by itself a minute after it starts and then daily, and tells the person only of a newer
version. Checking and downloading run in worker threads (``UpdateFeature.check``/``fetch``: signed TUF metadata,
verified archive, unpacked beside the app); the menu reads the latest progress on every show. Restarting hands
over to ``noizylab update apply --relaunch tray`` in a process of its own: it waits while a task runs or a remote
desktop is open here, stops this tray's node (the tray quits), swaps the folders and starts the new version's tray,
or rolls back to this one if it does not start.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.words import size
from noizylab_desktop.services.update.feature import UpdateFeature
from noizylab_desktop.services.update.repo import Offer
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.extensions import TrayPart
from noizylab_desktop.ui.notify import Notifier

logger = logging.getLogger(__name__)

CHECK_ROW = "Check for updates…"
CHECKING_ROW = "Checking for updates…"
APP_NAME = "NOIZYLAB"
FIRST_CHECK_S = 60.0  # after the tray starts: the node and the network settle first
CHECK_EVERY_S = 24 * 3600.0


def download_row(offer: Offer) -> str:
    return f"Download {APP_NAME} {offer.version} ({size(offer.size)})…"


def downloading_row(offer: Offer, done: int, total: int) -> str:
    """``Downloading NOIZYLAB 1.1.0: 42% (1.2 MB of 2.9 MB)``."""
    percent = 100 * done // max(total, 1)
    return f"Downloading {APP_NAME} {offer.version}: {percent}% ({size(done)} of {size(total)})"


def restart_row(offer: Offer) -> str:
    return f"Restart to update to {offer.version}"


class UpdateTray(TrayPart):
    """One row that walks through check, download and restart."""

    def __init__(self, feature: UpdateFeature, ctx: NodeContext, bridge: Bridge) -> None:
        self.feature = feature
        self.ctx = ctx
        self.notifier = Notifier()
        self.checking = False
        self.offer: Offer | None = None
        self.progress: tuple[int, int] | None = None  # (bytes so far, bytes in all) while downloading
        self.ready = False  # downloaded, verified and unpacked
        self._tasks: set[asyncio.Task[None]] = set()
        self.first_check_s = FIRST_CHECK_S

    def attach(self, icon: QSystemTrayIcon, retooltip: Callable[[], None]) -> None:
        self.notifier.icon = icon
        if self.feature.settings.enabled:
            self._spawn(self._check_now_and_then())

    async def _check_now_and_then(self) -> None:
        """A quiet check a little after the tray starts, then daily: a person hears only of a newer version."""
        await asyncio.sleep(self.first_check_s)
        while True:
            if self.offer is None and not self.checking:
                await self.check(quiet=True)
            await asyncio.sleep(CHECK_EVERY_S)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_actions(self, menu: QMenu) -> None:
        if not self.feature.settings.enabled:
            return  # updates are off until [update] url names a repository: no row to lead nowhere
        offer = self.offer
        if self.checking:
            menu.addAction(CHECKING_ROW).setEnabled(False)
        elif offer is None:
            menu.addAction(CHECK_ROW).triggered.connect(lambda _=False: self._spawn(self.check()))
        elif self.progress is not None:
            menu.addAction(downloading_row(offer, *self.progress)).setEnabled(False)
        elif self.ready:
            menu.addAction(restart_row(offer)).triggered.connect(lambda _=False: self.restart())
        else:
            menu.addAction(download_row(offer)).triggered.connect(lambda _=False: self._spawn(self.download()))

    async def check(self, *, quiet: bool = False) -> None:
        """Ask the update repository; say what it answered (``quiet``: only a newer version, the rest is logged)."""
        self.checking = True
        try:
            self.offer = await self.feature.check()
        except NoizyLabError as exc:
            if quiet:
                logger.warning("update check: %s", exc.message)
            else:
                self.notifier.notify("Update check failed", exc.message, warning=True)
            return
        finally:
            self.checking = False
        if self.offer is None and quiet:
            return
        if self.offer is None:
            version = self.feature.updater.app.version
            self.notifier.notify(f"{APP_NAME} is up to date", f"{APP_NAME} {version} is the newest version")
        else:
            self.notifier.notify(f"{APP_NAME} {self.offer.version} is available", "Pick it in the menu to download it")

    async def download(self) -> None:
        """Download, verify and unpack the offered version, showing progress in the menu."""
        offer = self.offer
        if offer is None:
            return
        self.progress = (0, offer.size)

        def report(done: int, total: int) -> None:  # on the download's worker thread
            self.progress = (done, total)

        try:
            await self.feature.fetch(offer, report)
        except NoizyLabError as exc:
            self.offer = None
            self.notifier.notify("Update not downloaded", exc.message, warning=True)
            return
        finally:
            self.progress = None
        self.ready = True
        self.notifier.notify(f"{APP_NAME} {offer.version} is ready", "Pick Restart to update in the menu")

    def restart(self) -> None:
        """Hand over to ``noizylab update apply``, which stops this tray and starts the new version's."""
        busy = self.feature.busy()
        if busy:
            self.notifier.notify(
                "The update waits", f"{busy.reason} here: NOIZYLAB restarts when they end", warning=False
            )
        app = self.feature.updater.app
        home = ["--home", str(self.ctx.paths.home)] if self.ctx.paths.home is not None else []
        kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
        kwargs["stderr"] = open(self.ctx.paths.log_dir / "update.log", "ab")  # noqa: SIM115 - handed to the child
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        logger.info("restarting to update to %s", self.offer.version if self.offer else "?")
        subprocess.Popen([str(app.executable), *home, "update", "apply", "--relaunch", "tray"], **kwargs)
        kwargs["stderr"].close()

    def tooltip_line(self) -> str:
        if self.ready and self.offer is not None:
            return f"{APP_NAME} {self.offer.version} is ready: restart to update"
        return ""

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

"""The updater as the command line and the tray use it: status, check, download and stage (blocking; no Qt).

``Updater`` joins the settings (``[update] url``), the install on disk (``install.py``) and the repository
(``repo.py``). Applying (``restart.py``) needs the node stopped and started, so it runs in the command line's own
process; the tray hands it over to ``noizylab update apply`` and quits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.services.update.install import InstalledApp
from noizylab_desktop.services.update.repo import Offer, Progress, Repo
from noizylab_desktop.services.update.settings import UpdateSettings

TASKS_RUNNING = "noizylab_tasks_running"
DISPLAY_SESSIONS = "noizylab_display_sessions"


@dataclass(frozen=True)
class Busy:
    """What holds an update back: work this node does now."""

    tasks_running: int = 0
    display_sessions: int = 0

    @classmethod
    def from_figures(cls, figures: Mapping[str, float]) -> Busy:
        return cls(int(figures.get(TASKS_RUNNING, 0)), int(figures.get(DISPLAY_SESSIONS, 0)))

    def __bool__(self) -> bool:
        return bool(self.tasks_running or self.display_sessions)

    @property
    def reason(self) -> str:
        """``"1 task running, 2 remote-desktop sessions open"``; empty when idle."""
        parts = []
        if self.tasks_running:
            parts.append(f"{self.tasks_running} task{'s' if self.tasks_running != 1 else ''} running")
        if self.display_sessions:
            s = "s" if self.display_sessions != 1 else ""
            parts.append(f"{self.display_sessions} remote-desktop session{s} open")
        return ", ".join(parts)


@dataclass(frozen=True)
class Status:
    """What ``noizylab update status`` shows."""

    url: str
    installed: str
    previous: str
    staged: str
    trial: str
    failed: tuple[str, ...]


class Updater:
    """Self-update of the install this process runs from."""

    def __init__(self, settings: UpdateSettings, app: InstalledApp | None = None) -> None:
        self.settings = settings
        self._app = app
        self._repo: Repo | None = None

    @property
    def app(self) -> InstalledApp:
        if self._app is None:
            self._app = InstalledApp.here()
        return self._app

    def _repository(self) -> Repo:
        if not self.settings.enabled:
            raise UpdateError("updates are off: set [update] url in config.toml to the update repository's address")
        if self._repo is None:
            self._repo = Repo(self.app, self.settings.url)
        return self._repo

    def status(self) -> Status:
        app = self.app
        state = app.state()
        return Status(self.settings.url, app.version, state.previous, state.staged, state.trial, tuple(state.failed))

    def check(self) -> Offer | None:
        """The newer version the repository signs, or None; an ``UpdateError`` line when it cannot be trusted."""
        return self._repository().newest()

    def fetch(self, offer: Offer, progress: Progress | None = None) -> None:
        """Download ``offer``, verify it against the signed metadata, and unpack it beside the app, ready to apply."""
        app = self.app
        app.check_writable()
        archive = self._repository().download(offer, progress)
        app.stage(archive, offer.version)

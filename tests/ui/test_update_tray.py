"""The tray's "Check for updates…": it finds the newer signed version, downloads it with its progress in the menu,
and "Restart to update" hands over to ``noizylab update apply --relaunch tray``, which stops the running tray and
starts the new version's (a real tray process here: the test's own tray cannot be stopped by another process).

The install is real (tests/integration/update_support.py): version 1.0.0 unpacked from its signed archive, the
repository served over HTTP on loopback at the pace of a slow link, so the download's progress can be seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.node.node import Node
from noizylab_desktop.services.update.install import APP_DIR_ENV
from noizylab_desktop.ui import update_tray
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.update_tray import CHECK_ROW, UpdateTray
from tests.conftest import wait_for
from tests.integration.update_support import Installed, Release, served
from tests.ui.menus import action
from tests.ui.waiting import Run, eventually

OLD, NEW = "1.0.0", "1.1.0"
PAYLOAD = 2 * 1024 * 1024
RATE = 1024 * 1024  # bytes a second: the download takes about two seconds


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Installed, Release]]:
    release = Release(tmp_path)
    release.add(OLD)
    with served(release.repo, rate=RATE) as server:
        install = Installed(tmp_path, release.archive(OLD), server.url)
        release.add(NEW, payload=PAYLOAD)
        # This test's process plays the installed tray: its node and its updater use the install in opt/noizylab.
        monkeypatch.setenv(APP_DIR_ENV, str(install.app))
        try:
            yield install, release
        finally:
            install.stop()


def rows(app: TrayApp) -> list[str]:
    assert app.tray is not None
    app.tray.menu.aboutToShow.emit()
    return [a.text() for a in app.tray.menu.actions()]


def test_check_then_download_with_progress_in_the_menu_leaves_the_new_version_ready(
    run: Run, installed: tuple[Installed, Release]
) -> None:
    install, _ = installed
    paths = Paths.resolve(install.home)
    paths.ensure()

    async def scenario() -> None:
        async with TrayApp(Node(paths, load_settings(paths))) as app:
            assert app.tray is not None
            part = next(e for e in app.tray.extensions if isinstance(e, UpdateTray))

            action(app.tray, CHECK_ROW).trigger()

            download = await eventually(
                lambda: next((r for r in rows(app) if r.startswith(f"Download NOIZYLAB {NEW} (")), None),
                20,
                "the menu to offer the new version",
            )
            assert download == f"Download NOIZYLAB {NEW} (2.0 MB)…"
            await eventually(lambda: part.notifier.shown, 10, "a notification of what the check found")
            assert part.notifier.shown[0][1:] == ("NOIZYLAB 1.1.0 is available", "Pick it in the menu to download it")
            action(app.tray, download).trigger()
            seen = await eventually(
                lambda: next((r for r in rows(app) if r.startswith(f"Downloading NOIZYLAB {NEW}: ")), None),
                20,
                "the download's progress in the menu",
            )
            assert seen.endswith(" of 2.0 MB)")
            restart = f"Restart to update to {NEW}"
            await eventually(lambda: restart in rows(app), 30, "the verified download")
            assert install.version == OLD and (install.app.parent / "noizylab.new").is_dir()

            assert part.tooltip_line() == f"NOIZYLAB {NEW} is ready: restart to update"
            status = install.status()
            assert (status["installed"], status["staged"]) == (OLD, NEW)

    run(scenario())


def test_restart_to_update_stops_the_tray_and_starts_the_new_versions_tray(
    tray_app: object, installed: tuple[Installed, Release]
) -> None:
    install, _ = installed
    tray = install.popen()  # the installed 1.0.0 tray, on the test's display with trayer as its tray host
    try:
        wait_for(install.node_pid, 60, "the 1.0.0 tray's node to start")
        assert install.node_pid() == tray.pid

        # What the tray's "Restart to update" row runs (ui/update_tray.py), here from a terminal.
        applied = install.cli("update", "apply", "--relaunch", "tray", timeout=180)

        assert applied.returncode == 0, applied.stderr
        assert tray.wait(timeout=30) == 0  # the old tray quit when its node was stopped
        assert install.version == NEW
        status = install.status()
        assert (status["installed"], status["previous"], status["trial"]) == (NEW, OLD, None)
        new_tray = install.node_pid()
        assert new_tray is not None and new_tray != tray.pid
        assert install.cli("status", "--json").returncode == 0
    finally:
        if tray.poll() is None:
            tray.kill()
        tray.communicate()


def test_the_tray_checks_by_itself_and_tells_only_of_a_newer_version(
    run: Run, installed: tuple[Installed, Release], monkeypatch: pytest.MonkeyPatch
) -> None:
    install, _ = installed
    monkeypatch.setattr(update_tray, "FIRST_CHECK_S", 0.0)  # not a minute after start: at once
    paths = Paths.resolve(install.home)
    paths.ensure()

    async def scenario() -> None:
        async with TrayApp(Node(paths, load_settings(paths))) as app:
            assert app.tray is not None
            part = next(e for e in app.tray.extensions if isinstance(e, UpdateTray))

            await eventually(lambda: part.notifier.shown, 20, "the tray's own check to find the new version")

            assert [shown[1:] for shown in part.notifier.shown] == [
                ("NOIZYLAB 1.1.0 is available", "Pick it in the menu to download it")
            ]
            assert f"Download NOIZYLAB {NEW} (2.0 MB)…" in rows(app)

    run(scenario())

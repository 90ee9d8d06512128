"""The viewer as a person sees it when the host goes away and comes back, and on a screen smaller than the host's.

The laptop is a real node hosting this test's X screen (1280×800, as large as the screen the viewer is on): the
window opens fitted to the free space, shows it pixel for pixel on request with clicks still landing on the right
pixel, says "disconnected — reconnecting…" within seconds of the laptop's node stopping, reconnects when it starts
again, and closes with the reason when it does not come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QMouseEvent
from PySide6.QtWidgets import QApplication

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.display_tray import DisplayTray
from noizylab_desktop.ui.display_viewer import RECONNECTING, ViewerWindow
from tests.conftest import NodeProcess
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.waiting import Run, eventually, expect, within

PROMPT_S = 5.0  # the host's keep-alive is 1 s: "disconnected" must show well within this, not after 15 s


def click(window: ViewerWindow, at: QPointF) -> list[dpb.InputEvent]:
    """What the window sends for a left click at ``at`` (in the screen widget's coordinates)."""
    sent: list[dpb.InputEvent] = []
    window.send = sent.append  # type: ignore[method-assign]
    screen = window.screen_view
    for kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
        held = Qt.MouseButton.LeftButton if kind == QEvent.Type.MouseButtonPress else Qt.MouseButton.NoButton
        event = QMouseEvent(kind, at, screen.mapToGlobal(at), Qt.MouseButton.LeftButton, held,
                            Qt.KeyboardModifier.NoModifier)  # fmt: skip
        QApplication.sendEvent(screen, event)
    del window.send
    return sent


def test_the_viewer_fits_says_disconnected_at_once_reconnects_and_gives_up_with_a_reason(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    laptop = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            code, _ = await app.node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(laptop.join, code)
            await within(online, 20, "the tray's node to see the laptop online")
            await asyncio.to_thread(laptop.cli, "allow", "desk", "display")
            tray = next(e for e in app.tray.extensions if isinstance(e, DisplayTray))
            window = await within(tray.open_viewer(app.node.trust.peers()[0].fingerprint), 20, "the viewer")
            assert window is not None
            await eventually(lambda: window.screen_view.picture, 15, "a decoded picture in the window")
            picture = window.screen_view.picture
            assert picture is not None and (picture.width, picture.height) == (1280, 800)

            # Fitted: the window is no larger than the free space of this 1280×800 screen, the picture scaled into it.
            free = (window.screen() or QGuiApplication.primaryScreen()).availableGeometry()
            assert window.width() <= free.width() and window.height() <= free.height()
            await eventually(lambda: window.screen_view.target.height() > 0, 5, "the picture to be painted")
            target = window.screen_view.target
            assert target.height() < 800 and abs(target.width() / target.height() - 1.6) < 0.01
            keep(window, "viewer-fitted")

            # 1:1: pixel for pixel, scrolled; a click still lands on the pixel under it.
            window.actual_size.setChecked(True)
            await eventually(lambda: window.screen_view.target.width() == 1280, 5, "the picture at its own size")
            assert (window.screen_view.width(), window.screen_view.height()) == (1280, 800)
            assert window.area.verticalScrollBar().maximum() > 0
            press = click(window, QPointF(1000, 700))[0].button
            assert (press.x, press.y) == pytest.approx((1000, 700), abs=1)
            keep(window, "viewer-actual-size")
            window.actual_size.setChecked(False)

            # The host stops: the window says so at once, dims the picture, and shows no stale figures.
            stopped_at = time.monotonic()
            await asyncio.to_thread(laptop.stop)
            await eventually(lambda: window.state == RECONNECTING, PROMPT_S, "the window to say it is disconnected")
            assert time.monotonic() - stopped_at < PROMPT_S
            assert window.status.text() == "laptop: disconnected — reconnecting…"
            assert window.stats_lines() == ["laptop: disconnected — reconnecting…"]
            assert window.isVisible()
            keep(window, "viewer-reconnecting")

            # It comes back: a new session, new pictures, the state and the figures return.
            before = window.screen_view.picture
            await asyncio.to_thread(laptop.start)
            await eventually(lambda: window.state == "connected", 30, "the viewer to reconnect")
            assert window.reconnects == 1
            await eventually(lambda: window.screen_view.picture is not before, 15, "a picture from the new session")
            assert window.status.text().startswith("laptop · ")

            # Gone for good: the window closes with the reason.
            window.reconnect_s = 3
            ended = expect(window.finished)
            await asyncio.to_thread(laptop.stop)
            (why,) = await within(ended, 30, "the viewer to give up")
            assert why.startswith("laptop did not come back within 3 s")
            await eventually(lambda: not tray.viewers, 10, "the tray to forget the window")
            await eventually(lambda: not shiboken6.isValid(window), 10, "the window to be deleted")

    run(scenario())

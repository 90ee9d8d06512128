"""``noizylab`` with no command: a QApplication running asyncio through qasync, hosting the same ``Node``.

For the launcher the tray is a node like ``noizylab node``: it holds the home's instance lock, writes the pid file,
and ``Node.start`` writes the runtime file, so ``noizylab status``, ``peers`` and ``stop`` reach the tray's node.
A key rotation (``noizylab keys rotate``) restarts the node on its new key: the tray starts the new node for the same
home and ports and shows a fresh icon for it.
A ``Control.Shutdown`` (``noizylab stop``), a signal or the Quit item all end the node, and with it the app; when
the stop came from outside, the tray says why in one line before it quits.

A node already running for the home (``noizylab start``) is taken over: the tray asks it to stop over the local
control channel, waits until it lets go of the home, then runs its own node there (same config, so the same
ports) and says so. Attaching to it as a client instead would leave every tray part without the running feature it
is built on; the node's work pauses for the moment of the hand-over, which a notification and the log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import DisplayUnavailableError, NoizyLabError
from noizylab_desktop.node import autostart, first_run
from noizylab_desktop.node.launcher import holding_home, setup_logging, take_over
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.bridge import Bridge
from noizylab_desktop.ui.first_run import FirstRunWindow
from noizylab_desktop.ui.gui_gc import collect_on_gui_thread
from noizylab_desktop.ui.icons import app_icon
from noizylab_desktop.ui.qt_async import runner
from noizylab_desktop.ui.tray import APP_NAME, Tray

logger = logging.getLogger(__name__)

HEADLESS_HINT = "run the headless node with `noizylab node` instead"


def check_display() -> None:
    """Refuse early where Qt could only abort: Linux with neither an X11 nor a Wayland display, or an X display
    that does not answer (Qt aborts there with a hint about reinstalling its xcb plugin)."""
    if not sys.platform.startswith("linux"):
        return
    x11, wayland = os.environ.get("DISPLAY", ""), os.environ.get("WAYLAND_DISPLAY", "")
    if not (x11 or wayland):
        raise DisplayUnavailableError(f"no display here (neither DISPLAY nor WAYLAND_DISPLAY is set): {HEADLESS_HINT}")
    # Qt takes X11 when told to, or when there is no Wayland display to prefer.
    if x11 and (os.environ.get("QT_QPA_PLATFORM", "").startswith("xcb") or not wayland):
        _check_x11(x11)


def _check_x11(name: str) -> None:
    """Open and close one X connection to ``name``; a one-line error when it fails."""
    from Xlib import display, error

    try:
        display.Display(name).close()
    except Exception as exc:  # python-xlib raises unrelated types: its own errors, OSError, ValueError
        reason = exc.msg if isinstance(exc, error.DisplayConnectionError) else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise DisplayUnavailableError(
            f"cannot open the display {name!r}: {' '.join(text.split()) or type(exc).__name__}: {HEADLESS_HINT}"
        ) from exc


def application() -> QApplication:
    """The process's QApplication, set up for a tray app."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0] if sys.argv else "noizylab"])
    app.setApplicationName("noizylab")
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(app_icon(False))
    # Closing the pairing dialog must not end a tray app that has no other window.
    app.setQuitOnLastWindowClosed(False)
    collect_on_gui_thread(app)
    return app


class TrayApp:
    """A node with its bridge and tray icon, started and stopped together (``async with TrayApp(node)``).

    ``took_over``: the pid of the node this tray stopped to run its home's node itself (``launcher.take_over``);
    the tray says so once it shows. ``first_run``: open the first-run window when this home has no peer and has not
    finished its first run (the app does; tests of other windows leave it closed).
    """

    def __init__(self, node: Node, took_over: int | None = None, *, first_run: bool = False) -> None:
        self.node = node
        self.took_over = took_over
        self.offer_first_run = first_run
        self.bridge: Bridge | None = None
        self.tray: Tray | None = None
        self.first_run: FirstRunWindow | None = None

    async def start(self) -> None:
        """Start the node, then show its icon."""
        try:
            await self.node.start()
        except BaseException:
            await self.node.stop()
            raise
        self.bridge = Bridge(self.node.bus)
        self.tray = Tray(self.node, self.bridge, quit=lambda: self.node.request_stop())
        self.tray.show()
        logger.info("tray shown for node %s (%s)", self.node.settings.name, self.node.identity.node_id)
        if self.took_over is not None:
            self._tell(f"the node that ran in the background (pid {self.took_over}) stopped: this tray runs it now")
        try:
            # An entry left by an installation that moved would start nothing at the next login: point it here.
            autostart.refresh(self.tray.autostart)
        except NoizyLabError as exc:
            logger.warning("start at login: %s", exc.message)
        if self.offer_first_run and first_run.needed(self.node.paths, len(self.node.trust.peers())):
            self.open_first_run()

    def open_first_run(self) -> FirstRunWindow:
        """Show the first-run window (raising it when it is open already)."""
        assert self.tray is not None
        if self.first_run is None:
            # The tray follows what the window does through the bridge (a pairing) and rebuilds its menu on showing.
            self.first_run = FirstRunWindow(self.node, self.tray.autostart)
        self.first_run.show()
        self.first_run.raise_()
        self.first_run.activateWindow()
        return self.first_run

    def _close_ui(self) -> None:
        if self.first_run is not None:
            self.first_run.reject()
        if self.tray is not None:
            self.tray.hide()
        if self.bridge is not None:
            self.bridge.close()

    async def stop(self) -> None:
        """Take the icon away and stop the node; idempotent."""
        self._close_ui()
        await self.node.stop()

    async def run(self) -> int:
        """Run until Quit, ``noizylab stop`` or a signal asks the node to stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows' loops have no signal handlers
                loop.add_signal_handler(sig, lambda: self.node.request_stop())  # the node of the moment
        self.node.can_restart = True
        await self.start()
        try:
            await self.node.run_until_stopped()
            while self.node.restart_requested:
                await self._restart()
                await self.node.run_until_stopped()
        finally:
            if self.node.stop_reason:
                # Asked from outside (`noizylab stop`, another tray): the person did not pick Quit, so say why.
                self._tell(f"quitting: {self.node.stop_reason}", to_stderr=True)
            self._close_ui()
        return 0

    async def _restart(self) -> None:
        """The node stopped to start again at once (its identity or SSH key was rotated): a fresh node for the same
        home and ports, with a fresh tray icon, bridge and menus for it (each window of the old one is closed)."""
        reason = self.node.stop_reason
        self._close_ui()
        self.node = self.node.restarted()
        self.node.can_restart = True
        self.took_over, self.offer_first_run, self.first_run = None, False, None
        await self.start()
        self._tell(f"this machine's node restarted: {reason}")

    def _tell(self, line: str, *, to_stderr: bool = False) -> None:
        """One line for the person: in the log, as a notification, and on stderr when started from a terminal."""
        logger.warning("%s", line)
        if self.tray is not None:
            self.tray.notifier.notify(APP_NAME, line[0].upper() + line[1:], wait=to_stderr)
        if to_stderr:
            print(f"noizylab: {line}", file=sys.stderr, flush=True)

    async def __aenter__(self) -> TrayApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def run_tray(paths: Paths, settings: Settings) -> int:
    """Run the tray app hosting a ``Node`` on the qasync loop."""
    check_display()
    app = application()
    if not QSystemTrayIcon.isSystemTrayAvailable():
        raise DisplayUnavailableError(f"this desktop shows no system tray: {HEADLESS_HINT}")
    setup_logging(paths, to_stderr=False)
    # A node started with `noizylab start` holds the home: a double-clicked app must not just do nothing.
    took_over = take_over(paths, settings)
    with holding_home(paths), runner(app) as loop:
        return loop.run(TrayApp(Node(paths, settings), took_over, first_run=True).run())

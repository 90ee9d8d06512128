"""The remote-desktop window: a peer's screen, decoded on a worker thread, fitted to the window with its aspect kept
(or pixel for pixel, scrolled, with "Actual size (1:1)"); the window opens no larger than the screen it is on.

A host that stops, or goes silent for a few of its keep-alive periods, turns the window to "disconnected —
reconnecting…" at once: the last picture dimmed, no stale figures. The window reconnects as soon as the host answers
again, and closes with the reason when it does not come back within ``[display] reconnect_s``.

Input goes back as the person gives it: pointer positions in the frame's own pixels (so scaling, letterboxing and
HiDPI are undone here and monitor offsets on the host), keys both by position (scan code) and, for text, by
character (keysym), so a German or French layout types what was pressed. F11 toggles fullscreen; F12 the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import NoizyLabError, PairingError, PeerError, PermissionRefusedError, TransportError
from noizylab_desktop.services.display.client import ViewerSession
from noizylab_desktop.services.display.decoder import DecodeWorker, Picture
from noizylab_desktop.services.display.keymaps import evdev_from_native

logger = logging.getLogger(__name__)

RECONNECTING = "disconnected — reconnecting…"
STALL_KEEPALIVES = 3  # silence for this many of the host's keep-alive periods is a lost host
STALL_MIN_S = 2.0
ATTEMPT_S = 10.0  # one reconnect attempt at most
RETRY_S = 1.0  # between attempts
# A new session to the same host, entered (the tray's and the command line's ways to reach the peer again).
Reconnect = Callable[[], Awaitable[ViewerSession]]

BUTTONS = {
    Qt.MouseButton.LeftButton: 1,
    Qt.MouseButton.MiddleButton: 2,
    Qt.MouseButton.RightButton: 3,
    Qt.MouseButton.BackButton: 8,
    Qt.MouseButton.ForwardButton: 9,
}


def fit(frame_w: int, frame_h: int, area: QRectF) -> QRectF:
    """The largest rectangle with the frame's aspect that fits ``area``, centred in it."""
    if frame_w <= 0 or frame_h <= 0:
        return QRectF()
    scale = min(area.width() / frame_w, area.height() / frame_h)
    w, h = frame_w * scale, frame_h * scale
    return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)


def to_frame(pos: QPointF, target: QRectF, frame_w: int, frame_h: int) -> tuple[float, float] | None:
    """Widget position → frame pixel, or None outside the picture (the letterbox bars)."""
    if target.isEmpty() or not target.contains(pos):
        return None
    return (pos.x() - target.x()) * frame_w / target.width(), (pos.y() - target.y()) * frame_h / target.height()


def keysym_for_text(text: str) -> int:
    """The X11 keysym of one character (Latin-1 as is, the rest as Unicode keysyms)."""
    code = ord(text)
    return code if 0x20 <= code < 0x100 else 0x01000000 + code


class Screen(QWidget):
    """Paints the newest picture and turns input into events; ``send`` is set by the window."""

    picture_ready = Signal(object)

    def __init__(self, window: ViewerWindow) -> None:
        super().__init__(window)
        self._window = window
        self.picture: Picture | None = None
        self._image: QImage | None = None
        self.target = QRectF()
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(320, 200)
        self.picture_ready.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def _show(self, picture: Picture) -> None:
        self.picture = picture
        rgb = picture.rgb
        # QImage borrows the array's memory; keeping ``picture`` alive keeps the array alive.
        self._image = QImage(rgb.data, picture.width, picture.height, rgb.strides[0], QImage.Format.Format_RGB888)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        started = time.perf_counter()
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0))
        if self._image is not None and self.picture is not None:
            ratio = self.devicePixelRatioF()
            if self._window.actual_size.isChecked():
                w, h = self.picture.width / ratio, self.picture.height / ratio
                x, y = max(0.0, (self.width() - w) / 2), max(0.0, (self.height() - h) / 2)
                self.target = QRectF(x, y, w, h)
            else:
                self.target = fit(self.picture.width, self.picture.height, QRectF(self.rect()))
            # Smooth scaling only when actually scaling (device pixels, so HiDPI screens paint 1:1 when they can).
            exact = abs(self.target.width() * ratio - self.picture.width) < 0.5
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not exact)
            painter.drawImage(self.target, self._image)
        if self._window.state == RECONNECTING:
            self._paint_disconnected(painter)
        elif self._window.stats_on:
            self._paint_stats(painter)
        painter.end()
        if self.picture is not None:
            self._window.painted(self.picture, (time.perf_counter() - started) * 1000)

    def _paint_disconnected(self, painter: QPainter) -> None:
        """The last picture dimmed, and the state in its middle (in view wherever the area is scrolled)."""
        painter.fillRect(self.rect(), QColor(0, 0, 0, 150))
        painter.setFont(QFont("sans", 16))
        painter.setPen(QColor(255, 255, 255))
        visible = self.visibleRegion().boundingRect()
        painter.drawText(QRectF(visible), Qt.AlignmentFlag.AlignCenter, self._window.state_text())

    def _paint_stats(self, painter: QPainter) -> None:
        lines = self._window.stats_lines()
        painter.setFont(QFont("monospace", 9))
        height = 16 * len(lines) + 8
        painter.fillRect(QRectF(8, 8, 330, height), QColor(0, 0, 0, 170))
        painter.setPen(QColor(230, 230, 230))
        for i, line in enumerate(lines):
            painter.drawText(QPointF(14, 24 + 16 * i), line)

    # ------------------------------------------------------------------ input

    def _point(self, pos: QPointF) -> tuple[float, float] | None:
        if self.picture is None:
            return None
        return to_frame(pos, self.target, self.picture.width, self.picture.height)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        point = self._point(event.position())
        if point is not None:
            self._window.send(dpb.InputEvent(move=dpb.PointerMove(x=point[0], y=point[1])))

    def _button(self, event: QMouseEvent, down: bool) -> None:
        point = self._point(event.position())
        button = BUTTONS.get(event.button())
        if point is not None and button is not None:
            pressed = dpb.PointerButton(button=button, down=down, x=point[0], y=point[1])
            self._window.send(dpb.InputEvent(button=pressed))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._button(event, True)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._button(event, False)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._button(event, True)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        delta = event.angleDelta()
        self._window.send(dpb.InputEvent(wheel=dpb.Wheel(dx=round(delta.x() / 120), dy=round(delta.y() / 120))))

    def _key(self, event: QKeyEvent, down: bool) -> None:
        if event.key() in (Qt.Key.Key_F11, Qt.Key.Key_F12):
            if down and not event.isAutoRepeat():
                self._window.toggle_fullscreen() if event.key() == Qt.Key.Key_F11 else self._window.toggle_stats()
            return
        text = event.text()
        # The wire carries evdev codes; Qt's native codes are the OS's own (X11 keycode, Windows scan code, kVK_).
        scancode = evdev_from_native(sys.platform, event.nativeScanCode(), event.nativeVirtualKey())
        ctrl_or_alt = event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
        if len(text) == 1 and text.isprintable() and not ctrl_or_alt:
            # Text by character, so the host types what this layout shows; shortcuts and other keys by position.
            key = dpb.Key(down=down, keysym=keysym_for_text(text), scancode=scancode)
        else:
            keysym = event.nativeVirtualKey() if sys.platform.startswith("linux") else 0  # an X11 keysym only there
            key = dpb.Key(down=down, scancode=scancode, keysym=keysym, by_position=bool(scancode))
        self._window.send(dpb.InputEvent(key=key))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        self._key(event, True)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if not event.isAutoRepeat():
            self._key(event, False)


class ViewerWindow(QWidget):
    """One peer's screen; ``run`` streams (reconnecting when the host comes back) until the window closes or the
    session ends for good."""

    finished = Signal(str)  # why it ended ("" when closed by the person)
    state_changed = Signal(str)  # "connected" again, or RECONNECTING

    def __init__(self, session: ViewerSession, reconnect: Reconnect | None = None, reconnect_s: float = 60.0) -> None:
        super().__init__()
        self.session = session
        self._reconnect = reconnect
        self.reconnect_s = reconnect_s
        self.state = "connected"  # or RECONNECTING
        self.lost_because = ""
        self.reconnects = 0
        self.stats_on = True
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._received: deque[tuple[float, int]] = deque(maxlen=240)
        self._latency: dict[str, float] = {}
        self.setWindowTitle(f"{session.peer_name} — NOIZYLAB remote desktop")
        self.screen_view = Screen(self)
        self.area = QScrollArea()
        self.area.setWidget(self.screen_view)
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.monitors = QComboBox()
        self.monitors.setToolTip("Which of the peer's monitors to show")
        self.view_only = QCheckBox("View only")
        self.view_only.setToolTip("Send no keyboard or mouse input")
        self.actual_size = QCheckBox("Actual size (1:1)")
        self.actual_size.setToolTip("Show the screen pixel for pixel, scrolling to the rest, instead of fitted")
        self.actual_size.toggled.connect(self._size_mode_changed)
        self.fullscreen = QPushButton("Fullscreen (F11)")
        self.fullscreen.clicked.connect(self.toggle_fullscreen)
        self.status = QLabel("")
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        bar.addWidget(QLabel("Monitor"))
        bar.addWidget(self.monitors)
        bar.addWidget(self.view_only)
        bar.addWidget(self.actual_size)
        bar.addWidget(self.fullscreen)
        bar.addWidget(self.status, 1)
        self.bar = QWidget()
        self.bar.setLayout(bar)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.bar)
        layout.addWidget(self.area, 1)
        self._apply_info()
        self.monitors.currentIndexChanged.connect(self._monitor_chosen)
        self.worker = DecodeWorker(self.screen_view.picture_ready.emit)
        self._fit_to_screen()

    def _fit_to_screen(self) -> None:
        """Open at the remote screen's size, but never larger than the space this screen leaves free."""
        info = self.session.info
        display = self.screen() or QGuiApplication.primaryScreen()
        free = display.availableGeometry()
        bar = self.bar.sizeHint().height()
        # Room for the window manager's frame, which Qt does not know before the window is shown.
        width = min(max(480, info.width), free.width() - 16)
        height = min(max(320, info.height) + bar, free.height() - 48)
        self.resize(max(320, width), max(240, height))

    def _size_mode_changed(self, actual: bool) -> None:
        self.area.setWidgetResizable(not actual)
        self._size_screen()
        self.screen_view.update()

    def _size_screen(self) -> None:
        """In 1:1, the picture's own size (the scroll area scrolls); fitted, the scroll area sizes it."""
        picture = self.screen_view.picture
        if self.actual_size.isChecked() and picture is not None:
            ratio = self.screen_view.devicePixelRatioF()
            self.screen_view.resize(round(picture.width / ratio), round(picture.height / ratio))

    def _apply_info(self) -> None:
        info = self.session.info
        self.monitors.blockSignals(True)
        self.monitors.clear()
        for m in info.monitors:
            self.monitors.addItem(f"{m.index}: {m.width}×{m.height}", m.index)
        self.monitors.setCurrentIndex(max(0, self.monitors.findData(info.monitor)))
        self.monitors.blockSignals(False)
        if not info.control:
            self.view_only.setChecked(True)
            self.view_only.setEnabled(False)
            self.view_only.setToolTip(info.note or "this session is view only")
        self.status.setText(f"{info.host_name or self.session.peer_name} · {info.encoder} · {info.width}×{info.height}")

    def state_text(self) -> str:
        """What the window says while the host is away."""
        return f"{self.session.peer_name}: {RECONNECTING}"

    def _monitor_chosen(self, row: int) -> None:
        self._spawn(self.session.select_monitor(int(self.monitors.itemData(row))))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, event: dpb.InputEvent) -> None:
        """Send input unless view only (or the host is away)."""
        if not self.view_only.isChecked() and self.state != RECONNECTING:
            self._spawn(self.session.send_input(event))

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
            self.bar.show()
        else:
            self.bar.hide()
            self.showFullScreen()

    def toggle_stats(self) -> None:
        self.stats_on = not self.stats_on
        self.screen_view.update()

    def painted(self, picture: Picture, paint_ms: float) -> None:
        """Per-stage latency of the picture just painted."""
        offset = self.session.clock.offset_s
        now = time.time()
        self.session.decode_ms = picture.decode_ms
        self.session.paint_ms = paint_ms
        self.session.last_seq = picture.seq
        self._latency = {
            "capture": picture.capture_ms,
            "encode": picture.encode_ms,
            "network": max(0.0, (picture.received_at + offset - picture.sent_at) * 1000),
            "decode": picture.decode_ms,
            "paint": paint_ms,
            "total": max(0.0, (now + offset - picture.captured_at) * 1000),
        }

    def stats_lines(self) -> list[str]:
        if self.state == RECONNECTING:
            return [self.state_text()]  # no figures: they would be stale
        now = time.monotonic()
        recent = [(t, size) for t, size in self._received if now - t <= 1.0]
        kbps = sum(size for _, size in recent) * 8 / 1000
        lat = self._latency
        stages = " ".join(f"{k} {lat.get(k, 0):.1f}" for k in ("capture", "encode", "network", "decode", "paint"))
        return [
            f"{len(recent)} fps  {kbps:.0f} kbps  {self.session.info.encoder}",
            f"latency {lat.get('total', 0):.1f} ms (clock ±{self.session.clock.rtt_s * 500:.1f})",
            f"ms: {stages}",
        ]

    def _set_state(self, state: str, why: str = "") -> None:
        self.state = state
        self.lost_because = why
        self.state_changed.emit(state)
        if state == RECONNECTING:
            self.status.setText(self.state_text())
            self.status.setToolTip(why)
        else:
            self.status.setToolTip("")
            self._apply_info()
        self.screen_view.update()

    async def run(self) -> str:
        """Stream until the window closes or the session ends for good; returns why it ended ("" for a close)."""
        why = ""
        try:
            while True:
                lost = await self._stream()
                if not lost or self._closing.is_set():
                    break
                if self._reconnect is None:
                    why = lost
                    break
                logger.info("viewer of %s lost the host (%s): reconnecting", self.session.peer_name, lost)
                self._set_state(RECONNECTING, lost)
                session = await self._come_back()
                if session is None:
                    if not self._closing.is_set():
                        why = f"{self.session.peer_name} did not come back within {self.reconnect_s:.0f} s ({lost})"
                    break
                self.session = session
                self.reconnects += 1
                self.worker.close()
                self.worker = DecodeWorker(self.screen_view.picture_ready.emit)
                self._set_state("connected")
        except NoizyLabError as exc:
            why = exc.message
        finally:
            self.worker.close()
        if self.isVisible() and why:
            self.status.setText(f"ended: {why}")
        self.finished.emit(why)
        return why

    async def _stream(self) -> str:
        """Show the session's frames; "" once it was closed here, else how the host was lost.

        A refusal or a host's own reason (it stopped sharing) is raised: those end the window."""
        session = self.session
        stall = max(STALL_MIN_S, STALL_KEEPALIVES * (session.info.keepalive_s or 1.0))
        frames = aiter(session.frames())
        while True:
            try:
                frame = await asyncio.wait_for(anext(frames), stall)
            except StopAsyncIteration:
                return "" if session.closed else f"{session.peer_name} ended the session"
            except TimeoutError:
                return "" if session.closed else f"nothing from {session.peer_name} for {stall:.0f} s"
            except TransportError as exc:
                return "" if session.closed else exc.message
            if frame.data:
                self._received.append((time.monotonic(), len(frame.data)))
                self.worker.submit(frame)
                session.queue_depth = self.worker.depth
            if session.info.width and self.status.text().find(str(session.info.width)) < 0:
                self._apply_info()
                self._size_screen()
            if self.worker.error is not None:
                raise self.worker.error

    async def _come_back(self) -> ViewerSession | None:
        """A new session with the host, tried each second until ``reconnect_s`` ran out or the window closed."""
        assert self._reconnect is not None
        await self.session.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_s
        while not self._closing.is_set() and loop.time() < deadline:
            try:
                return await asyncio.wait_for(self._reconnect(), min(ATTEMPT_S, max(0.1, deadline - loop.time())))
            except (PermissionRefusedError, PairingError, PeerError):
                raise  # not coming back: the host refuses us now, or we no longer pair
            except (NoizyLabError, TimeoutError) as exc:
                logger.debug("reconnecting to %s: %s", self.session.peer_name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), min(RETRY_S, max(0.0, deadline - loop.time())))
        return None

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._closing.set()
        self._spawn(self.session.close())
        super().closeEvent(event)


async def open_session(make: Callable[[], ViewerSession]) -> ViewerSession:
    """``make()``'s session, entered (the host answered with what it shows); closed again when that fails."""
    session = make()
    try:
        return await session.__aenter__()
    except BaseException:
        await session.close()
        raise


def run_viewer(paths: Paths, settings: Settings, peer: str, monitor: int, control: bool) -> int:
    """``noizylab view PEER``: the window in its own QApplication, until it is closed."""
    import grpc

    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.display.connect import connect
    from noizylab_desktop.services.display.settings import DisplaySettings
    from noizylab_desktop.ui.app import check_display
    from noizylab_desktop.ui.gui_gc import collect_on_gui_thread
    from noizylab_desktop.ui.qt_async import runner

    check_display()
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["noizylab view"])
    # Closing the window ends the session, which ends ``go``; Qt must not stop the loop under it first.
    app.setQuitOnLastWindowClosed(False)
    collect_on_gui_thread(app)

    display = parse_section(DisplaySettings, settings.section("display"))
    channels: list[grpc.aio.Channel] = []

    async def session() -> ViewerSession:
        channel, name = await connect(paths, settings, peer)  # our node says where the peer is now
        channels.append(channel)
        return await open_session(lambda: ViewerSession(channel, name, monitor=monitor, control=control))

    async def go() -> int:
        try:
            first = await session()
            window = ViewerWindow(first, session, display.reconnect_s)
            # What the window says, on the terminal too: a person who started it there sees it wait and come back.
            window.state_changed.connect(
                lambda state: print(
                    f"{first.peer_name}: {RECONNECTING if state == RECONNECTING else 'connected again'}",
                    file=sys.stderr,
                    flush=True,
                )
            )
            window.show()
            why = await window.run()
            await window.session.close()
        finally:
            for channel in channels:
                await channel.close()
        if why:
            raise NoizyLabError(why)
        return 0

    with runner(app) as loop, contextlib.suppress(KeyboardInterrupt):
        return int(loop.run(go()))
    return 0

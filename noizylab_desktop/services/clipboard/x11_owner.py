"""An X11 CLIPBOARD owner in its own thread (python-xlib): offers several targets at once and tells of new owners.

``xclip`` can offer only one target, but a copy carries text, HTML and an image together, so the node owns the
selection itself. Values over ``INCR_THRESHOLD`` go out with the INCR protocol in ``CHUNK`` pieces (the core
protocol caps one request at 256 KB). XFixes reports every change of owner, so changes need no polling.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from Xlib import X, Xatom, display, error
from Xlib.ext import xfixes
from Xlib.protocol import event as xevent
from Xlib.xobject.drawable import Window

from noizylab_desktop.core.errors import ClipboardError

logger = logging.getLogger(__name__)

INCR_THRESHOLD = 128 * 1024
CHUNK = 64 * 1024


@dataclass
class _Transfer:
    """An INCR transfer in flight: what is left to send to one requestor's property."""

    window: Window
    prop: int
    target: int
    data: bytes
    offset: int = 0


class SelectionOwner:
    """Owns CLIPBOARD on ``display_name`` when asked (``offer``) and calls ``on_change`` when anyone takes it."""

    def __init__(self, display_name: str, on_change: Callable[[], None] | None = None) -> None:
        try:
            self._display = display.Display(display_name)
        except (error.DisplayError, OSError) as exc:
            raise ClipboardError(f"cannot open X display {display_name!r} for the clipboard: {exc}") from exc
        if not self._display.has_extension("XFIXES"):
            self._display.close()
            raise ClipboardError(f"X display {display_name!r} lacks XFIXES, which clipboard sync needs")
        self._display.xfixes_query_version()
        self._display.set_error_handler(self._on_x_error)
        self._on_change = on_change
        self._window = self._display.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._clipboard = self._display.intern_atom("CLIPBOARD")
        self._targets_atom = self._display.intern_atom("TARGETS")
        self._incr = self._display.intern_atom("INCR")
        self._display.xfixes_select_selection_input(
            self._window, self._clipboard, xfixes.XFixesSetSelectionOwnerNotifyMask
        )
        self._display.flush()
        self._data: dict[int, bytes] = {}
        self._transfers: dict[tuple[int, int], _Transfer] = {}
        self._pending: list[dict[str, bytes]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._stopped = False
        self._owned = threading.Event()
        self._thread = threading.Thread(target=self._run, name="x11-clipboard", daemon=True)
        self._thread.start()

    def offer(self, values: Mapping[str, bytes], timeout: float = 2.0) -> None:
        """Own the clipboard with ``values`` (target name → bytes); returns once the X server has made us owner."""
        with self._lock:
            self._pending.append(dict(values))
            self._owned.clear()
        os.write(self._wake_w, b"o")
        if not self._owned.wait(timeout):
            raise ClipboardError("the X server did not hand the clipboard over in time")

    def close(self) -> None:
        """Stop the thread and give the selection up."""
        if self._stopped:
            return
        self._stopped = True
        os.write(self._wake_w, b"q")
        self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ------------------------------------------------------------------ the X thread

    def _on_x_error(self, err: error.XError, request: object) -> None:
        # A requestor that quits mid-transfer destroys its window; its transfer can only be dropped.
        gone = getattr(err, "resource_id", None)
        self._transfers = {k: t for k, t in self._transfers.items() if k[0] != gone}
        logger.debug("X error on the clipboard connection: %s", err)

    def _run(self) -> None:
        try:
            while not self._stopped:
                while self._display.pending_events():
                    self._handle(self._display.next_event())
                self._display.flush()
                # flush() reads what has arrived into python-xlib's queue, where select() cannot see it.
                if self._display.pending_events():
                    continue
                ready, _, _ = select.select([self._display.fileno(), self._wake_r], [], [])
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                    self._take_ownership()
        except Exception:
            logger.exception("the X11 clipboard thread failed")
        finally:
            self._display.close()

    def _take_ownership(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        self._data = {self._display.intern_atom(name): value for name, value in pending[-1].items()}
        self._window.set_selection_owner(self._clipboard, X.CurrentTime)
        owner = self._display.get_selection_owner(self._clipboard)
        if owner == self._window:
            self._owned.set()

    def _handle(self, ev: object) -> None:
        if isinstance(ev, xevent.SelectionRequest):
            self._answer(ev)
        elif isinstance(ev, xevent.SelectionClear):
            self._data = {}
        elif isinstance(ev, xevent.PropertyNotify) and ev.state == X.PropertyDelete:
            self._continue(ev.window.id, ev.atom)
        elif isinstance(ev, xfixes.SelectionNotify) and self._on_change is not None:
            # python-xlib clones the event class per display, so only the shared base class can be matched.
            self._on_change()

    def _answer(self, ev: xevent.SelectionRequest) -> None:
        prop = ev.property if ev.property != X.NONE else ev.target
        requestor = ev.requestor
        if ev.target == self._targets_atom and self._data:
            atoms = [self._targets_atom, *self._data]
            requestor.change_property(prop, Xatom.ATOM, 32, atoms)
        elif ev.target in self._data:
            value = self._data[ev.target]
            if len(value) > INCR_THRESHOLD:
                requestor.change_attributes(event_mask=X.PropertyChangeMask)
                requestor.change_property(prop, self._incr, 32, [len(value)])
                self._transfers[(requestor.id, prop)] = _Transfer(requestor, prop, ev.target, value)
            else:
                requestor.change_property(prop, ev.target, 8, value)
        else:
            prop = X.NONE
        reply = xevent.SelectionNotify(
            time=ev.time, requestor=requestor, selection=ev.selection, target=ev.target, property=prop
        )
        requestor.send_event(reply)

    def _continue(self, window: int, prop: int) -> None:
        transfer = self._transfers.get((window, prop))
        if transfer is None:
            return
        piece = transfer.data[transfer.offset : transfer.offset + CHUNK]
        transfer.offset += len(piece)
        transfer.window.change_property(prop, transfer.target, 8, piece)
        if not piece:  # the empty piece ends the transfer
            del self._transfers[(window, prop)]
            transfer.window.change_attributes(event_mask=X.NoEventMask)

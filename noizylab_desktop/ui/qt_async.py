"""Typed doors to qasync (it ships no type hints): slots that await, and a runner for the Qt-driven loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, cast

import qasync
from PySide6.QtWidgets import QApplication

P = ParamSpec("P")
AsyncMethod = Callable[P, Coroutine[Any, Any, None]]


def async_slot(*types: type) -> Callable[[AsyncMethod[P]], Callable[P, asyncio.Task[None]]]:
    """``qasync.asyncSlot``: a Qt slot that runs the coroutine as a task on the loop and returns that task."""
    return cast(Callable[[AsyncMethod[P]], Callable[P, asyncio.Task[None]]], qasync.asyncSlot(*types))


def runner(app: QApplication) -> asyncio.Runner:
    """An ``asyncio.Runner`` whose loop is Qt's event loop, so widgets and asyncio share one thread."""
    return asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app))

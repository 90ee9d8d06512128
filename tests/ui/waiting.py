"""Waiting inside a qasync scenario: on a Qt signal or on a condition, always with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from PySide6.QtCore import SignalInstance

from tests.conftest import within
from tests.slowness import scaled

__all__ = ["Run", "eventually", "expect", "within"]

T = TypeVar("T")
POLL_S = 0.05


class Run(Protocol):
    """The ``run`` fixture: runs a scenario on a fresh qasync loop and returns its result."""

    def __call__(self, scenario: Coroutine[Any, Any, T]) -> T: ...


def expect(signal: SignalInstance) -> asyncio.Future[tuple[Any, ...]]:
    """A future for the next emission of ``signal``; connect it before doing what should emit it."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def emitted(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(emitted)
    future.add_done_callback(lambda _: signal.disconnect(emitted))
    return future


async def eventually(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``condition`` while the loop keeps serving, until it is truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    last = condition()
    while not last:
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        await asyncio.sleep(POLL_S)
        last = condition()
    return last

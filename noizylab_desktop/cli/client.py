"""A command's way to this home's running node: one piece of async work with a ``LocalClient``, run to its end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.core.local_client import LocalClient

T = TypeVar("T")


def run_with_node(paths: Paths, settings: Settings, work: Callable[[LocalClient], Awaitable[T]]) -> T:
    """``await work(node)`` with a client of the node for ``paths``, in a fresh event loop; its answer."""
    # Imported here: gRPC and asyncio cost more than the whole of ``noizylab --help``.
    import asyncio

    from noizylab_desktop.core.local_client import LocalClient

    async def go() -> T:
        async with LocalClient(paths, settings) as node:
            return await work(node)

    return asyncio.run(go())

"""A command's way to this home's running node: one piece of async work with a ``LocalClient``, run to its end."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.core.local_client import LocalClient

T = TypeVar("T")


def run_with_node(
    paths: Paths, settings: Settings, work: Callable[[LocalClient], Awaitable[T]], totp: str | None = None
) -> T:
    """``await work(node)`` with a client of the node for ``paths``, in a fresh event loop; its answer.

    ``totp`` is a code for a sensitive action. Without one, when the node asks for it and a person is at the
    terminal, they are asked once and the work runs again (the node checks the code before it does anything)."""
    # Imported here: gRPC and asyncio cost more than the whole of ``noizylab --help``.
    import asyncio

    from noizylab_desktop.core.errors import StepUpNeeded
    from noizylab_desktop.core.local_client import LocalClient

    async def go(code: str | None) -> T:
        async with LocalClient(paths, settings, code) as node:
            return await work(node)

    try:
        return asyncio.run(go(totp))
    except StepUpNeeded:
        if totp or not sys.stdin.isatty():
            raise
    return asyncio.run(go(input("TOTP code (from your authenticator app): ").strip()))


def add_totp_flag(parser: argparse.ArgumentParser) -> None:
    """``--totp CODE``: the step-up a sensitive action asks for when TOTP is on."""
    parser.add_argument(
        "--totp", metavar="CODE", help="a code from your authenticator app, when TOTP is on (`noizylab totp`)"
    )

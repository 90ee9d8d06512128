"""Fixtures shared by the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sync_harness import Pair, SyncPair


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A started in-process sync pair (engine + the real embedded SFTP server) and the loop that drives it."""
    loop = asyncio.new_event_loop()
    p = SyncPair(tmp_path)
    loop.run_until_complete(p.start())
    yield p, loop
    loop.run_until_complete(p.close())
    loop.close()

"""Fixtures for the hostile-peer suite: a host node and a paired attacker that calls it with raw stubs, and a screen
of the host's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import NodeProcess
from tests.security.hostile import Hostile, hostile_peer
from tests.xvfb import Xvfb


def paint_root(display: str) -> Any:
    """A white root window (an all-black screen ends a session as "no permission to record"); keep the connection
    open: Xvfb resets the screen when its last client leaves."""
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    root = conn.screen().root
    root.change_attributes(background_pixel=conn.screen().white_pixel)
    root.clear_area()
    conn.sync()
    return conn


@pytest.fixture(scope="module")
def screen() -> Iterator[Xvfb]:
    """A small white X screen for the module's host node (so captured frames and injected input are real)."""
    xvfb = Xvfb("320x240")
    conn = paint_root(xvfb.display)
    yield xvfb
    conn.close()
    xvfb.stop()


@pytest.fixture
def host(make_node: Callable[[str], NodeProcess]) -> NodeProcess:
    """The node under attack, running."""
    return make_node("host").start()


@pytest.fixture
def attacker(host: NodeProcess, make_node: Callable[[str], NodeProcess]) -> Iterator[Callable[..., Hostile]]:
    """``attacker("sync")``: a paired peer of ``host`` holding only the given permissions (none by default)."""
    made: list[Hostile] = []

    def make(*scopes: str, name: str = "mallory") -> Hostile:
        hostile = hostile_peer(host, make_node(name).start(), *scopes)
        made.append(hostile)
        return hostile

    yield make
    for hostile in made:
        hostile.close()

"""Fixtures for the hostile-peer suite: a host node and a paired attacker that calls it with raw stubs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import NodeProcess
from tests.security.hostile import Hostile, hostile_peer


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

"""A Windows node and a Linux node pair over mTLS on loopback and call each other."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeProcess, wait_for
from tests.windows.conftest import LinuxNode, pair


def test_a_windows_node_and_a_linux_node_pair_and_see_each_other_online(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode]
) -> None:
    windows = make_node("omen").start()
    linux = make_linux_node("penguin").start()
    pair(windows, linux)  # the Windows node invites, the Linux node joins
    seen_by_windows = windows.peer("penguin") or {}
    seen_by_linux = linux.peer("omen") or {}
    assert seen_by_windows["id"] == linux.status()["id"] and seen_by_linux["id"] == windows.status()["id"]
    # Each node's heartbeats keep reaching the other: the Linux node stopped, the Windows node sees it go offline.
    linux.stop()
    wait_for(lambda: not (windows.peer("penguin") or {}).get("online"), timeout=30, what="omen to see penguin go")
    linux.start()
    wait_for(lambda: (windows.peer("penguin") or {}).get("online"), timeout=30, what="omen to see penguin again")


def test_a_linux_node_invites_and_a_windows_node_joins(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode]
) -> None:
    linux = make_linux_node("penguin").start()
    windows = make_node("omen").start()
    pair(linux, windows)
    info = windows.json("peers")
    assert [p["name"] for p in info] == ["penguin"] and info[0]["online"]

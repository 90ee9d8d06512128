"""A peer's chosen name cannot make another peer hard to name: exact IDs and names win, and names stay unique."""

from __future__ import annotations

import tomllib
from collections.abc import Callable

import tomli_w

from tests.conftest import NodeProcess


def _named(make_node: Callable[[str], NodeProcess], home: str, name: str) -> NodeProcess:
    """A node in its own home that calls itself ``name`` (which another node may already use)."""
    node = make_node(home)
    config = node.home / "config.toml"
    config.write_text(tomli_w.dumps({**tomllib.loads(config.read_text()), "name": name}))
    node.name = name
    return node


def test_a_peer_named_like_the_start_of_another_peers_id_is_still_named_exactly(
    host: NodeProcess, make_node: Callable[[str], NodeProcess]
) -> None:
    first = make_node("first").start()
    first.join(host.invite())
    prefix = first.id[0]
    squatter = _named(make_node, "squatter", prefix).start()
    squatter.join(host.invite())
    host.cli("allow", "first", "sync")
    host.cli("allow", prefix, "sync")
    host.cli("deny", prefix, "sync")
    allowed = {p["name"]: p["allowed"]["sync"] for p in host.json("permissions")}
    assert allowed == {"first": True, prefix: False}
    host.cli("deny", first.id, "sync")
    assert {p["name"]: p["allowed"]["sync"] for p in host.json("permissions")} == {"first": False, prefix: False}


def test_a_joiner_whose_name_is_taken_gets_a_suffix(host: NodeProcess, make_node: Callable[[str], NodeProcess]) -> None:
    pc, other_pc, impostor = (_named(make_node, h, n).start() for h, n in (("pc", "pc"), ("pc2", "PC"), ("h2", "host")))
    for node in (pc, other_pc, impostor):
        node.join(host.invite())
    names = {p["id"]: p["name"] for p in host.json("peers")}
    assert names == {pc.id: "pc", other_pc.id: "PC-2", impostor.id: "host-2"}
    host.cli("deny", "pc", "sync")  # one peer, not three


def test_the_joiner_names_a_second_inviter_with_a_taken_name_uniquely_too(
    make_node: Callable[[str], NodeProcess],
) -> None:
    one, two = _named(make_node, "one", "office").start(), _named(make_node, "two", "office").start()
    laptop = make_node("laptop").start()
    assert laptop.join(one.invite())["peer_name"] == "office"
    assert laptop.join(two.invite())["peer_name"] == "office-2"
    assert {p["name"]: p["id"] for p in laptop.json("peers")} == {"office": one.id, "office-2": two.id}

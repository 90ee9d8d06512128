"""Rotating a node's identity key: the old key signs the new one, and peers move their pin and the permissions they
gave it to the new ID without re-pairing; a peer online moves at once, a peer offline on reconnect, before anything
else, even after two rotations."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.tasks_helpers import pair


def rotate(node: NodeProcess) -> dict[str, object]:
    return dict(node.json("keys", "rotate", "identity"))


def sees(viewer: NodeProcess, name: str, node_id: str) -> bool:
    """Whether ``viewer`` knows the peer ``name`` by ``node_id`` and sees it online."""
    peer = viewer.peer(name) or {}
    return peer.get("id") == node_id and bool(peer.get("online"))


def test_peers_follow_an_identity_rotation_online_at_once_and_offline_on_reconnect(
    make_node: Callable[..., NodeProcess],
) -> None:
    alpha, beta, gamma = start_all(make_node("alpha"), make_node("beta"), make_node("gamma"))
    pair(alpha, beta)
    pair(alpha, gamma)
    beta.cli("allow", "alpha", "tasks")
    gamma.cli("allow", "alpha", "tasks")
    alpha.cli("allow", "beta", "tasks")
    first = alpha.json("keys", "list")
    assert first["identity"]["id"] == alpha.id and first["identity"]["algorithm"] == "ECDSA P-256"
    assert first["certificate"]["expires_at"] > first["certificate"]["issued_at"] > 0
    assert first["ssh"]["fingerprint"].startswith("SHA256:") and first["peers_behind"] == []

    gamma_port = gamma.status()["ports"]["grpc"]
    gamma.stop()
    wait_for(lambda: not (alpha.peer("gamma") or {}).get("online"), 20, "alpha to see gamma gone")
    once = rotate(alpha)
    assert once["old_id"] == first["identity"]["id"] != once["id"]
    assert once["told"] == ["beta"] and once["behind"] == ["gamma"]
    assert alpha.id == once["id"]  # the command returns once the node runs on the new key
    wait_for(lambda: sees(beta, "alpha", str(once["id"])), what="beta to see alpha online under its new ID")
    # beta's permission for alpha moved with it: no re-pairing, no new grant.
    assert [(p["id"], p["allowed"]["tasks"]) for p in beta.json("permissions")] == [(once["id"], True)]
    assert alpha.cli("run", "--on", "beta", "--", "echo", "moved").stdout.strip() == "moved"
    assert beta.cli("run", "--on", "alpha", "--", "echo", "back").stdout.strip() == "back"

    twice = rotate(alpha)
    assert twice["old_id"] == once["id"] and twice["told"] == ["beta"] and twice["behind"] == ["gamma"]
    wait_for(lambda: sees(beta, "alpha", str(twice["id"])), what="beta to follow the second rotation")
    assert alpha.json("keys", "list")["peers_behind"] == ["gamma"]
    assert alpha.json("keys", "list")["identity"]["rotations"] == 2

    # gamma missed both: alpha tells it on reconnect, over its first key, before anything else. gamma comes back
    # where it was (a node keeps its port; a test's node would pick a new one).
    gamma.cli("start", "--port", str(gamma_port))
    wait_for(lambda: sees(gamma, "alpha", str(twice["id"])), 30, "gamma to learn alpha's new ID on reconnect")
    wait_for(lambda: (alpha.peer("gamma") or {}).get("online"), what="alpha to see gamma back")
    assert alpha.cli("run", "--on", "gamma", "--", "echo", "learned").stdout.strip() == "learned"
    wait_for(lambda: alpha.json("keys", "list")["peers_behind"] == [], what="alpha to know gamma caught up")
    assert {p["name"] for p in gamma.json("peers")} == {"alpha"}  # moved, not paired anew

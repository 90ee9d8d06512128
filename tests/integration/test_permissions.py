"""What a paired peer may do is off until the person allows it, persists across restarts, and unpairing forgets it."""

from __future__ import annotations

from noizylab_desktop.core.permissions import SCOPES
from tests.conftest import NodeProcess, wait_for


def _allowed(node: NodeProcess, peer: str) -> dict[str, bool]:
    rows = node.json("permissions")
    return next(dict(r["allowed"]) for r in rows if r["name"] == peer)


def test_a_new_peer_may_do_nothing_until_allowed_and_it_persists(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    assert _allowed(beta, "alpha") == dict.fromkeys(SCOPES, False)

    shown = beta.cli("allow", "alpha", "tasks", "clipboard").stdout
    assert shown.strip() == "alpha: tasks, clipboard"
    assert _allowed(beta, "alpha") == {**dict.fromkeys(SCOPES, False), "tasks": True, "clipboard": True}
    assert _allowed(alpha, "beta") == dict.fromkeys(SCOPES, False), "permissions are per node, not mutual"

    beta.stop()
    beta.start()
    assert _allowed(beta, "alpha")["tasks"] is True

    beta.cli("deny", "alpha", "tasks")
    assert _allowed(beta, "alpha")["tasks"] is False


def test_unpairing_forgets_what_a_peer_was_allowed(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    beta.cli("allow", "alpha", "display")
    beta.cli("unpair", "alpha")
    beta.join(alpha.invite())
    wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online again")
    assert _allowed(beta, "alpha") == dict.fromkeys(SCOPES, False)


def test_unknown_peers_and_scopes_get_one_line_errors(paired: tuple[NodeProcess, NodeProcess]) -> None:
    _, beta = paired
    wrong_peer = beta.cli("allow", "nobody", "tasks", check=False)
    assert wrong_peer.returncode == 1
    assert wrong_peer.stderr.strip() == "noizylab: error: no paired peer matches 'nobody': see `noizylab peers`"
    wrong_scope = beta.cli("allow", "alpha", "everything", check=False)
    assert wrong_scope.returncode == 2 and "invalid choice: 'everything'" in wrong_scope.stderr

"""A grid that asks for a second member's signature on a key rotation (`[grid] rotation_cosign`, issue #19 item 4):
peers take a new identity key only when the old key and another member signed it; `noizylab keys rotate` asks an
online member to co-sign, and a member co-signs only its caller's own rotation."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc
from noizylab_desktop.core.rotation import cosign
from tests.conftest import NodeProcess, wait_for
from tests.integration.test_grid_membership import CONVERGE_S, grid_of, online
from tests.integration.test_key_rotation import sees
from tests.security.hostile import channel, stranger
from tests.security.test_rotation_hostile import refused, statement
from tests.slowness import scaled

COSIGN = {"rotation_cosign": True}
UNCOSIGNED = (
    "refused alpha's key rotation: this grid asks for a second member's signature (grid.rotation_cosign), and it "
    "has none from a member"
)


def met(*nodes: NodeProcess) -> None:
    """Wait until every node sees every other online."""
    for node in nodes:
        for other in nodes:
            if other is not node:
                wait_for(lambda n=node, o=other: online(n, o.name), CONVERGE_S, f"{node.name} to see {other.name}")


def test_a_rotation_signed_by_the_old_key_only_is_refused_and_a_cosigned_one_is_followed(
    make_node: Callable[..., NodeProcess],
) -> None:
    alpha, beta, gamma = grid_of(make_node, "alpha", "beta", "gamma", grid=COSIGN)
    met(alpha, beta, gamma)
    me = alpha.identity()
    before = alpha.id
    alone = statement(me, me.fingerprint, 1, stranger("new"))
    by_itself = statement(me, me.fingerprint, 1, stranger("new"))
    by_itself.links[0].cosignatures.append(cosign(me, by_itself.links[0]))  # its own key twice is one signature
    by_stranger = statement(me, me.fingerprint, 1, stranger("new"))
    by_stranger.links[0].cosignatures.append(cosign(stranger("outsider"), by_stranger.links[0]))
    for peer in (beta, gamma):
        with channel(me, peer) as chan:
            for chain in (alone, by_itself, by_stranger):
                code, why = refused(lambda c=chain: kpb_grpc.KeysStub(chan).Rotate(c, timeout=scaled(10)))
                assert code == grpc.StatusCode.PERMISSION_DENIED and why == f"PermissionRefusedError: {UNCOSIGNED}"
        assert (peer.peer("alpha") or {}).get("id") == before

    rotated = alpha.json("keys", "rotate", "identity")
    assert rotated["cosigned_by"] in ("beta", "gamma") and rotated["id"] != before
    assert sorted(rotated["told"]) == ["beta", "gamma"] and rotated["behind"] == []
    for peer in (beta, gamma):  # no re-pairing: each moves its pin and sees alpha under its new ID
        wait_for(lambda p=peer: sees(p, "alpha", rotated["id"]), CONVERGE_S, f"{peer.name} to follow alpha")
    assert {p["name"] for p in beta.json("peers")} == {"alpha", "gamma"}


def test_a_member_cosigns_only_its_callers_own_rotation_and_never_for_a_removed_device(
    make_node: Callable[..., NodeProcess],
) -> None:
    alpha, beta, gamma = grid_of(make_node, "alpha", "beta", "gamma", grid=COSIGN)
    met(alpha, beta, gamma)
    mallory, victim = gamma.identity(), alpha.identity()  # gamma, a member turned hostile, wants alpha's key moved
    new = stranger("mallorys-key")
    for chain in (statement(victim, victim.fingerprint, 1, new), statement(mallory, victim.fingerprint, 1, new)):
        with channel(mallory, beta) as chan:
            code, why = refused(lambda c=chain: kpb_grpc.KeysStub(chan).Cosign(c.links[0], timeout=scaled(10)))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert (
            why
            == "PermissionRefusedError: a member co-signs only its caller's own key rotation: this one names another"
        )
    # Its own key, signed by a key beta does not pin for it: refused as a rotation would be.
    forged = statement(new, mallory.fingerprint, 1, new).links[0]
    with channel(mallory, beta) as chan:
        code, why = refused(lambda: kpb_grpc.KeysStub(chan).Cosign(forged, timeout=scaled(10)))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not signed by the key this node pins" in why

    own = statement(mallory, mallory.fingerprint, 1, new).links[0]
    alpha.cli("devices", "remove", "gamma")
    wait_for(lambda: beta.peer("gamma") is None, CONVERGE_S, "beta to drop gamma")
    with channel(mallory, beta) as chan:
        code, _ = refused(lambda: kpb_grpc.KeysStub(chan).Cosign(own, timeout=scaled(10)))
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)  # removed: no handler runs


def test_with_cosign_on_and_no_member_online_a_rotation_changes_nothing_and_says_why(
    make_node: Callable[..., NodeProcess],
) -> None:
    alpha, beta = grid_of(make_node, "alpha", "beta", grid=COSIGN)
    met(alpha, beta)
    before = alpha.id
    beta.stop()
    wait_for(lambda: not online(alpha, "beta"), CONVERGE_S, "alpha to see beta gone")
    result = alpha.cli("keys", "rotate", "identity", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "noizylab: error: this grid asks for a second member's signature on a key rotation (grid.rotation_cosign), "
        "and no member online gave one: rotate again when another member is online"
    )
    assert alpha.id == before and alpha.json("keys", "list")["identity"]["rotations"] == 0

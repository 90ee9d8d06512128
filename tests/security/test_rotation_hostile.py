"""A paired peer's key rotations as an attacker would send them: signed by a wrong key, for another node's key, or
replayed after a newer one, each is refused with one line and changes nothing; a genuine one is taken."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc
from noizylab_desktop.core.identity import Identity
from noizylab_desktop.core.rotation import signed_bytes
from tests.conftest import NodeProcess
from tests.security.hostile import Hostile, channel, stranger


def statement(signer: Identity, old_id: bytes, generation: int, new: Identity) -> kpb.RotationChain:
    """One identity rotation "``old_id`` -> ``new``'s key", signed by ``signer``."""
    anchor = x509.load_pem_x509_certificate(new.cert_pem).public_bytes(serialization.Encoding.DER)
    body = kpb.RotationBody(
        kind="identity", old_id=old_id, new_anchor=anchor, generation=generation, at=time.time()
    ).SerializeToString()
    return kpb.RotationChain(links=[kpb.SignedRotation(body=body, signature=signer.sign(signed_bytes(body)))])


def refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """The code and message a call is refused with; fails the test when it is taken."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code(), exc.details()  # type: ignore[attr-defined, no-any-return]
    raise AssertionError("the rotation was taken")


def ids(host: NodeProcess) -> dict[str, str]:
    return {p["name"]: p["id"] for p in host.json("peers")}


def test_forged_and_replayed_rotations_are_refused_and_a_genuine_one_is_taken(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory, carol = attacker(), attacker(name="carol")
    keys = mallory.stub(kpb_grpc.KeysStub)
    me, new = mallory.identity, stranger("new")
    before = ids(host)

    # Signed by a key that is not the one the host pins for mallory.
    code, why = refused(lambda: keys.Rotate(statement(new, me.fingerprint, 1, new), timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "not signed by the key this node pins" in why
    # Another node's key: mallory cannot move carol, even with a statement carol's own key signed.
    for signer in (me, carol.identity):
        code, why = refused(lambda s=signer: keys.Rotate(statement(s, carol.identity.fingerprint, 1, new), timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "only its own key" in why, why
    assert ids(host) == before

    # A genuine rotation: the host pins mallory's new key under its new ID, and carol is untouched.
    genuine = statement(me, me.fingerprint, 2, new)
    assert keys.Rotate(genuine, timeout=10).id == new.node_id
    assert ids(host) == {"mallory": new.node_id, "carol": carol.identity.node_id}

    # Replayed over the old key: that key is no longer let in at all.
    code, _ = refused(lambda: keys.Rotate(genuine, timeout=10))
    assert code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)
    with channel(new, host) as chan:
        now = kpb_grpc.KeysStub(chan)
        # Replayed over the new key: named as a replay.
        code, why = refused(lambda: now.Rotate(genuine, timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "replayed" in why and "already moved" in why
        # An older generation, even signed by the key pinned now: a replay too.
        code, why = refused(lambda: now.Rotate(statement(new, new.fingerprint, 1, stranger("other")), timeout=10))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "generation 1 is not newer than 2" in why
    assert ids(host) == {"mallory": new.node_id, "carol": carol.identity.node_id}

"""Homes made when IDs were certificate hashes migrate once on start: each node is named by its key, keeps its
peers and what they may do, and still talks to a peer that has not upgraded yet (a rolling upgrade)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.pairing import fetch_certificate
from noizylab_desktop.core.transport import CHANNEL_OPTIONS
from tests.conftest import NodeProcess, wait_for
from tests.legacy_home import OldIdentity, old_identity, old_pairing, write_old_home


def key_id(identity: OldIdentity) -> str:
    return format_id(fingerprint(identity.cert_der))


def test_two_old_homes_migrate_and_keep_their_pairing_and_permissions(make_node: Callable[..., NodeProcess]) -> None:
    alpha, beta = make_node("alpha"), make_node("beta")
    old_alpha, old_beta = old_identity("alpha"), old_identity("beta")
    write_old_home(beta, old_beta)
    old_pairing(beta, old_alpha, "alpha", [], "tasks")  # beta lets alpha run tasks; it learns alpha's address
    beta.start()
    write_old_home(alpha, old_alpha)
    old_pairing(alpha, old_beta, "beta", [beta.grpc_address])
    alpha.start()

    assert alpha.id == key_id(old_alpha) != old_alpha.old_id
    assert beta.id == key_id(old_beta) != old_beta.old_id
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
    wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
    assert [(p["id"], p["name"]) for p in beta.json("peers")] == [(alpha.id, "alpha")]
    assert alpha.cli("run", "--on", "beta", "--", "echo", "still allowed").stdout.strip() == "still allowed"
    # The migration ran once: a restart finds the same IDs and the same peers.
    beta.stop()
    beta.start()
    assert beta.id == key_id(old_beta)
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online again")
    assert alpha.cli("run", "--on", "beta", "--", "echo", "again").stdout.strip() == "again"


class OldNode(pb_grpc.NodeServicer):
    """The peer-facing Node service of a peer that has not upgraded: like the old Guard, it lets in only the very
    certificate it pinned (by its SHA-256); once "upgraded", it pins the key instead and says so in its answers."""

    def __init__(self, me: OldIdentity, peer: OldIdentity) -> None:
        self.me = me
        self.peer = peer
        self.upgraded = False
        self.shown: list[bytes] = []  # the certificates callers showed, in order

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatReply:  # noqa: N802
        pem = context.auth_context()["x509_pem_cert"][0]
        der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        self.shown.append(der)
        if self.upgraded:
            known = fingerprint(der) == fingerprint(self.peer.cert_der)
        else:
            known = hashlib.sha256(der).digest() == self.peer.old_fp
        if not known:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "this node is not paired with you")
        me = key_id(self.me) if self.upgraded else self.me.old_id
        return pb.HeartbeatReply(id=me, received_at=time.time(), pins_keys=self.upgraded)

    def GetInfo(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.NodeInfo:  # noqa: N802
        return pb.NodeInfo(id=self.me.old_id, name="beta")


@pytest.fixture
def old_beta() -> OldIdentity:
    return old_identity("beta")


@pytest.fixture
def old_alpha() -> OldIdentity:
    return old_identity("alpha")


@pytest.fixture
def old_node(old_beta: OldIdentity, old_alpha: OldIdentity) -> Iterator[tuple[OldNode, str]]:
    """beta, not upgraded, paired with alpha (both made by the old version), listening on loopback."""
    service = OldNode(old_beta, old_alpha)
    server = grpc.server(ThreadPoolExecutor(4))
    pb_grpc.add_NodeServicer_to_server(service, server)
    creds = grpc.ssl_server_credentials(
        [(old_beta.key_pem, old_beta.cert_pem)], root_certificates=old_alpha.cert_pem, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield service, f"127.0.0.1:{port}"
    server.stop(None)


def test_a_migrated_node_and_a_peer_not_yet_upgraded_still_talk_both_ways(
    make_node: Callable[..., NodeProcess], old_alpha: OldIdentity, old_beta: OldIdentity, old_node: tuple[OldNode, str]
) -> None:
    beta, beta_address = old_node
    alpha = make_node("alpha")
    write_old_home(alpha, old_alpha)
    old_pairing(alpha, old_beta, "beta", [beta_address])
    alpha.start()

    # alpha -> old beta: alpha shows the old certificate the old beta pinned by hash.
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see the old beta online")
    assert alpha.peer("beta")["id"] == key_id(old_beta)  # type: ignore[index]
    assert set(beta.shown) == {old_alpha.cert_der}

    # old beta -> alpha: beta pins alpha's old certificate as its root, and alpha's renewing certificate chains to
    # it (the old certificate is alpha's anchor now).
    shown = x509.load_der_x509_certificate(asyncio.run(fetch_certificate(alpha.grpc_address)))
    assert shown.public_bytes(serialization.Encoding.DER) != old_alpha.cert_der
    assert shown.issuer == x509.load_pem_x509_certificate(old_alpha.cert_pem).subject
    creds = grpc.ssl_channel_credentials(
        root_certificates=old_alpha.cert_pem, private_key=old_beta.key_pem, certificate_chain=old_beta.cert_pem
    )
    port = int(beta_address.rsplit(":", 1)[1])
    with grpc.secure_channel(alpha.grpc_address, creds, options=CHANNEL_OPTIONS) as channel:
        reply = pb_grpc.NodeStub(channel).Heartbeat(
            pb.HeartbeatRequest(sender_id=old_beta.old_id, grpc_port=port, sent_at=time.time()), timeout=5
        )
    assert reply.id == alpha.id and reply.pins_keys

    # beta upgrades: it pins keys now and says so; alpha shows it its renewing certificate from then on.
    beta.upgraded = True
    wait_for(
        lambda: beta.shown[-1] != old_alpha.cert_der and fingerprint(beta.shown[-1]) == fingerprint(old_alpha.cert_der),
        what="alpha to show the upgraded beta its renewing certificate",
    )
    assert (alpha.peer("beta") or {}).get("online")

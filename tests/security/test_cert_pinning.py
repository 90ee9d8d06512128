"""Peers are pinned by key: only a valid, current certificate of a paired key, signed by that key's anchor, gets in.

A paired attacker holds its own key (it is a real paired node) and shows the host certificates of its own making;
the host must refuse every one that is expired, signed by another key, or of another key claiming its name.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.identity import TLS_NAME, issue_leaf
from noizylab_desktop.core.transport import CHANNEL_OPTIONS
from tests.conftest import NodeProcess
from tests.security.hostile import Hostile


def _health(target: NodeProcess, key_pem: bytes, chain_pem: bytes) -> grpc.StatusCode:
    """How ``target`` answers Health from a client that shows ``chain_pem`` (and holds ``key_pem``)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=target.identity().cert_pem, private_key=key_pem, certificate_chain=chain_pem
    )
    with grpc.secure_channel(target.grpc_address, creds, options=CHANNEL_OPTIONS) as channel:
        try:
            pb_grpc.NodeStub(channel).Health(pb.Empty(), timeout=5)
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    public: ec.EllipticCurvePublicKey, subject: x509.Name, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey
) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        .sign(signer, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def test_a_fresh_certificate_of_the_pinned_key_gets_in_and_an_expired_one_does_not(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory = attacker().identity
    now = time.time()
    fresh = issue_leaf(mallory.cert_pem, mallory.key_pem, now, 600)
    assert _health(host, mallory.key_pem, fresh + mallory.cert_pem) == grpc.StatusCode.OK
    # Issued two hours ago for a minute: right key, right signature, past its end.
    expired = issue_leaf(mallory.cert_pem, mallory.key_pem, now - 7200, 60)
    assert _health(host, mallory.key_pem, expired + mallory.cert_pem) == grpc.StatusCode.UNAVAILABLE
    assert _health(host, mallory.key_pem, expired) == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_the_pinned_key_that_its_anchor_did_not_sign_is_refused(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory = attacker().identity
    anchor = x509.load_pem_x509_certificate(mallory.cert_pem)
    key = x509.load_pem_x509_certificate(mallory.cert_pem).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    other = ec.generate_private_key(ec.SECP256R1())
    # Mallory's own key and the name of its anchor as issuer, but the signature is another key's.
    forged = _certificate(key, x509.Name.from_rfc4514_string("CN=noizylab-forged"), anchor.subject, other)
    assert _health(host, mallory.key_pem, forged + mallory.cert_pem) == grpc.StatusCode.UNAVAILABLE


def test_another_key_that_claims_a_paired_nodes_name_and_anchor_is_refused(
    host: NodeProcess, attacker: Callable[..., Hostile]
) -> None:
    mallory = attacker().identity
    anchor = x509.load_pem_x509_certificate(mallory.cert_pem)
    impostor = ec.generate_private_key(ec.SECP256R1())
    # The impostor copies the anchor's subject and issues itself a certificate "from" it, and sends the real anchor
    # along: only a key the host pinned can sign under that anchor.
    claimed = _certificate(impostor.public_key(), anchor.subject, anchor.subject, impostor)
    issued = _certificate(
        impostor.public_key(), x509.Name.from_rfc4514_string("CN=noizylab-x"), anchor.subject, impostor
    )
    for chain in (claimed, claimed + mallory.cert_pem, issued + mallory.cert_pem):
        assert _health(host, _key_pem(impostor), chain) == grpc.StatusCode.UNAVAILABLE
    # The paired node itself, with its own key, still gets in.
    assert _health(host, mallory.key_pem, mallory.cert_pem) == grpc.StatusCode.OK

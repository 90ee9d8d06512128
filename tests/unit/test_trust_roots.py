"""The trust roots the gRPC port gets hold one certificate per subject, so no certificate crowds out another."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from noizylab_desktop.core.identity import make_certificate
from noizylab_desktop.core.trust import TrustStore


def _old_style_certificate(host: str) -> x509.Certificate:
    """A certificate as earlier versions made it: subject ``CN=noizylab, O=<host>``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "noizylab"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, host)]
    )
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
    builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now)
    return builder.not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())


def _roots(store: TrustStore) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(store.snapshot.roots_pem)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_new_certificates_all_become_roots(tmp_path: Path) -> None:
    own = make_certificate("studio")[0]
    store = TrustStore(tmp_path / "trust.sqlite", own)
    for _ in range(2):
        store.add(_der(x509.load_pem_x509_certificate(make_certificate("studio")[0])), "studio", "", [])
    assert len(_roots(store)) == 3 and store.snapshot.shadowed == ()
    store.close()


def test_a_peer_with_this_nodes_old_subject_is_a_root_and_this_node_is_not(tmp_path: Path) -> None:
    own, peer = _old_style_certificate("studio"), _old_style_certificate("studio")
    store = TrustStore(tmp_path / "trust.sqlite", own.public_bytes(serialization.Encoding.PEM))
    store.add(_der(peer), "studio", "", [])
    assert _roots(store) == [peer]
    assert store.snapshot.shadowed == ()
    store.close()


def test_two_peers_with_one_old_subject_keep_the_first_and_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = make_certificate("here")[0]
    first, second = _old_style_certificate("studio"), _old_style_certificate("studio")
    store = TrustStore(tmp_path / "trust.sqlite", own)
    store.add(_der(first), "studio", "", [])
    with caplog.at_level(logging.WARNING, logger="noizylab_desktop.core.trust"):
        store.add(_der(second), "studio", "", [])
    assert _roots(store)[1:] == [first]
    [(kept, hidden)] = store.snapshot.shadowed
    assert (kept.name, hidden.name) == ("studio", "studio-2")
    [line] = [r.getMessage() for r in caplog.records]
    assert kept.node_id in line and hidden.node_id in line and "pair it again" in line
    store.close()

"""The per-cluster CA (``services/dask/ca.py``): what it signs opens TLS to its own cluster only, names the member,
its role and the cluster, and lives as long as ``[dask] cert_lifetime_h`` says."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from noizylab_desktop.core.errors import DaskError
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.dask.ca import ClusterCA, csr_for, key_pem, new_key
from noizylab_desktop.services.dask.settings import DaskSettings

NODE_ID = "AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD-EEEEEEE-FFFFFFF-GGGGGGG-HHHHHHH"


def issued_to(ca: ClusterCA, role: str, node_id: str = NODE_ID) -> tuple[x509.Certificate, bytes]:
    """A certificate ``ca`` signs from a member's request, and the member's key (PEM), as a worker gets them."""
    key = new_key()
    issued = ca.issue(csr_for(key), node_id, role)
    return x509.load_pem_x509_certificate(issued.cert_pem), key_pem(key)


def test_a_certificate_it_issues_verifies_against_its_ca_and_names_the_member_role_and_cluster() -> None:
    ca = ClusterCA(lifetime_h=1)

    cert, _ = issued_to(ca, "worker")

    cert.verify_directly_issued_by(ca.cert)
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == NODE_ID
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "worker"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ca.cluster_id
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # The CA may sign leaves only: no intermediate can hang below it.
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


def test_the_scheduler_s_own_certificate_names_its_role_and_verifies_too() -> None:
    ca = ClusterCA(lifetime_h=1)

    issued, key = ca.issue_own(NODE_ID, "scheduler")

    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "scheduler"
    assert serialization.load_pem_private_key(key, None).public_key() == cert.public_key()


def test_a_certificate_from_another_cluster_s_ca_does_not_verify() -> None:
    ours, theirs = ClusterCA(lifetime_h=1), ClusterCA(lifetime_h=1)

    cert, _ = issued_to(theirs, "client")

    with pytest.raises(ValueError):  # another issuer: the name differs, and so would the signature
        cert.verify_directly_issued_by(ours.cert)


def _handshake(tmp_path: Path, ca: ClusterCA, server: ClusterCA, client: ClusterCA) -> None:
    """A TLS handshake as ``distributed`` makes one (both sides present a certificate, both check it against
    ``ca``; no host name check), in memory; raises ``ssl.SSLError`` when either side refuses."""
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    contexts = []
    for side, issuer, purpose in (
        ("server", server, ssl.Purpose.CLIENT_AUTH),
        ("client", client, ssl.Purpose.SERVER_AUTH),
    ):
        cert, key = issued_to(issuer, "worker")
        (tmp_path / f"{side}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key)
        context = ssl.create_default_context(purpose, cafile=str(tmp_path / "ca.pem"))
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(tmp_path / f"{side}.pem"))
        contexts.append(context)
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in contexts]
    ends = [
        contexts[0].wrap_bio(*pipes[0], server_side=True),
        contexts[1].wrap_bio(*pipes[1], server_side=False),
    ]
    done = [False, False]
    for _ in range(20):
        for i, end in enumerate(ends):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        # What each side wrote goes to the other's incoming pipe.
        pipes[1][0].write(pipes[0][1].read())
        pipes[0][0].write(pipes[1][1].read())
        if all(done):
            return
    raise AssertionError("the handshake did not finish")


def test_two_members_of_one_cluster_complete_a_mutual_tls_handshake(tmp_path: Path) -> None:
    ca = ClusterCA(lifetime_h=1)

    _handshake(tmp_path, ca, server=ca, client=ca)


def test_a_client_certified_by_another_cluster_is_refused_at_the_handshake(tmp_path: Path) -> None:
    ca, stranger = ClusterCA(lifetime_h=1), ClusterCA(lifetime_h=1)

    with pytest.raises(ssl.SSLError):
        _handshake(tmp_path, ca, server=ca, client=stranger)


def test_the_lifetime_is_the_one_the_settings_give_and_every_certificate_ends_with_the_ca() -> None:
    settings = parse_section(DaskSettings, {"cert_lifetime_h": 3.5}, env={})
    before = dt.datetime.now(dt.UTC)

    ca = ClusterCA(settings.cert_lifetime_h)
    cert, _ = issued_to(ca, "worker")

    after = dt.datetime.now(dt.UTC)
    lifetime = dt.timedelta(hours=3.5)
    second = dt.timedelta(seconds=1)  # X.509 times have whole seconds
    assert before + lifetime - second <= ca.cert.not_valid_after_utc <= after + lifetime
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc
    assert ca.expires_at == pytest.approx((before + lifetime).timestamp(), abs=(after - before).total_seconds() + 1)
    # Valid from a little before now: a member whose clock lags the scheduler's still accepts it.
    assert before - dt.timedelta(minutes=10) < cert.not_valid_before_utc < before


def test_the_default_lifetime_is_a_day() -> None:
    assert parse_section(DaskSettings, {}, env={}).cert_lifetime_h == 24.0


def test_a_bad_request_is_refused_in_one_line() -> None:
    ca = ClusterCA(lifetime_h=1)
    p384 = ec.generate_private_key(ec.SECP384R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(p384, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )

    with pytest.raises(DaskError, match="P-256"):
        ca.issue(request, NODE_ID, "worker")
    with pytest.raises(DaskError, match="no such role"):
        ca.issue(csr_for(new_key()), NODE_ID, "admin")
    with pytest.raises(DaskError, match="not a PEM"):
        ca.issue(b"not a request", NODE_ID, "worker")

"""Two machines with the same host name pair and then see each other online, and a name never means two nodes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from noizylab_desktop.core.config import Paths, atomic_write, load_settings
from noizylab_desktop.core.identity import TLS_KEY, keychain_vault, make_certificate
from tests.conftest import NodeProcess, start_all, wait_for


def _old_style_identity(node: NodeProcess, host: str) -> None:
    """Give ``node`` the certificate an earlier version made: subject ``CN=noizylab, O=<host>``, as on every
    machine with that host name."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "noizylab"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, host)]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("noizylab")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Paths.resolve(node.home)
    paths.ensure()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keychain_vault(paths, load_settings(paths)).set(TLS_KEY, key_pem)
    atomic_write(paths.cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _sees_online(node: NodeProcess) -> bool:
    return [p["online"] for p in node.json("peers")] == [True]


def test_new_certificates_of_machines_with_one_host_name_have_different_subjects() -> None:
    first, second = (x509.load_pem_x509_certificate(make_certificate("studio")[0]) for _ in range(2))
    assert first.subject != second.subject


def test_two_nodes_with_the_same_name_pair_and_see_each_other_online(make_node: Callable[..., NodeProcess]) -> None:
    alpha, beta = start_all(make_node("studio", home="a"), make_node("studio", home="b"))
    beta.join(alpha.invite())
    wait_for(lambda: _sees_online(alpha), what="alpha to see beta online")
    wait_for(lambda: _sees_online(beta), what="beta to see alpha online")
    assert [p["name"] for p in alpha.json("peers")] == ["studio-2"]


def test_old_certificates_with_one_subject_still_connect(make_node: Callable[..., NodeProcess]) -> None:
    alpha, beta = make_node("studio", home="a"), make_node("studio", home="b")
    for node in (alpha, beta):
        _old_style_identity(node, "studio")
    assert alpha.identity().node_id != beta.identity().node_id
    start_all(alpha, beta)
    beta.join(alpha.invite())
    wait_for(lambda: _sees_online(alpha), what="alpha to see beta online")
    wait_for(lambda: _sees_online(beta), what="beta to see alpha online")
    # Each one's own command line still gets in, although a peer's certificate shares its subject.
    assert alpha.status()["peers"][0]["id"] == beta.id and beta.status()["peers"][0]["id"] == alpha.id


def test_a_name_that_is_this_nodes_and_a_peers_runs_nowhere(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    alpha.stop()
    config = alpha.home / "config.toml"
    config.write_text(config.read_text().replace('name = "alpha"', 'name = "beta"'))
    alpha.start()
    result = alpha.cli("run", "--on", "beta", "--", "echo", "ran", check=False)
    assert result.returncode == 1 and "ran" not in result.stdout, result.stdout
    assert result.stderr.strip() == (
        f"noizylab: error: 'beta' names this node ({alpha.id}) and the peer {beta.id}: name one by its ID, "
        "or this node as `self`"
    )
    assert alpha.cli("run", "--on", "self", "--", "echo", "ran").stdout.strip() == "ran"

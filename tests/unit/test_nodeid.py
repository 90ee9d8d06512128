"""Node IDs are the SHA-256 of the node's public key in grouped base32 with check characters."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.errors import PeerError
from noizylab_desktop.core.identity import issue_leaf, make_certificate
from noizylab_desktop.core.nodeid import fingerprint, format_id, legacy_fingerprint, parse_id, short_id


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_an_id_is_eight_groups_of_seven_and_round_trips() -> None:
    anchor, key = make_certificate("here")
    spki = (
        serialization.load_pem_private_key(key, None)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    fp = fingerprint(_der(anchor))
    node_id = format_id(fp)
    groups = node_id.split("-")
    assert [len(g) for g in groups] == [7] * 8
    assert parse_id(node_id) == fp == hashlib.sha256(spki).digest()
    assert parse_id(node_id.lower().replace("-", " ")) == fp
    assert short_id(node_id) == groups[0]


def test_every_certificate_of_one_key_names_the_same_node_and_another_key_another() -> None:
    anchor, key = make_certificate("here")
    leaves = [issue_leaf(anchor, key, 1000.0 * n, 60) for n in (1, 2)]
    assert {fingerprint(_der(pem)) for pem in (anchor, *leaves)} == {fingerprint(_der(anchor))}
    assert fingerprint(_der(make_certificate("here")[0])) != fingerprint(_der(anchor))
    # The IDs nodes had before: one per certificate.
    assert len({legacy_fingerprint(_der(pem)) for pem in (anchor, *leaves)}) == 3


def test_a_damaged_certificate_names_no_node() -> None:
    with pytest.raises(PeerError, match="damaged"):
        fingerprint(b"not a certificate")


def test_a_single_mistyped_character_is_caught_by_the_checks() -> None:
    node_id = format_id(hashlib.sha256(b"x").digest())
    for position in range(len(node_id)):
        if node_id[position] == "-":
            continue
        replacement = "A" if node_id[position] != "A" else "B"
        typo = node_id[:position] + replacement + node_id[position + 1 :]
        with pytest.raises(PeerError, match="typo"):
            parse_id(typo)


def test_text_that_is_not_an_id_gets_a_one_line_error() -> None:
    with pytest.raises(PeerError) as caught:
        parse_id("hello")
    assert "\n" not in caught.value.message

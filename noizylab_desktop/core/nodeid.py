"""Node IDs: SHA-256 of the node's public key (its DER SubjectPublicKeyInfo), written as grouped base32 with
check characters.

The ID names the key, not one certificate, so the node's TLS certificate can be short-lived and renewed without
its peers noticing (``docs/trust.md``). Nodes made before this were named by their certificate's SHA-256
(``legacy_fingerprint``); ``core/id_migration.py`` maps those IDs to key IDs once.

The layout follows Syncthing's device IDs: 52 base32 characters, cut into four runs of 13, each followed by a
Luhn mod-32 check character, then shown in groups of seven. A mistyped character is caught by the checks.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from noizylab_desktop.core.errors import PeerError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def fingerprint(cert_der: bytes) -> bytes:
    """The 32-byte SHA-256 of the public key in a certificate: the same for every certificate of one key."""
    return _spki_fingerprint(bytes(cert_der))


@functools.lru_cache(maxsize=256)
def _spki_fingerprint(cert_der: bytes) -> bytes:
    # The same few peers' certificates come back on every guarded call: parse each once. cryptography is imported
    # here, not at the top: the command line's grammar imports this module and must stay light (test_cli_imports).
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        key = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError as exc:
        raise PeerError("a damaged certificate names no node") from exc
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def legacy_fingerprint(cert_der: bytes) -> bytes:
    """The ID a node had before IDs named keys: the SHA-256 of one certificate's DER."""
    return hashlib.sha256(cert_der).digest()


def _luhn32(text: str) -> str:
    factor, total, n = 1, 0, len(_ALPHABET)
    for char in text:
        addend = factor * _ALPHABET.index(char)
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return _ALPHABET[(n - total % n) % n]


def format_id(fp: bytes) -> str:
    """``fp`` as ``XXXXXXX-XXXXXXX-...`` (8 groups of 7)."""
    raw = base64.b32encode(fp).decode().rstrip("=")
    checked = "".join(raw[i : i + 13] + _luhn32(raw[i : i + 13]) for i in range(0, 52, 13))
    return "-".join(checked[i : i + 7] for i in range(0, 56, 7))


def parse_id(text: str) -> bytes:
    """The fingerprint in a formatted node ID; a typo gives a one-line error."""
    clean = text.strip().upper().replace("-", "").replace(" ", "")
    if len(clean) != 56 or any(c not in _ALPHABET for c in clean):
        raise PeerError(f"{text!r} is not a node ID: expect 8 groups of 7 letters and digits 2-7")
    runs = [clean[i : i + 14] for i in range(0, 56, 14)]
    if any(_luhn32(run[:13]) != run[13] for run in runs):
        raise PeerError(f"node ID {text!r} has a typo: its check characters do not match")
    return base64.b32decode("".join(run[:13] for run in runs) + "====")


def short_id(node_id: str) -> str:
    """The first group of a node ID, for log lines and menus."""
    return node_id.split("-", 1)[0]

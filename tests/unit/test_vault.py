"""Secrets live in the real Secret Service (gnome-keyring); large ones are sealed on disk under a stored key."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import KeychainError
from noizylab_desktop.core.secrets import DIRECT_LIMIT, WINDOWS_BLOB_CAP, KeyringStore, Vault


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(KeyringStore(uuid.uuid4().hex), tmp_path / "vault")


def test_a_small_secret_goes_to_the_keychain_and_not_to_disk(vault: Vault) -> None:
    vault.set("tls-key", b"small secret")
    assert vault.get("tls-key") == b"small secret"
    assert vault.store.get("tls-key") == b"small secret"
    assert not vault.folder.exists() or not any(vault.folder.iterdir())


def test_a_large_secret_is_sealed_on_disk_under_a_key_in_the_keychain(vault: Vault) -> None:
    big = os.urandom(3000) + b"RECOGNISABLE-PLAINTEXT" * 50
    vault.set("big", big)
    assert vault.get("big") == big
    assert vault.store.get("big") is None
    key = vault.store.get("big.wrap")
    assert key is not None and len(key) == 32
    sealed = (vault.folder / "big.sealed").read_bytes()
    assert b"RECOGNISABLE-PLAINTEXT" not in sealed


def test_a_tampered_sealed_secret_is_refused(vault: Vault) -> None:
    vault.set("big", b"x" * 4000)
    blob = vault.folder / "big.sealed"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(KeychainError, match="does not match"):
        vault.get("big")


def test_delete_forgets_both_kinds(vault: Vault) -> None:
    vault.set("small", b"s")
    vault.set("big", b"b" * 4000)
    vault.delete("small")
    vault.delete("big")
    assert vault.get("small") is None and vault.get("big") is None


def test_different_homes_do_not_see_each_others_secrets(tmp_path: Path) -> None:
    one, two = KeyringStore(uuid.uuid4().hex), KeyringStore(uuid.uuid4().hex)
    one.set("tls-key", b"one")
    assert two.get("tls-key") is None


def test_what_goes_straight_into_the_keychain_fits_windows_credential_manager(vault: Vault) -> None:
    # keyring's WinVaultKeyring stores our base64 text as UTF-16; the Credential Manager holds at most 2,560 bytes.
    # Wine does not enforce that cap, so the Windows tier cannot show it: the arithmetic is checked here.
    largest_direct = os.urandom(DIRECT_LIMIT)
    assert len(base64.b64encode(largest_direct).decode().encode("utf-16-le")) <= WINDOWS_BLOB_CAP
    vault.set("edge", largest_direct)
    assert vault.store.get("edge") == largest_direct
    vault.set("over", os.urandom(DIRECT_LIMIT + 1))
    assert vault.store.get("over") is None and vault.store.get("over.wrap") is not None

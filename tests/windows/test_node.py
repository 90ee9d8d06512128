"""A node on Windows: started detached, one per home through the msvcrt lock, its status, stop; its identity sealed
in the Credential Manager (WinVaultKeyring), with secrets too large for it wrapped on disk."""

from __future__ import annotations

import errno
import json
import os
import platform
import sys
from collections.abc import Callable

import keyring
import psutil
import pytest

from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.secrets import KeyringStore, Vault
from tests.conftest import NOIZYLAB, NodeProcess, wait_for
from tests.windows.conftest import WINE_DIFFERENCE, under_wine


def test_the_interpreter_is_pythonorg_windows_cpython() -> None:
    assert sys.platform == "win32" and os.name == "nt"
    assert platform.python_implementation() == "CPython" and sys.version_info[:2] == (3, 12)
    assert "MSC" in sys.version and "AMD64" in sys.version  # python.org's build, not MinGW or Cygwin


@pytest.mark.windows_smoke
def test_a_detached_node_runs_once_per_home_reports_its_status_and_stops(make_node: Callable[..., NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    status = alpha.status()
    assert status["name"] == "alpha" and status["peers"] == [] and status["ports"]["grpc"] > 0
    assert set(status["ports"]) == {"grpc", "sftp", "http"}
    pid = alpha.pid
    assert psutil.Process(pid).is_running()
    again = alpha.cli("start", check=False)
    assert again.returncode == 1 and "already running" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    alpha.cli("stop")
    wait_for(lambda: not psutil.pid_exists(pid), what="the node process to exit")
    stopped = alpha.cli("status", "--json", check=False)
    assert stopped.returncode == 1 and json.loads(stopped.stdout)["running"] is False


@pytest.mark.windows_smoke
def test_the_instance_lock_is_an_msvcrt_lock_another_process_cannot_take(
    make_node: Callable[..., NodeProcess],
) -> None:
    import msvcrt
    import subprocess

    alpha = make_node("alpha").start()
    lock_file = Paths.resolve(alpha.home).lock_file
    with open(lock_file, "a+b") as handle:
        with pytest.raises(OSError) as refused:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    # Windows refuses with EACCES; Wine with [Errno 0] (WINDOWS.md): both are an OSError, which is what the lock uses.
    assert refused.value.errno in ((errno.EACCES, 0) if under_wine() else (errno.EACCES,)), WINE_DIFFERENCE
    # A second node in the foreground, past `start`'s own check, is refused by the lock itself.
    second = subprocess.run([*NOIZYLAB, "--home", str(alpha.home), "node"], capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1].startswith("noizylab: error: a node is already running for ")


@pytest.mark.windows_smoke
def test_the_identity_is_sealed_in_the_credential_manager(make_node: Callable[..., NodeProcess]) -> None:
    from keyring.backends.Windows import WinVaultKeyring

    assert isinstance(keyring.get_keyring(), WinVaultKeyring)
    alpha = make_node("alpha").start()
    node_id = alpha.status()["id"]
    alpha.stop()
    paths = Paths.resolve(alpha.home)
    settings = load_settings(paths)
    store = KeyringStore(settings.keychain_id)
    assert store.get("tls-key") is not None, "the node's TLS key is in the Credential Manager"
    key_pem = store.get("tls-key") or b""
    on_disk = b"".join(p.read_bytes() for p in alpha.home.rglob("*") if p.is_file())
    assert b"PRIVATE KEY" not in on_disk and key_pem not in on_disk
    assert alpha.identity().node_id == node_id  # read back from the vault, the same identity
    assert alpha.start().status()["id"] == node_id


def test_a_secret_over_2560_bytes_is_wrapped_on_disk_under_a_key_in_the_credential_manager(
    make_node: Callable[..., NodeProcess],
) -> None:
    alpha = make_node("alpha")
    paths = Paths.resolve(alpha.home)
    store = KeyringStore(load_settings(paths).keychain_id)
    vault = Vault(store, paths.vault_dir)
    secret = os.urandom(4000)
    vault.set("large", secret)
    try:
        assert vault.get("large") == secret
        assert Vault(KeyringStore(load_settings(paths).keychain_id), paths.vault_dir).get("large") == secret
        assert store.get("large") is None and len(store.get("large.wrap") or b"") == 32
        assert (paths.vault_dir / "large.sealed").stat().st_size == 12 + 4000 + 16
    finally:
        vault.delete("large")
    assert vault.get("large") is None and store.get("large.wrap") is None


@pytest.mark.windows_smoke
def test_the_credential_manager_is_taken_by_name_without_loading_the_other_keychains_and_a_chosen_one_wins() -> None:
    import subprocess

    probe = (
        "import sys, keyring\n"
        "from noizylab_desktop.core.secrets import KeyringStore\n"
        "try:\n"
        "    KeyringStore('probe')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "print(type(keyring.get_keyring()).__module__, type(keyring.get_keyring()).__name__)\n"
        "print(sorted(m for m in ('secretstorage', 'jeepney', 'keyring.backends.SecretService') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    # keyring's discovery would import every backend to rank them, the Secret Service's D-Bus stack included.
    assert plain.stdout.splitlines() == ["keyring.backends.Windows WinVaultKeyring", "[]"], plain.stderr
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    # The person's choice is kept (and a keychain that stores nothing is refused, as everywhere).
    assert chosen.stdout.splitlines() == ["KeychainError", "keyring.backends.null Keyring", "[]"], chosen.stderr

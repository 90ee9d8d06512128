"""Private keys live only in the OS keychain (gnome-keyring's Secret Service here), never in plain files."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.conftest import NOIZYLAB, NodeProcess


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_the_node_key_is_in_the_keychain_and_nowhere_in_its_home(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    identity = alpha.identity()
    key = serialization.load_pem_private_key(identity.key_pem, password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ssh_body = b"".join(identity.ssh_private_pem.splitlines()[1:-1])
    everything = _all_bytes(alpha.home)
    assert b"PRIVATE KEY" not in everything
    for secret in (identity.key_pem, der, base64.b64encode(der), ssh_body):
        assert secret not in everything
    assert (alpha.home / "state" / "node-cert.pem").read_bytes() == identity.cert_pem


def test_without_a_keychain_the_node_refuses_with_one_line_and_writes_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "GNOME_KEYRING_CONTROL")}
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path}/no-bus"
    home = tmp_path / "home"
    for args in (["id"], ["node", "--port", "0"]):
        result = subprocess.run(
            [*NOIZYLAB, "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert result.returncode == 1, result.stdout
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("noizylab: error: no OS keychain is available")
        # What to install or start, not the name of a class inside the keyring library.
        assert "install gnome-keyring or KWallet and start it" in last and "Keyring)" not in last, last
        assert "Traceback" not in result.stderr
    assert not (home / "state" / "node-cert.pem").exists()
    assert b"PRIVATE KEY" not in _all_bytes(home)


CHURN_SCRIPT = """
import json, threading
from noizylab_desktop.core.secrets import KeyringStore

reader, writer = KeyringStore("replaced-while-read"), KeyringStore("replaced-while-read")
stop = threading.Event()
rounds = 0

def rotate():
    global rounds
    while not stop.is_set():
        writer.set("tls-key", b"rotated")
        writer.delete("tls-key")
        rounds += 1

rotating = threading.Thread(target=rotate)
rotating.start()
seen = set()
try:
    while rounds < 40 and rotating.is_alive():
        seen.add(reader.get("tls-key"))
finally:
    stop.set()
    rotating.join()
print(json.dumps({"rounds": rounds, "seen": sorted(repr(s) for s in seen)}))
"""


def private_keyring(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run in a private keyring of its own (scripts/with-keyring.sh, whose keeper starts a dead daemon
    again): what it does to its daemon must not reach the suite's shared one, nor the other tests using it."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOIZYLAB_IN_TEST_KEYRING", "DBUS_SESSION_BUS_ADDRESS")}
    repo = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [str(repo / "scripts" / "with-keyring.sh"), NOIZYLAB[0], "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=180,
    )


def test_a_secret_replaced_while_it_is_read_is_read_whole_or_not_at_all() -> None:
    """A key rotated by one process while another reads it: gnome-keyring's search named an item that was gone by
    the read, and the reader failed with "Item does not exist!" (a node start failed so in CI); under load the same
    churn made gnome-keyring abort now and then (a GLib assertion), stopping every node of the suite's keyring.
    Calls on one node's items are now serialised across processes (a shared lock to read, an exclusive one to
    write), so neither happens: the daemon lives through the churn."""
    result = private_keyring(CHURN_SCRIPT)
    assert result.returncode == 0, result.stderr
    told = json.loads(result.stdout)
    assert told["rounds"] >= 40 and set(told["seen"]) <= {"None", "b'rotated'"}, told
    assert "gnome-keyring-daemon ended" not in result.stderr, result.stderr


RESTART_SCRIPT = """
import os, signal, sys
from pathlib import Path
from noizylab_desktop.core.secrets import KeyringStore

store = KeyringStore("restart-test")
store.set("tls-key", b"kept across a restart")
pid = int(Path(os.environ["XDG_RUNTIME_DIR"], "gnome-keyring.pid").read_text())
os.kill(pid, signal.SIGKILL)  # the daemon dies between two calls, as it did mid-run in CI
print(store.get("tls-key").decode())
"""


def test_a_secret_service_that_dies_mid_run_is_asked_again_once_it_is_back(tmp_path: Path) -> None:
    result = private_keyring(RESTART_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kept across a restart"
    assert "gnome-keyring-daemon ended (status 137) before the command did; starting it again" in result.stderr


ABSENT_AT_START_SCRIPT = """
import os, signal
from pathlib import Path
import secretstorage
from noizylab_desktop.core.secrets import KeyringStore

bus = secretstorage.dbus_init()
pid = int(Path(os.environ["XDG_RUNTIME_DIR"], "gnome-keyring.pid").read_text())
os.kill(pid, signal.SIGKILL)  # it aborted, as gnome-keyring does now and then; its keeper starts it again
while secretstorage.check_service_availability(bus):
    pass  # until the bus has seen it go
store = KeyringStore("absent-at-start")  # in the moment no Secret Service is on the bus
store.set("tls-key", b"stored once it was back")
print(store.get("tls-key").decode())
"""


def test_a_node_starting_while_the_secret_service_restarts_waits_for_it() -> None:
    """A command or node that looks for the keychain in the moment gnome-keyring is being started again (it
    aborted: see the churn test) waits a moment for it instead of saying there is no keychain."""
    result = private_keyring(ABSENT_AT_START_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stored once it was back"
    assert "gnome-keyring-daemon ended (status 137) before the command did; starting it again" in result.stderr

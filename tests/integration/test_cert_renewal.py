"""A node's TLS certificate renews itself at two thirds of its life (here: seconds) without re-pairing: a stream
open across renewals keeps running to its end (a task's output, a remote-desktop session, a large sync transfer),
and peers connect with the new certificates once the old ones ended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.pairing import fetch_certificate
from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.display_support import ScreenApp, recorded, recording, start_pair
from tests.integration.tasks_helpers import pair, start_run
from tests.integration.test_sync_kill import temp_files
from tests.xvfb import Xvfb

LIFETIME_S = 3.0  # renewed every 2 s

# Prints a numbered line every 0.2 s until the flag file exists, then "done".
TALKER = """
import os, sys, time
i = 0
while not os.path.exists(sys.argv[1]):
    print(i, flush=True)
    i += 1
    time.sleep(0.2)
print("done", flush=True)
"""


def shown(node: NodeProcess) -> x509.Certificate:
    """The certificate ``node``'s gRPC port shows a new connection now."""
    return x509.load_der_x509_certificate(asyncio.run(fetch_certificate(node.grpc_address)))


def first_certificates(*nodes: NodeProcess) -> Callable[[], bool]:
    """A condition: every certificate ``nodes`` show now has ended, and each shows a newer one."""
    first = {node.name: shown(node) for node in nodes}

    def renewed_past_the_first() -> bool:
        now = dt.datetime.now(dt.UTC)
        return all(now > cert.not_valid_after_utc for cert in first.values()) and all(
            shown(node).not_valid_before_utc > first[node.name].not_valid_before_utc for node in nodes
        )

    return renewed_past_the_first


def test_renewal_keeps_an_open_task_stream_and_peers_connect_with_the_new_certificate(
    make_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    alpha, beta = start_all(
        make_node("alpha", cert_lifetime_s=LIFETIME_S), make_node("beta", cert_lifetime_s=LIFETIME_S)
    )
    pair(alpha, beta)
    beta.cli("allow", "alpha", "tasks")
    first = {node.name: shown(node) for node in (alpha, beta)}
    for node, cert in first.items():
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert life == dt.timedelta(hours=1, seconds=LIFETIME_S), f"{node}'s certificate lives {life}"

    flag = tmp_path / "stop-talking"
    run = start_run(alpha, "--on", "beta", "--", sys.executable, "-c", TALKER, str(flag))
    assert run.stdout is not None
    assert run.stdout.readline().strip() == "0"

    def renewed_past_the_first() -> bool:
        # Every certificate either node showed when the stream opened has ended, and each shows a newer one.
        now = dt.datetime.now(dt.UTC)
        return all(now > cert.not_valid_after_utc for cert in first.values()) and all(
            shown(node).not_valid_before_utc > first[node.name].not_valid_before_utc for node in (alpha, beta)
        )

    wait_for(renewed_past_the_first, timeout=4 * LIFETIME_S, what="both nodes to renew past their first certificates")
    for node in (alpha, beta):
        # A renewed certificate is of the same key: the node's ID does not change.
        assert format_id(fingerprint(shown(node).public_bytes(serialization.Encoding.DER))) == node.id
    flag.touch()
    out, err = run.communicate(timeout=60)
    lines = ["0", *out.split()]
    assert run.returncode == 0, err
    assert lines[-1] == "done" and lines[:-1] == [str(i) for i in range(len(lines) - 1)], lines

    # New connections, both ways, with certificates the peers never saw at pairing.
    assert beta.peer("alpha")["online"] and alpha.peer("beta")["online"]  # type: ignore[index]
    assert alpha.cli("run", "--on", "beta", "--", "echo", "again").stdout.strip() == "again"
    alpha.cli("allow", "beta", "tasks")
    assert beta.cli("run", "--on", "alpha", "--", "echo", "back").stdout.strip() == "back"


def test_renewal_keeps_a_remote_desktop_session_running_its_whole_length(tmp_path: Path) -> None:
    screen = Xvfb("640x480")
    alpha = NodeProcess(tmp_path / "alpha", "alpha", cert_lifetime_s=LIFETIME_S)
    beta = NodeProcess(tmp_path / "beta", "beta", cert_lifetime_s=LIFETIME_S)
    app: ScreenApp | None = None
    try:
        start_pair(alpha, beta, screen.display, "display")
        app = ScreenApp(screen.display, "pattern")
        renewed = first_certificates(alpha, beta)
        with recording(beta, "alpha", tmp_path / "across.mp4", 12) as viewer:
            wait_for(renewed, timeout=4 * LIFETIME_S, what="both nodes to renew past the certificates it began with")
            assert viewer.poll() is None, "the session ended with a renewal"
            summary = recorded(viewer)
        assert summary["seconds"] >= 11 and summary["frames"] >= 1  # its whole 12 s, renewals in the middle
    finally:
        if app is not None:
            app.stop()
        for node in (alpha, beta):
            node.stop()
        screen.stop()


@pytest.mark.slow
def test_renewal_keeps_a_large_sync_transfer_going_and_shows_no_error(
    make_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    alpha, beta = start_all(
        make_node("alpha", cert_lifetime_s=LIFETIME_S, sync={"folder": str(tmp_path / "alpha-sync")}),
        make_node("beta", cert_lifetime_s=LIFETIME_S, sync={"folder": str(tmp_path / "beta-sync")}),
    )
    beta.join(alpha.invite())
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
    alpha.cli("allow", "beta", "sync")
    beta.cli("allow", "alpha", "sync")
    local, remote = tmp_path / "work", tmp_path / "beta-sync" / "work"
    local.mkdir()
    alpha.cli("share", "add", str(local), "--peer", "beta")
    alpha.cli("sync", "wait", "--timeout", "30")

    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every state either side's shares show while the certificates renew
        while not stop.is_set():
            for node in (alpha, beta):
                seen.extend(f"{node.name}: {s['state']} {s['message']}" for s in node.json("sync", "status"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        renewed = first_certificates(alpha, beta)
        parts = {f"large-{i}.bin": os.urandom(32 * 1024 * 1024) for i in range(4)}
        for name, data in parts.items():  # one after another, so transfers are open across the renewals
            (local / name).write_bytes(data)
        wait_for(lambda: temp_files(remote), timeout=30, what="a transfer to start")
        wait_for(renewed, timeout=4 * LIFETIME_S, what="both nodes to renew past the certificates it began with")
        (remote / "from-beta.txt").write_text("beta's edit after the renewals\n")
        alpha.cli("sync", "wait", "--timeout", "120", timeout=180)
    finally:
        stop.set()
        watcher.join()
    for name, data in parts.items():
        assert hashlib.sha256((remote / name).read_bytes()).digest() == hashlib.sha256(data).digest(), name
    assert (local / "from-beta.txt").read_text() == "beta's edit after the renewals\n"
    assert temp_files(remote) == []
    assert seen and not [s for s in seen if " error " in s], [s for s in seen if " error " in s]

"""A node's TLS certificate renews itself at two thirds of its life (here: seconds) without re-pairing: a stream
open across renewals keeps running to its end, and peers connect with the new certificates once the old ones ended.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.pairing import fetch_certificate
from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.tasks_helpers import pair, start_run

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

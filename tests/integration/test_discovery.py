"""LAN discovery between real nodes in network namespaces this test makes (root only; skipped elsewhere).

Two namespaces joined by a bridge in a third, addresses in 10.213.0.0/24 (``lan_support``): nothing leaves the
machine. Each node runs with ``[discovery] enabled = true``. Multicast is blocked the two ways a real LAN blocks
it: a switch (the bridge) that stops flooding it, or each machine's own firewall (nftables) dropping it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from noizylab_desktop.core.nodeid import parse_id
from tests.conftest import wait_for
from tests.integration.lan_support import A_IP, A_NEW_IP, Lan, LanNode, online_at, private_lan, start_pair
from tests.slowness import scaled

pytestmark = pytest.mark.slow


@pytest.fixture
def lan() -> Iterator[tuple[Lan, list[LanNode]]]:
    with private_lan() as made:
        yield made


def test_nodes_pair_by_list_and_refind_a_peer_whose_address_changed(
    tmp_path: Path, lan: tuple[Lan, list[LanNode]]
) -> None:
    net, nodes = lan
    # Alpha beats beta only once a minute: within this test beta can learn alpha's new address only from discovery.
    alpha, beta = start_pair(tmp_path, net, nodes, heartbeat_s=60.0)
    code = alpha.json("pair", "invite", "--no-wait")["code"]
    listed = wait_for(lambda: beta.json("pair", "join", "--list", "--listen", "3"), what="beta to hear alpha invite")
    assert [row["hosts"] for row in listed] == [[A_IP]]
    refused = beta.cli("pair", "join", "--choose", "1", "--listen", "3", check=False)
    assert refused.returncode == 1 and "type the invite code" in refused.stderr
    beta.json("pair", "join", "--choose", "1", "--listen", "3", code)
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50051"), what="beta to see alpha online")

    net.readdress_a(A_IP, A_NEW_IP)
    began = time.monotonic()
    wait_for(lambda: online_at(beta, "alpha", f"{A_NEW_IP}:50051"), timeout=5, what="beta to re-find alpha")
    assert time.monotonic() - began < scaled(5)
    assert "found at 10.213.0.11:50051 (multicast" in (beta.home / "logs" / "noizylab.log").read_text()


def test_with_multicast_blocked_a_peer_on_a_new_port_is_found_by_unicast(
    tmp_path: Path, lan: tuple[Lan, list[LanNode]]
) -> None:
    net, nodes = lan
    net.block_multicast()
    alpha, beta = start_pair(tmp_path, net, nodes)
    beta.join(alpha.invite())
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50051"), what="beta to see alpha online")

    alpha.stop()
    # Alpha comes back on another port and has lost track of beta, so its own heartbeats cannot tell beta where it is.
    beta_fp = parse_id(beta.json("id")["id"])
    with_alpha = alpha.trust()
    with_alpha.set_addresses(beta_fp, ["10.213.0.99:50051"])
    with_alpha.close()
    alpha.cli("start", "--port", "50061")
    began = time.monotonic()
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50061"), timeout=5, what="beta to find alpha's new port")
    assert time.monotonic() - began < scaled(5)
    log = (beta.home / "logs" / "noizylab.log").read_text()
    assert "found at 10.213.0.1:50061 (unicast" in log, json.dumps(beta.status())

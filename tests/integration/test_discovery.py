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
    # Alpha beats beta only once a minute (and later cannot reach it): beta can learn alpha's new address only from
    # discovery.
    alpha, beta = start_pair(tmp_path, net, nodes, heartbeat_s=60.0)
    code = alpha.json("pair", "invite", "--no-wait")["code"]
    listed = wait_for(lambda: beta.json("pair", "join", "--list", "--listen", "3"), what="beta to hear alpha invite")
    assert [row["hosts"] for row in listed] == [[A_IP]]
    refused = beta.cli("pair", "join", "--choose", "1", "--listen", "3", check=False)
    assert refused.returncode == 1 and "type the invite code" in refused.stderr
    beta.json("pair", "join", "--choose", "1", "--listen", "3", code)
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50051"), what="beta to see alpha online")
    # Beta's firewall takes no calls: alpha cannot tell beta its new address with a beat, only announce it.
    net.drop_tcp_port("b", 50051)

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


def test_with_multicast_dropped_by_each_firewall_a_peer_whose_address_changed_is_refound_within_5_s(
    tmp_path: Path, lan: tuple[Lan, list[LanNode]]
) -> None:
    net, nodes = lan
    net.drop_multicast("a")
    net.drop_multicast("b")
    # Alpha beats beta only once a minute, so its routine beats cannot be what tells beta where it went.
    alpha, beta = start_pair(tmp_path, net, nodes, heartbeat_s=60.0)
    beta.join(alpha.invite())
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50051"), what="beta to see alpha online")
    assert "multicast-blocked" in [f["finding"] for f in beta.json("doctor", "--listen", "1")]

    net.readdress_a(A_IP, A_NEW_IP)
    began = time.monotonic()
    wait_for(lambda: online_at(beta, "alpha", f"{A_NEW_IP}:50051"), timeout=5, what="beta to re-find alpha")
    assert time.monotonic() - began < scaled(5)
    assert "found at" not in (beta.home / "logs" / "noizylab.log").read_text()  # no announcement got through


def test_with_multicast_dropped_a_peer_known_by_host_name_is_refound_at_its_new_address_within_5_s(
    tmp_path: Path, lan: tuple[Lan, list[LanNode]]
) -> None:
    net, nodes = lan
    net.drop_multicast("a")
    net.drop_multicast("b")
    net.hosts("b", f"{A_IP} alpha.nltest\n")  # as a LAN router's DNS names the machines it leases to
    alpha, beta = start_pair(tmp_path, net, nodes, heartbeat_s=60.0, advertise=["alpha.nltest"])
    beta.join(alpha.invite())
    wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
    # Beta's firewall takes no calls (as a Windows network marked Public): alpha cannot tell beta where it went,
    # so only beta's own unicast probes, and beats, of alpha's host name can find it.
    net.drop_tcp_port("b", 50051)

    net.readdress_a(A_IP, A_NEW_IP)
    net.hosts("b", f"{A_NEW_IP} alpha.nltest\n")
    began = time.monotonic()
    refound = {f"{A_NEW_IP}:50051", "alpha.nltest:50051"}  # by a unicast probe of the name, or a beat to it
    wait_for(
        lambda: (beta.peer("alpha") or {}).get("online") and beta.peer("alpha")["address"] in refound,
        timeout=5,
        what="beta to re-find alpha by its host name",
    )
    assert time.monotonic() - began < scaled(5)

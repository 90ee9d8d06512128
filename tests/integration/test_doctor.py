"""``noizylab doctor``: why a paired peer is unreachable, one line per finding, from real failures on a private LAN.

Each failure is made for real inside the test's own network namespaces (``lan_support``): a stopped node (the
connection is refused), a firewall dropping the port (nftables), no route to an address, an interface named as a
VPN's capturing the route, multicast dropped by the machine's own firewall. Root only; skipped elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration.lan_support import A_IP, UNROUTABLE_IP, Lan, LanNode, online_at, private_lan, start_pair

pytestmark = pytest.mark.slow


@pytest.fixture
def lan() -> Iterator[tuple[Lan, list[LanNode]]]:
    with private_lan() as made:
        yield made


def doctor(node: LanNode) -> list[str]:
    """What ``noizylab doctor`` prints: its lines."""
    return node.cli("doctor", "--listen", "1").stdout.splitlines()


def kinds(node: LanNode, subject: str) -> list[str]:
    """The kinds of ``doctor --json``'s findings about ``subject``."""
    return [f["finding"] for f in node.json("doctor", "--listen", "1") if f["subject"] == subject]


def paired_pair(tmp_path: Path, lan: tuple[Lan, list[LanNode]]) -> tuple[LanNode, LanNode]:
    net, nodes = lan
    alpha, beta = start_pair(tmp_path, net, nodes)
    beta.join(alpha.invite())
    wait_for(lambda: online_at(beta, "alpha", f"{A_IP}:50051"), what="beta to see alpha online")
    return alpha, beta


def test_doctor_says_a_peer_is_reachable_that_multicast_is_blocked_and_that_a_stopped_node_is_not_running(
    tmp_path: Path, lan: tuple[Lan, list[LanNode]]
) -> None:
    net, _ = lan
    alpha, beta = paired_pair(tmp_path, lan)
    assert f"alpha: reachable at {A_IP}:50051 (the mTLS handshake proved it)" in doctor(beta)
    assert kinds(beta, "this machine") == []

    net.drop_multicast("b")
    lines = doctor(beta)
    assert f"alpha: reachable at {A_IP}:50051 (the mTLS handshake proved it)" in lines
    assert any(
        line.startswith("alpha: answers unicast queries but its multicast announcements do not arrive")
        for line in lines
    )

    alpha.stop()
    lines = doctor(beta)
    assert (
        f"alpha: nothing listens at {A_IP}:50051: its node is not running (start it there with `noizylab start`)"
        in lines
    )
    assert not any("reachable" in line for line in lines)
    assert any(line.startswith("alpha: is not heard on the LAN") for line in lines)


def test_doctor_tells_a_firewall_from_no_route_and_from_a_vpn(tmp_path: Path, lan: tuple[Lan, list[LanNode]]) -> None:
    net, _ = lan
    alpha, beta = paired_pair(tmp_path, lan)
    beta.stop()
    with_beta = beta.trust()
    alpha_fp = next(p.fingerprint for p in with_beta.peers() if p.name == "alpha")
    with_beta.set_addresses(alpha_fp, [f"{UNROUTABLE_IP}:50051", f"{A_IP}:50051"])
    with_beta.close()

    net.drop_tcp_port("a", 50051)
    lines = doctor(beta)
    assert "this machine: its node is not running: peers cannot reach it (start it with `noizylab start`)" in lines
    assert f"alpha: no route to {UNROUTABLE_IP}: this machine has no network path to it" in lines
    assert any(line.startswith(f"alpha: no answer from {A_IP}:50051 within 2 s: a firewall drops it") for line in lines)
    # Discovery still hears alpha: only its gRPC port is firewalled.
    assert "not-announcing" not in kinds(beta, "alpha")

    net.add_vpn("b", route_to=A_IP)
    lines = doctor(beta)
    assert any(line.startswith("this machine: a VPN interface is up (wg0)") for line in lines)
    assert any(
        line.startswith(f"alpha: traffic to {A_IP} leaves through the VPN interface wg0, not the LAN") for line in lines
    )

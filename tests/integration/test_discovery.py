"""LAN discovery between real nodes in network namespaces this test makes (root only; skipped elsewhere).

Two namespaces joined by a bridge in a third, addresses in 10.213.0.0/24: nothing leaves the machine. Each node runs
with ``[discovery] enabled = true``. The bridge can stop flooding multicast to its ports, which is how a LAN that
blocks multicast looks to the nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.nodeid import parse_id
from noizylab_desktop.core.trust import TrustStore
from tests.conftest import NOIZYLAB, NodeProcess, wait_for
from tests.slowness import scaled

pytestmark = pytest.mark.slow

A_IP, A_NEW_IP, B_IP = "10.213.0.1", "10.213.0.11", "10.213.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Lan:
    """Namespaces ``a`` and ``b``, each with one veth to a bridge in namespace ``br``."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = {"a": f"nla{tag}", "b": f"nlb{tag}", "br": f"nlbr{tag}"}
        self.made: list[str] = []

    def up(self) -> None:
        for ns in self.ns.values():
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        br = self.ns["br"]
        ip("-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", br, "link", "set", "br0", "up")
        for side, address in (("a", A_IP), ("b", B_IP)):
            ns = self.ns[side]
            ip("-n", br, "link", "add", f"p{side}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", br, "link", "set", f"p{side}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

    def block_multicast(self) -> None:
        """The bridge stops flooding multicast (mDNS included) to both machines."""
        for side in ("a", "b"):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns["br"],
                    "bridge",
                    "link",
                    "set",
                    "dev",
                    f"p{side}",
                    "mcast_flood",
                    "off",
                ],
                check=True,
            )

    def readdress_a(self, old: str, new: str) -> None:
        """A new lease: the old address goes, the new one comes."""
        ip("-n", self.ns["a"], "addr", "del", f"{old}/24", "dev", "eth0")
        ip("-n", self.ns["a"], "addr", "add", f"{new}/24", "dev", "eth0")

    def down(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class LanNode(NodeProcess):
    """A node whose commands (and so the node they start) run inside a namespace."""

    def __init__(self, home: Path, name: str, ns: str, **config: Any) -> None:
        self.ns = ns
        settings: dict[str, Any] = {
            "grpc_host": "0.0.0.0",
            "advertise": [],
            "ports": {"grpc": 50051, "sftp": 0, "http": 0},
            "discovery": {"enabled": True, "poll_s": 0.5},
        }
        super().__init__(home, name, **(settings | config))

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ip", "netns", "exec", self.ns, *NOIZYLAB, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
        )
        if check and result.returncode != 0:
            raise AssertionError(f"noizylab {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def trust(self) -> TrustStore:
        paths = Paths.resolve(self.home)
        return TrustStore(paths.trust_db, paths.cert_file.read_bytes())


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[Lan, list[LanNode]]]:
    """The namespaces, and a list the test adds its nodes to (stopped before the namespaces go)."""
    if (
        os.geteuid() != 0
        or subprocess.run(["ip", "netns", "add", f"nlprobe{os.getpid()}"], capture_output=True).returncode
    ):
        pytest.skip("needs root and `ip netns` to build a private LAN")
    subprocess.run(["ip", "netns", "del", f"nlprobe{os.getpid()}"], capture_output=True)
    net = Lan()
    nodes: list[LanNode] = []
    try:
        net.up()
        yield net, nodes
    finally:
        for node in nodes:
            node.stop()
        net.down()


def start_pair(tmp_path: Path, net: Lan, nodes: list[LanNode], **alpha: Any) -> tuple[LanNode, LanNode]:
    a = LanNode(tmp_path / "alpha", "alpha", net.ns["a"], **alpha)
    b = LanNode(tmp_path / "beta", "beta", net.ns["b"])
    nodes += [a, b]
    a.start(), b.start()
    return a, b


def online_at(node: LanNode, name: str, address: str) -> bool:
    peer = node.peer(name) or {}
    return bool(peer.get("online")) and peer.get("address") == address


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

"""A private LAN in network namespaces this test makes (root only), and nodes whose commands run inside it.

Two namespaces ``a`` and ``b``, each with one veth to a bridge in a third, addresses in 10.213.0.0/24: nothing
leaves the machine. Faults are made the way a real network makes them: the bridge can stop flooding multicast,
nftables inside a namespace can drop multicast or a TCP port (a firewall), and an interface named as a VPN's can
capture the route to a peer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.trust import TrustStore
from tests.conftest import NOIZYLAB, NodeProcess
from tests.slowness import scaled

A_IP, A_NEW_IP, B_IP = "10.213.0.1", "10.213.0.11", "10.213.0.2"
UNROUTABLE_IP = "192.0.2.7"  # TEST-NET-1: no route to it inside the namespaces (they have no default route)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Lan:
    """Namespaces ``a`` and ``b``, each with one veth to a bridge in namespace ``br``."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.ns = {"a": f"nla{tag}", "b": f"nlb{tag}", "br": f"nlbr{tag}"}
        self.made: list[str] = []
        self.etc: list[Path] = []

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
            # As a desktop's LAN interface has (by a default route or this one): where multicast leaves.
            ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def block_multicast(self) -> None:
        """The bridge stops flooding multicast (mDNS included) to both machines."""
        for side in ("a", "b"):
            ip("netns", "exec", self.ns["br"], "bridge", "link", "set", "dev", f"p{side}", "mcast_flood", "off")

    def nft(self, side: str, script: str) -> None:
        """Load an nftables ruleset inside ``side``'s namespace (its own firewall)."""
        subprocess.run(["ip", "netns", "exec", self.ns[side], "nft", "-f", "-"], input=script, check=True, text=True)

    def drop_multicast(self, side: str) -> None:
        """``side``'s own firewall drops every multicast packet, in and out (mDNS's 224.0.0.251 included)."""
        self.nft(
            side,
            "table inet nlmcast {\n"
            "  chain in { type filter hook input priority 0; meta pkttype multicast drop; }\n"
            "  chain out { type filter hook output priority 0; ip daddr 224.0.0.0/4 drop; }\n"
            "}\n",
        )

    def drop_tcp_port(self, side: str, port: int) -> None:
        """``side``'s firewall silently drops incoming connections to ``port``."""
        self.nft(
            side,
            f"table inet nlfw {{\n  chain in {{ type filter hook input priority 0; tcp dport {port} drop; }}\n}}\n",
        )

    def add_vpn(self, side: str, route_to: str, name: str = "wg0") -> None:
        """A tunnel named as WireGuard's, with its own address, that captures ``side``'s route to ``route_to``.

        A veth pair stands in for the tunnel device (this kernel may lack the dummy and wireguard types): what goes
        into it never reaches the LAN, as with a VPN whose far end does not route back to the LAN.
        """
        ns = self.ns[side]
        ip("-n", ns, "link", "add", name, "type", "veth", "peer", "name", "farend")
        ip("-n", ns, "addr", "add", "10.99.0.2/32", "dev", name)
        for device in (name, "farend"):
            ip("-n", ns, "link", "set", device, "up")
        ip("-n", ns, "route", "add", f"{route_to}/32", "dev", name)

    def hosts(self, side: str, text: str) -> None:
        """``side``'s /etc/hosts (``ip netns exec`` mounts /etc/netns/NS/hosts there; rewritten in place, running
        processes see each change, as they see a DNS server's new answer)."""
        folder = Path("/etc/netns") / self.ns[side]
        folder.mkdir(parents=True, exist_ok=True)
        self.etc.append(folder)
        with open(folder / "hosts", "w") as hosts:  # same file: the bind mount keeps showing it
            hosts.write(f"127.0.0.1 localhost\n{text}")

    def readdress_a(self, old: str, new: str) -> None:
        """A new lease: the old address goes, the new one comes."""
        ip("-n", self.ns["a"], "addr", "del", f"{old}/24", "dev", "eth0")
        ip("-n", self.ns["a"], "addr", "add", f"{new}/24", "dev", "eth0")

    def down(self) -> None:
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for folder in self.etc:
            shutil.rmtree(folder, ignore_errors=True)


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


@contextlib.contextmanager
def private_lan() -> Iterator[tuple[Lan, list[LanNode]]]:
    """The namespaces, and a list the test adds its nodes to (stopped before the namespaces go); skips without root."""
    probe = f"nlprobe{os.getpid()}"
    if os.geteuid() != 0 or subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode:
        pytest.skip("needs root and `ip netns` to build a private LAN")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
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

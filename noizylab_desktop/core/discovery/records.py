"""What a node's DNS-SD announcement holds, and how one is read back: no user, host or node names.

The instance and its host record are named after a tag, a hash of the node ID's leading bytes (the part an invite
code carries, so a joiner can check that the machine it chose made its code). TXT holds the tag, the gRPC port and,
while ``pair invite`` runs, ``invite=1`` with the pairing port: never a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_TYPE = "_noizylab._tcp.local."
TXT_VERSION = "1"
TAG_BYTES = 8
FP_PREFIX_BYTES = 10  # as many as an invite code carries (core.invite.FP_BYTES)


def tag_of(fp: bytes) -> str:
    """The tag a node with certificate fingerprint ``fp`` (or its invite code's prefix of it) announces."""
    return hashlib.sha256(b"noizylab-discovery-v1" + fp[:FP_PREFIX_BYTES]).hexdigest()[: TAG_BYTES * 2]


def instance_name(tag: str) -> str:
    """The DNS-SD instance name: the tag, never the machine's or the person's name."""
    return f"nl-{tag}.{SERVICE_TYPE}"


def server_name(tag: str) -> str:
    """The host record's name (instead of the machine's host name)."""
    return f"nl-{tag}.local."


@dataclass(frozen=True)
class Announcement:
    """One node as its announcement describes it."""

    tag: str
    hosts: tuple[str, ...]
    grpc_port: int
    inviting: bool = False
    pairing_port: int = 0
    via: str = "multicast"  # or "unicast": how we heard it (the doctor tells blocked multicast from this)

    def grpc_addresses(self) -> list[str]:
        return [f"{h}:{self.grpc_port}" for h in self.hosts]


def txt_properties(tag: str, grpc_port: int, pairing_port: int = 0) -> dict[str, str]:
    """The TXT record: the tag, the gRPC port, and the pairing port only while inviting."""
    props = {"v": TXT_VERSION, "id": tag, "port": str(grpc_port)}
    if pairing_port:
        props |= {"invite": "1", "pp": str(pairing_port)}
    return props


def read(properties: Mapping[Any, bytes | str | None], hosts: list[str], srv_port: int) -> Announcement | None:
    """The announcement in a TXT record and its addresses, or None when it is not a NOIZYLAB node's."""
    props = {_text(k): _text(v) for k, v in properties.items() if v is not None}
    tag = props.get("id", "")
    if props.get("v") != TXT_VERSION or len(tag) != TAG_BYTES * 2 or not hosts:
        return None
    try:
        port = int(props.get("port", srv_port))
        pairing_port = int(props.get("pp", "0")) if props.get("invite") == "1" else 0
    except ValueError:
        return None
    if not 0 < port < 65536 or not 0 <= pairing_port < 65536:
        return None
    return Announcement(tag, tuple(hosts), port, bool(pairing_port), pairing_port)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

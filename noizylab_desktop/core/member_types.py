"""What grid membership shows beyond its list: its setting, its events, and a device as ``devices list`` shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from noizylab_desktop.core.events import OWN_NODE_ONLY, PUBLIC, Audience, Event
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.settings_schema import section, setting


@section("grid")
@dataclass(frozen=True)
class GridSettings:
    # A machine another member introduces is trusted here only once this machine's owner confirms it
    # (`noizylab devices confirm ID`); until then it shows as pending and cannot connect.
    confirm_members: bool = setting(False)
    # A peer's new identity key is taken here only when a second member of the grid co-signed its rotation (beside
    # its old key); `noizylab keys rotate` here then asks an online member to co-sign. Set it on every member.
    rotation_cosign: bool = setting(False)


@dataclass(frozen=True)
class MemberAdmitted(Event):
    """A member introduced a machine and this node now trusts it (or waits for its owner: ``pending``)."""

    kind: ClassVar[str] = "grid.member"
    audience: ClassVar[Audience] = OWN_NODE_ONLY
    peer_id: str
    name: str
    introduced_by: str
    pending: bool


@dataclass(frozen=True)
class DeviceRemoved(Event):
    """A member removed a device from the grid: every member refuses it now. Public: the grid's health."""

    kind: ClassVar[str] = "grid.removed"
    audience: ClassVar[Audience] = PUBLIC
    peer_id: str
    name: str
    removed_by: str
    lost: bool


@dataclass(frozen=True)
class Device:
    """One machine of the grid as ``noizylab devices list`` shows it."""

    fp: bytes
    name: str
    state: str  # "this machine", "member", "pending", "removed", "lost"
    introduced_by: str
    since: float

    @property
    def node_id(self) -> str:
        return format_id(self.fp)

"""Every event type says who beyond this node's own user may see it; a peer's stream holds only what it may see."""

from __future__ import annotations

import asyncio
import importlib
import re
from pathlib import Path

import pytest

import noizylab_desktop
from noizylab_desktop.core.events import (
    OWN_NODE_ONLY,
    PUBLIC,
    AboutPeer,
    Audience,
    Dropped,
    Event,
    EventBus,
    InviteOpened,
    PeerOnline,
    PermissionChanged,
)

PACKAGE = Path(noizylab_desktop.__file__).parent
ABOUT_THE_PEER = AboutPeer("peer_id")

# The reviewed answer for every event type: a change here is a decision about what leaves the node.
EXPECTED: dict[str, Audience] = {
    "PeerOnline": PUBLIC,
    "PeerOffline": PUBLIC,
    "Dropped": PUBLIC,
    "PeerPaired": ABOUT_THE_PEER,
    "PeerUnpaired": ABOUT_THE_PEER,
    "PermissionChanged": ABOUT_THE_PEER,
    "PeerRenamed": ABOUT_THE_PEER,  # what this node calls the peer now, after the peer renamed itself
    "PeerKeyRotated": ABOUT_THE_PEER,  # the peer rotated its key: its new ID (or a new SSH key) as this node pins it
    "ClipArrived": ABOUT_THE_PEER,
    "ScreenShared": ABOUT_THE_PEER,
    "ScreenUnshared": ABOUT_THE_PEER,
    "InviteOpened": OWN_NODE_ONLY,
    "NodeRenamed": OWN_NODE_ONLY,
    "ServiceRestarted": OWN_NODE_ONLY,
    "ClipNotice": OWN_NODE_ONLY,
    "ClipPaused": OWN_NODE_ONLY,
    "MetricsUpdated": OWN_NODE_ONLY,
    "MetricsAlert": OWN_NODE_ONLY,
    "ShareState": OWN_NODE_ONLY,
    "ShareProgress": OWN_NODE_ONLY,
    "ShareChanged": OWN_NODE_ONLY,
    "SyncConflict": OWN_NODE_ONLY,
    "TaskStarted": OWN_NODE_ONLY,
    "TaskOutput": OWN_NODE_ONLY,
    "TaskFinished": OWN_NODE_ONLY,
    "TunnelChanged": OWN_NODE_ONLY,  # this node's own tunnels: their states and byte counts
    "FileArrived": OWN_NODE_ONLY,  # where on this machine a peer's file was saved
    "FileSent": OWN_NODE_ONLY,  # what this node's user sent, and the name it got there
}


def event_classes() -> dict[str, type[Event]]:
    """Every event class defined anywhere in the package, found in the source so none can be missed."""
    found: dict[str, type[Event]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = re.findall(r"^class (\w+)\(Event\):", path.read_text(encoding="utf-8"), re.MULTILINE)
        if names:
            module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
            found.update({name: getattr(module, name) for name in names})
    return found


def test_every_event_type_in_the_package_has_its_reviewed_audience() -> None:
    audiences = {name: cls.audience for name, cls in event_classes().items()}
    assert audiences == EXPECTED


def test_a_new_event_type_stays_on_this_node_unless_it_says_otherwise() -> None:
    class Fresh(Event):
        kind = "test.fresh"

    assert Fresh.audience == OWN_NODE_ONLY
    assert not Fresh().visible_to("ANY-PEER")


def test_an_audience_that_names_a_missing_field_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="peer"):

        class Misspelt(Event):
            kind = "test.misspelt"
            audience = AboutPeer("peer")
            peer_id: str


def test_an_event_about_a_peer_is_visible_to_that_peer_only() -> None:
    changed = PermissionChanged(peer_id="MALLORY", scope="tasks", allowed=False)
    assert changed.visible_to("MALLORY")
    assert not changed.visible_to("BOB") and not changed.visible_to("")
    assert PeerOnline(peer_id="BOB", name="bob").visible_to("MALLORY")
    assert not InviteOpened(code="SECRET", expires_at=0.0).visible_to("MALLORY")


def test_a_narrowed_subscription_queues_and_counts_only_what_it_may_see() -> None:
    async def scenario() -> list[Event]:
        bus = EventBus()
        with bus.subscribe(size=4, where=lambda e: e.visible_to("MALLORY")) as peer:
            for n in range(10):
                bus.publish(InviteOpened(code=f"SECRET-{n}", expires_at=0.0))
            for n in range(6):
                bus.publish(PeerOnline(peer_id=f"P{n}", name=f"p{n}"))
            return [await peer.get() for _ in range(peer._queue.qsize())]

    received = asyncio.run(scenario())
    assert not [e for e in received if isinstance(e, InviteOpened)]
    dropped = sum(e.count for e in received if isinstance(e, Dropped))
    assert dropped + len([e for e in received if isinstance(e, PeerOnline)]) == 6, "hidden events are not counted"

"""The event bus delivers typed events to the subscribers that asked for their type."""

from __future__ import annotations

import asyncio

from noizylab_desktop.core.events import Dropped, EventBus, PeerOffline, PeerOnline, ServiceRestarted


def test_subscribers_get_only_the_types_they_asked_for() -> None:
    async def scenario() -> None:
        bus = EventBus()
        with bus.subscribe(PeerOnline) as online, bus.subscribe() as everything:
            bus.publish(PeerOffline(peer_id="B", name="beta"))
            bus.publish(PeerOnline(peer_id="A", name="alpha"))
            event = await online.get()
            assert isinstance(event, PeerOnline) and event.name == "alpha"
            assert online._queue.empty()
            assert [(await everything.get()).kind for _ in range(2)] == ["peer.offline", "peer.online"]

    asyncio.run(scenario())


def test_a_subscriber_that_falls_behind_loses_the_oldest_and_is_told() -> None:
    async def scenario() -> None:
        bus = EventBus()
        with bus.subscribe(size=4) as slow:
            for n in range(10):
                bus.publish(ServiceRestarted(service=f"s{n}", error="x", delay_s=0.1))
            received = [await slow.get() for _ in range(slow._queue.qsize())]
            dropped = [e.count for e in received if isinstance(e, Dropped)]
            kept = [e.service for e in received if isinstance(e, ServiceRestarted)]
            assert kept[-1] == "s9" and len(received) == 4
            assert sum(dropped) + len(kept) == 10

    asyncio.run(scenario())


def test_listeners_are_called_synchronously_and_can_be_removed() -> None:
    bus = EventBus()
    seen: list[str] = []
    undo = bus.listen(lambda e: seen.append(e.kind))
    bus.publish(PeerOnline(peer_id="A", name="alpha"))
    undo()
    bus.publish(PeerOnline(peer_id="A", name="alpha"))
    assert seen == ["peer.online"]


def test_event_fields_travel_as_strings() -> None:
    assert ServiceRestarted(service="registry", error="boom", delay_s=0.4).fields() == {
        "service": "registry",
        "error": "boom",
        "delay_s": "0.4",
    }

"""The supervisor restarts a crashed service with backoff and tells the bus."""

from __future__ import annotations

import asyncio

from noizylab_desktop.core.events import EventBus, ServiceRestarted
from noizylab_desktop.core.supervisor import Supervisor


class Flaky:
    """Crashes ``crashes`` times, then runs until cancelled."""

    name = "flaky"

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self.steady = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"crash {self.runs}")
        self.steady.set()
        await asyncio.Event().wait()


def test_a_crashed_service_is_restarted_with_growing_delays() -> None:
    async def scenario() -> None:
        bus = EventBus()
        supervisor = Supervisor(bus)
        flaky = Flaky(crashes=2)
        with bus.subscribe(ServiceRestarted) as restarts:
            supervisor.start(flaky)
            await asyncio.wait_for(flaky.steady.wait(), timeout=5)
            first, second = await restarts.get(), await restarts.get()
        assert isinstance(first, ServiceRestarted) and isinstance(second, ServiceRestarted)
        assert (first.error, second.error) == ("crash 1", "crash 2")
        assert second.delay_s > first.delay_s
        assert supervisor.restarts["flaky"] == 2 and supervisor.running() == ["flaky"]
        await supervisor.stop()
        assert supervisor.running() == []

    asyncio.run(scenario())


def test_a_service_that_finishes_is_not_restarted() -> None:
    class Once:
        name = "once"
        runs = 0

        async def run(self) -> None:
            self.runs += 1

    async def scenario() -> None:
        supervisor = Supervisor(EventBus())
        once = Once()
        supervisor.start(once)
        await asyncio.wait_for(asyncio.gather(*supervisor._tasks.values()), timeout=5)
        assert once.runs == 1 and supervisor.restarts["once"] == 0
        await supervisor.stop()

    asyncio.run(scenario())

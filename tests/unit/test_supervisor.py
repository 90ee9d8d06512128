"""The supervisor restarts a crashed service with backoff and tells the bus, and lists the child processes its
services run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from noizylab_desktop.core.events import EventBus, ServiceRestarted
from noizylab_desktop.core.supervisor import ChildProcess, Supervisor


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


class Sleeper:
    """A child process (``sleep``) as a supervised service: it ends with status 1 the first ``crashes`` times."""

    name = "sleeper"

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.pid = 0
        self.began = 0.0
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        command = ["sleep", "0.1"] if self.runs <= self.crashes else ["sleep", "60"]
        process = await asyncio.create_subprocess_exec(*command)
        self.pid, self.began = process.pid, time.monotonic()
        try:
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            self.pid = 0
        raise RuntimeError("sleep ended")

    def child(self) -> ChildProcess:
        up = time.monotonic() - self.began if self.pid else 0.0
        return ChildProcess(self.name, "a sleeper", self.pid, "running" if self.pid else "starting", uptime_s=up)


def test_children_lists_supervised_processes_with_their_restarts_and_plain_services_not_at_all() -> None:
    async def scenario() -> None:
        supervisor = Supervisor(EventBus())
        sleeper = Sleeper(crashes=1)
        supervisor.start(Flaky(crashes=0))  # no child process: not listed
        supervisor.start(sleeper)
        await asyncio.wait_for(_until(lambda: sleeper.runs == 2 and sleeper.pid), timeout=5)
        (child,) = supervisor.children()
        assert (child.name, child.role, child.pid, child.state) == ("sleeper", "a sleeper", sleeper.pid, "running")
        assert child.restarts == 1 and child.uptime_s >= 0
        await supervisor.stop()
        assert supervisor.children() == []

    asyncio.run(scenario())


def test_a_child_waiting_out_its_backoff_is_listed_as_restarting_without_a_pid() -> None:
    async def scenario() -> None:
        supervisor = Supervisor(EventBus())
        sleeper = Sleeper(crashes=10)
        supervisor.start(sleeper)
        await asyncio.wait_for(_until(lambda: supervisor.restarts["sleeper"] >= 1 and not sleeper.pid), timeout=5)
        (child,) = supervisor.children()
        assert (child.state, child.pid, child.uptime_s) == ("restarting", 0, 0.0)
        await supervisor.stop()

    asyncio.run(scenario())


async def _until(condition: Callable[[], object]) -> None:
    while not condition():
        await asyncio.sleep(0.01)

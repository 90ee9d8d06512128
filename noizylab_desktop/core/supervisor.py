"""The supervisor: runs each service's ``run()`` as a task and restarts one that crashes, with backoff.

A service that runs a child process (a Dask scheduler or worker) also says what that process is (``child()``), so
``noizylab tasks`` and the tray's task console list the node's supervised children beside its tasks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.events import EventBus, ServiceRestarted

logger = logging.getLogger(__name__)

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0


class Service(Protocol):
    """A long-running part of the node; ``run`` returns only when its work is done."""

    name: str

    async def run(self) -> None: ...


@dataclass(frozen=True)
class ChildProcess:
    """A process a supervised service runs as a child of the node, as a person sees it in the task list."""

    name: str  # the service's name, e.g. "dask-worker"
    role: str  # what it is, e.g. "Dask worker"
    pid: int  # 0 while no process runs (starting, or waiting to restart)
    state: str  # "starting", "running" or "restarting" (waiting out its backoff after it ended unasked)
    started_at: float = 0.0  # wall-clock time the running process started; 0 when none runs
    uptime_s: float = 0.0  # how long the running process has run
    restarts: int = 0  # how often the supervisor restarted it
    detail: str = ""  # e.g. the cluster and the address it listens on


@runtime_checkable
class ChildService(Protocol):
    """A service whose work is a child process; ``child()`` describes it as it is now (``restarts`` left 0)."""

    name: str

    async def run(self) -> None: ...

    def child(self) -> ChildProcess: ...


class Supervisor:
    """Owns the service tasks: start, restart on crash with exponential backoff, stop."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._services: dict[str, Service] = {}
        self._backing_off: set[str] = set()
        self.restarts: dict[str, int] = {}

    def start(self, service: Service) -> None:
        """Run ``service`` until stopped."""
        self.restarts[service.name] = 0
        self._services[service.name] = service
        self._backing_off.discard(service.name)
        self._tasks[service.name] = asyncio.create_task(self._keep(service), name=f"service:{service.name}")

    def running(self) -> list[str]:
        """Names of the services whose tasks are alive."""
        return [name for name, task in self._tasks.items() if not task.done()]

    def children(self) -> list[ChildProcess]:
        """The child processes of the services that are alive, by name: what runs now, or waits to restart."""
        found = []
        for name in sorted(self.running()):
            service = self._services.get(name)
            if isinstance(service, ChildService):
                child = replace(service.child(), restarts=self.restarts.get(name, 0))
                if name in self._backing_off:
                    child = replace(child, state="restarting", pid=0, started_at=0.0, uptime_s=0.0)
                found.append(child)
        return found

    async def _keep(self, service: Service) -> None:
        delay = BACKOFF_START_S
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                await service.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - began > HEALTHY_AFTER_S:
                    delay = BACKOFF_START_S
                self.restarts[service.name] += 1
                # One of our own errors already says in one line what went wrong: a traceback only for a real crash.
                expected = isinstance(exc, NoizyLabError)
                logger.error(
                    "service %s %s (%s); restarting in %.1f s",
                    service.name,
                    "failed" if expected else "crashed",
                    exc,
                    delay,
                    exc_info=not expected,
                )
                self.bus.publish(ServiceRestarted(service=service.name, error=str(exc), delay_s=delay))
                self._backing_off.add(service.name)
                try:
                    await asyncio.sleep(delay)
                finally:
                    self._backing_off.discard(service.name)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def stop(self) -> None:
        """Cancel every service and wait for them to finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

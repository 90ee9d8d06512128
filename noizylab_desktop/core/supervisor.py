"""The supervisor: runs each service's ``run()`` as a task and restarts one that crashes, with backoff."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

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


class Supervisor:
    """Owns the service tasks: start, restart on crash with exponential backoff, stop."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, service: Service) -> None:
        """Run ``service`` until stopped."""
        self.restarts[service.name] = 0
        self._tasks[service.name] = asyncio.create_task(self._keep(service), name=f"service:{service.name}")

    def running(self) -> list[str]:
        """Names of the services whose tasks are alive."""
        return [name for name, task in self._tasks.items() if not task.done()]

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
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def stop(self) -> None:
        """Cancel every service and wait for them to finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

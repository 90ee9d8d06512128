"""A Dask process the node supervises: ``python -m noizylab_desktop.services.dask.child CONFIG``.

CONFIG is a JSON file the node wrote (mode 0600) with the role, where to listen, the cluster's CA certificate and
this process's own certificate and key. The child reads it and deletes it at once, so the key lives on in memory
only (``distributed.Security`` takes PEM text). It speaks to the node on stdout, one line each:

- ``noizylab-dask ready {"address": ..., "dashboard_port": ...}`` once it listens (and a worker has registered);
- ``noizylab-dask status {...}`` (a scheduler) whenever its workers or tasks change;
- ``noizylab-dask refused {...}`` (a scheduler) when it turned a worker away (``admission.py``).

Its HTTP server listens on 127.0.0.1 only, with no routes unless the dashboard is asked for. It exits when the node
that started it is gone, so a killed node leaves no cluster behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

PREFIX = "noizylab-dask"
REPORT_S = 0.25
PARENT_CHECK_S = 1.0


def say(kind: str, data: dict[str, Any]) -> None:
    """One line to the node."""
    sys.stdout.write(f"{PREFIX} {kind} {json.dumps(data, sort_keys=True)}\n")
    sys.stdout.flush()


def _configure(dashboard: bool) -> None:
    import dask

    quiet: dict[str, Any] = {
        "distributed.worker.http.routes": [],
        "distributed.admin.system-monitor.gil.enabled": False,
    }
    if not dashboard:
        quiet["distributed.scheduler.http.routes"] = []
    dask.config.set(quiet)


def _security(config: dict[str, Any]) -> Any:
    from distributed.security import Security

    role = config["role"]
    return Security(  # type: ignore[no-untyped-call]
        require_encryption=True,
        tls_ca_file=config["ca_pem"],
        **{f"tls_{role}_cert": config["cert_pem"], f"tls_{role}_key": config["key_pem"]},
    )


def _status(scheduler: Any) -> dict[str, Any]:
    workers = [
        {
            "name": str(ws.name),
            "address": ws.address,
            "nthreads": ws.nthreads,
            "memory_limit": int(ws.memory_limit or 0),
            "resources": {k: float(v) for k, v in ws.resources.items()},
            "processing": len(ws.processing),
            "memory": int(ws.memory.process),
        }
        for ws in list(scheduler.workers.values())
    ]
    tasks = Counter(ts.state for ts in list(scheduler.tasks.values()))
    return {"workers": sorted(workers, key=lambda w: w["name"]), "tasks": dict(tasks)}


async def _report(scheduler: Any) -> None:
    last = ""
    while True:
        status = _status(scheduler)
        text = json.dumps(status, sort_keys=True)
        if text != last:
            say("status", status)
            last = text
        await asyncio.sleep(REPORT_S)


async def _parent_gone(parent: int) -> None:
    while psutil.pid_exists(parent) and (sys.platform == "win32" or os.getppid() == parent):
        await asyncio.sleep(PARENT_CHECK_S)


async def run_scheduler(config: dict[str, Any]) -> None:
    from distributed import Scheduler

    from noizylab_desktop.services.dask.admission import guard_registrations

    scheduler: Any = Scheduler(
        host=config["host"],
        port=config["port"],
        protocol="tls",
        security=_security(config),
        dashboard=config["dashboard"],
        dashboard_address="127.0.0.1:0",
    )
    guard_registrations(scheduler, config["members"], lambda refused: say("refused", refused))
    async with scheduler:
        say("ready", {"address": scheduler.address, "dashboard_port": scheduler.http_server.port})
        report = asyncio.ensure_future(_report(scheduler))
        parent = asyncio.ensure_future(_parent_gone(config["parent"]))
        await asyncio.wait({report, parent, asyncio.ensure_future(scheduler.finished())},
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip


async def run_worker(config: dict[str, Any]) -> None:
    from distributed import Worker

    async with Worker(
        config["scheduler"],
        host=config["host"],
        protocol="tls",
        security=_security(config),
        name=config["name"],
        nthreads=config["nthreads"],
        memory_limit=config["memory_limit"],
        resources=config["resources"],
        local_directory=config["local_directory"],
        death_timeout=config["death_timeout"],
        dashboard=False,
        dashboard_address="127.0.0.1:0",
    ) as worker:
        say("ready", {"address": worker.address, "dashboard_port": 0})
        parent = asyncio.ensure_future(_parent_gone(config["parent"]))
        await asyncio.wait({parent, asyncio.ensure_future(worker.finished())}, return_when=asyncio.FIRST_COMPLETED)


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    config = json.loads(path.read_text(encoding="utf-8"))
    path.unlink(missing_ok=True)
    _configure(config.get("dashboard", False))
    run = run_scheduler if config["role"] == "scheduler" else run_worker
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

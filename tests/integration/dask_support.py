"""Helpers for the Dask tests: the Dask processes a node runs, the cluster's workers, and certificates put to use
the way a hostile holder would (a client or a worker of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop.grid import Grid
from noizylab_desktop.services.dask.ca import csr_for, key_pem, new_key
from tests.conftest import NodeProcess, within

CHILD = "noizylab_desktop.services.dask.child"


def dask_children(node: NodeProcess) -> list[psutil.Process]:
    """The Dask processes the node runs now (a zombie counts as gone)."""
    try:
        found = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for child in found:
        try:
            if CHILD in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def workers(node: NodeProcess) -> dict[str, Any]:
    return {w["name"]: w for w in node.json("dask", "status")["workers"]}


def supervised(node: NodeProcess) -> dict[str, Any]:
    """``noizylab tasks --json``'s supervised rows, by name."""
    return {row["name"]: row for row in node.json("tasks") if row["role"] == "supervised"}


def security(role: str, ca_pem: bytes, cert_pem: bytes, key: bytes) -> Any:
    """A ``distributed.Security`` that shows ``cert_pem`` in ``role`` and trusts ``ca_pem``."""
    from distributed.security import Security

    return Security(  # type: ignore[no-untyped-call]
        require_encryption=True, tls_ca_file=ca_pem.decode(),
        **{f"tls_{role}_cert": cert_pem.decode(), f"tls_{role}_key": key.decode()},
    )  # fmt: skip


async def refused(address: str, ca_pem: bytes, cert_pem: bytes, key: bytes) -> bool:
    """Whether a client showing ``cert_pem`` (trusting ``ca_pem``) fails to connect."""
    from distributed import Client

    try:
        client = await Client(address, security=security("client", ca_pem, cert_pem, key), asynchronous=True,  # type: ignore[no-untyped-call]
                              timeout="3s")  # fmt: skip
    except (OSError, TimeoutError):
        return True
    await client.close()
    return False


async def issued_to(node: NodeProcess, role: str) -> tuple[dpb.DaskIssued, bytes]:
    """A certificate the cluster issues to ``node``'s own user in ``role``, and its key (as a member's owner could
    get one for itself)."""
    key = new_key()
    async with Grid(node.home) as grid:
        request = dpb.DaskIssueRequest(role=role, csr_pem=csr_for(key))
        reply = await grid.dask.local.call(grid.dask.stub.Issue, request, timeout=15.0)
    assert isinstance(reply, dpb.DaskIssued)
    return reply, key_pem(key)


async def worker_admitted(address: str, sec: Any, name: str, folder: Path) -> bool:
    """Whether a worker of our own, showing ``sec``'s certificate as ``name`` (and offering a GPU), is let in."""
    from distributed import Worker

    worker = Worker(address, security=sec, name=name, nthreads=1, host="127.0.0.1", dashboard=False,  # type: ignore[no-untyped-call]
                    local_directory=str(folder), resources={"GPU": 1}, death_timeout=10)  # fmt: skip
    try:
        await within(worker, 30, f"a worker registering as {name!r} to be admitted or refused")
    except RuntimeError:  # distributed's "Worker failed to start", after the scheduler's refusal
        return False
    await worker.close()
    return True

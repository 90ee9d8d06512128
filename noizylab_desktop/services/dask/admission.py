"""Who may register as which worker: the scheduler checks each registration against the certificate it came with.

Every certificate the cluster's CA issues names one node ID (CN) and one role (OU), and only the members the cluster
was started with get a worker certificate. ``distributed`` itself checks only that a certificate chains to the CA,
so without this a member could register a second worker under another member's name (and be sent the work pinned to
that member, the GPU tasks say), and a client certificate could register a worker at all. The scheduler process
(``child.py``) installs ``guard_registrations``: a worker is admitted only when its certificate is a worker's and
the name it registers with is the one the scheduler's node gave that node ID (``DaskIssued.name``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Subject = Mapping[str, str]  # the peer certificate's subject: {"commonName": ..., "organizationalUnitName": ...}


def subject_of(peercert: Mapping[str, Any] | None) -> dict[str, str]:
    """The subject of a peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it, as one flat mapping."""
    fields: dict[str, str] = {}
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            fields[str(key)] = str(value)
    return fields


def worker_refusal(subject: Subject, name: str, members: Mapping[str, str]) -> str:
    """Why a worker that registers as ``name`` with a certificate for ``subject`` is refused, or "" to admit it.

    ``members`` maps each member's node ID (as the certificates name it) to the worker name it must register with.
    """
    node_id = subject.get("commonName", "")
    role = subject.get("organizationalUnitName", "")
    if role != "worker":
        return f"a {role or 'certificate without a role'} certificate cannot register a worker"
    expected = members.get(node_id)
    if expected is None:
        return f"node {node_id[:15]} is not a member of this cluster"
    if name != expected:
        return f"node {node_id[:15]} registers as {expected!r}, not {name!r}"
    return ""


Report = Callable[[dict[str, str]], None]


def guard_registrations(scheduler: Any, members: Mapping[str, str], report: Report) -> None:
    """Wrap ``scheduler``'s ``register-worker`` handler so that only ``worker_refusal``-free workers get in;
    ``report`` hears of each refusal (the node logs it)."""
    add_worker = scheduler.handlers["register-worker"]

    async def register_worker(comm: Any, **msg: Any) -> None:
        subject = subject_of(comm.extra_info.get("peercert"))
        name = str(msg.get("name", ""))
        why = worker_refusal(subject, name, members)
        if not why:
            await add_worker(comm, **msg)
            return
        report({"name": name, "node_id": subject.get("commonName", ""), "why": why})
        # The answer a worker reads as a refusal (it logs the message and fails to start), shaped as distributed's
        # own for a name already taken.
        await comm.write({"status": "error", "message": f"refused by the grid: {why}", "time": time.time()})

    scheduler.handlers["register-worker"] = register_worker

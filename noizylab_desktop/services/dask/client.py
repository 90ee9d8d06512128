"""The Dask service as the command line and the Python API see it, and a connected ``distributed.Client``.

``connect`` makes a key here, has this node's own node get it a client certificate from the scheduler's node (the
key never leaves this process), and hands ``distributed`` the PEM text: nothing is written to disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop._proto import noizylab_dask_pb2_grpc as dpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.errors import DaskError
from noizylab_desktop.services.dask.ca import csr_for, key_pem, new_key
from noizylab_desktop.services.dask.versions import missing_here

if TYPE_CHECKING:
    from noizylab_desktop.core.local_client import LocalClient

UP_S = 300.0


class DaskClient:
    """``DaskClient(local)``: start, stop and inspect the grid's cluster through this user's own node."""

    def __init__(self, local: LocalClient) -> None:
        self.local = local
        self.stub = dpb_grpc.DaskStub(local.channel)

    async def up(self, scheduler: str = "", workers: list[str] | None = None, all: bool = False) -> dpb.DaskStatus:  # noqa: A002
        request = dpb.DaskUpRequest(scheduler=scheduler, workers=workers or [], all=all)
        reply = await self.local.call(self.stub.Up, request, timeout=UP_S)
        assert isinstance(reply, dpb.DaskStatus)
        return reply

    async def down(self) -> dpb.DaskStatus:
        reply = await self.local.call(self.stub.Down, pb.Empty(), timeout=60.0)
        assert isinstance(reply, dpb.DaskStatus)
        return reply

    async def status(self) -> dpb.DaskStatus:
        reply = await self.local.call(self.stub.Status, pb.Empty(), timeout=15.0)
        assert isinstance(reply, dpb.DaskStatus)
        return reply

    async def here(self) -> dpb.DaskHere:
        """What this node knows of its cluster from memory: it asks no other node (``noizylab status``)."""
        reply = await self.local.call(self.stub.Here, pb.Empty(), timeout=5.0)
        assert isinstance(reply, dpb.DaskHere)
        return reply

    async def security(self) -> tuple[str, Any]:
        """The scheduler's address and a ``distributed.Security`` holding a fresh client certificate."""
        try:
            from distributed.security import Security
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] not in ("dask", "distributed"):
                raise
            raise DaskError(missing_here("distributed")) from None
        key = new_key()
        request = dpb.DaskIssueRequest(role="client", csr_pem=csr_for(key))
        issued = await self.local.call(self.stub.Issue, request, timeout=15.0)
        assert isinstance(issued, dpb.DaskIssued)
        security = Security(  # type: ignore[no-untyped-call]
            require_encryption=True,
            tls_ca_file=issued.ca_pem.decode(),
            tls_client_cert=issued.cert_pem.decode(),
            tls_client_key=key_pem(key).decode(),
        )
        return issued.scheduler_address, security

    async def connect(self, **options: Any) -> Any:
        """A connected asynchronous ``distributed.Client`` (``options`` go to it, e.g. ``timeout``)."""
        address, security = await self.security()
        from distributed import Client

        try:
            client = Client(address, security=security, asynchronous=True, **options)  # type: ignore[no-untyped-call]
            return await client
        except OSError as exc:
            raise DaskError(f"could not connect to the Dask scheduler at {address}: {exc}") from exc


def status_dict(status: dpb.DaskStatus) -> dict[str, Any]:
    """``dask status --json``."""
    return {
        "running": status.running,
        "cluster_id": status.cluster_id,
        "scheduler": {"address": status.scheduler_address, "node": status.scheduler_node,
                      "node_id": status.scheduler_node_id, "dashboard_port": status.dashboard_port},
        "owner": status.owner,
        "expires_at": status.expires_at,
        "workers": [
            {"name": w.name, "node_id": w.node_id, "address": w.address, "nthreads": w.nthreads,
             "memory_limit": w.memory_limit, "resources": dict(w.resources), "processing": w.processing,
             "memory": w.memory}
            for w in status.workers
        ],
        "tasks": dict(status.tasks),
        "pending": list(status.pending),
        "notes": list(status.notes),
    }  # fmt: skip


def here_dict(here: dpb.DaskHere) -> dict[str, Any] | None:
    """``status --json``'s ``dask``: None when no cluster runs on or for this node; counts where it is scheduled."""
    if not here.scheduler_node_id:
        return None
    known = here.scheduler_here
    return {
        "cluster_id": here.cluster_id or None,
        "scheduler": {"node": here.scheduler_node, "node_id": here.scheduler_node_id, "here": known},
        "workers": list(here.workers) if known else None,
        "starting": list(here.starting) if known else None,
        "running_tasks": here.running_tasks if known else None,
        "worker_here": here.worker_here,
    }

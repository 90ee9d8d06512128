"""The cluster whose scheduler runs on this node: its CA (the key stays in this process), its scheduler process,
its members, and what the scheduler last reported."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop.core.errors import DaskError, PermissionRefusedError
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.services.dask.ca import ClusterCA
from noizylab_desktop.services.dask.children import DaskChild
from noizylab_desktop.services.dask.peers import listen_host

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.dask.settings import DaskSettings

logger = logging.getLogger(__name__)


class Cluster:
    """One cluster: ``members`` (fingerprint to name) may hold worker certificates, ``owner`` and this node's user
    client certificates."""

    def __init__(self, ctx: NodeContext, config: DaskSettings, owner: bytes, members: dict[bytes, str]) -> None:
        self.ctx = ctx
        self.config = config
        self.owner = owner
        self.members = dict(members)
        self.notes: list[str] = []
        self.ca = ClusterCA(config.cert_lifetime_h)
        self.address = ""
        self.dashboard_port = 0
        self.report: dict[str, Any] = {"workers": [], "tasks": {}}
        self.updated = asyncio.Event()
        self.renewal: asyncio.Task[None] | None = None
        folder = ctx.paths.state_dir / "dask" / "scheduler"
        role = f"Dask scheduler of cluster {self.ca.cluster_id}"
        self.scheduler = DaskChild("dask-scheduler", role, folder, self._prepare, self._heard)

    @property
    def id(self) -> str:
        return self.ca.cluster_id

    async def _prepare(self) -> dict[str, Any]:
        issued, key = self.ca.issue_own(self.ctx.identity.node_id, "scheduler")
        return {
            "role": "scheduler",
            "host": listen_host(self.ctx, self.config),
            "port": self.config.port,
            "dashboard": self.config.dashboard,
            "ca_pem": self.ca.cert_pem.decode(),
            "cert_pem": issued.cert_pem.decode(),
            "key_pem": key.decode(),
            # Who may register which worker (admission.py): the node ID the certificates name, and its worker's name.
            "members": {format_id(fp): name for fp, name in self.members.items()},
        }

    def _heard(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "ready":
            self.address = str(data["address"])
            self.dashboard_port = int(data.get("dashboard_port") or 0) if self.config.dashboard else 0
        elif kind == "status":
            self.report = data
        elif kind == "refused":
            logger.warning("Dask cluster %s refused a worker registering as %r: %s", self.id, data.get("name"),
                           data.get("why"))  # fmt: skip
        self.updated.set()

    def registered(self) -> set[str]:
        """The names of the workers the scheduler knows now."""
        return {str(w["name"]) for w in self.report.get("workers", [])}

    async def settle(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until every member's worker has registered."""
        deadline = time.monotonic() + timeout
        while not set(self.members.values()) <= self.registered():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.updated.clear()
            try:
                await asyncio.wait_for(self.updated.wait(), left)
            except TimeoutError:
                return

    def issue(self, caller: bytes, request: dpb.DaskIssueRequest) -> dpb.DaskIssued:
        """A certificate for ``caller``'s key, if its role is one it may hold in this cluster."""
        if request.cluster_id and request.cluster_id != self.id:
            raise DaskError(f"cluster {request.cluster_id[:12]} has ended; cluster {self.id} runs now")
        own = caller == self.ctx.identity.fingerprint
        if request.role == "worker" and caller not in self.members:
            raise PermissionRefusedError(f"this node is not a member of Dask cluster {self.id}")
        if request.role == "client" and not (own or caller == self.owner):
            raise PermissionRefusedError(
                f"only {self.ctx.name} and the node that started Dask cluster {self.id} may connect clients to it"
            )
        if request.role not in ("worker", "client"):
            raise PermissionRefusedError("a member may ask for a worker or a client certificate only")
        if not self.address:
            raise DaskError(f"the scheduler of Dask cluster {self.id} is starting: try again in a moment")
        issued = self.ca.issue(request.csr_pem, format_id(caller), request.role)
        return dpb.DaskIssued(
            cluster_id=self.id,
            name=self.members.get(caller, "") if request.role == "worker" else "",
            cert_pem=issued.cert_pem,
            ca_pem=self.ca.cert_pem,
            scheduler_address=self.address,
            expires_at=issued.expires_at,
        )

    def status(self) -> dpb.DaskStatus:
        by_name = {name: fp for fp, name in self.members.items()}
        owner = self.ctx.trust.get(self.owner)
        reply = dpb.DaskStatus(
            running=True,
            cluster_id=self.id,
            scheduler_address=self.address,
            scheduler_node=self.ctx.name,
            scheduler_node_id=self.ctx.identity.node_id,
            owner=owner.name if owner is not None else self.ctx.name,
            tasks={str(k): int(v) for k, v in self.report.get("tasks", {}).items()},
            expires_at=self.ca.expires_at,
            dashboard_port=self.dashboard_port,
            notes=self.notes,
            pending=sorted(set(self.members.values()) - self.registered()),
        )
        for w in self.report.get("workers", []):
            fp = by_name.get(str(w["name"]))
            reply.workers.append(
                dpb.DaskWorker(
                    name=str(w["name"]),
                    node_id=format_id(fp) if fp is not None else "",
                    address=str(w["address"]),
                    nthreads=int(w["nthreads"]),
                    memory_limit=int(w["memory_limit"]),
                    resources={str(k): float(v) for k, v in w["resources"].items()},
                    processing=int(w["processing"]),
                    memory=int(w["memory"]),
                )
            )
        return reply

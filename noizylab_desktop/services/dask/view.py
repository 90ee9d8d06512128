"""What this node knows of the Dask cluster it schedules or works for, read from memory without asking any node.

The tray reads it on every menu rebuild and ``noizylab status`` gets it through ``Dask.Here``: both must answer at
once, so a cluster scheduled on a peer says only what this node holds (its scheduler's node, whether a worker runs
here); its workers and tasks are ``noizylab dask status``'s, which asks the scheduler's node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop.core.nodeid import format_id

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.dask.cluster import Cluster
    from noizylab_desktop.services.dask.member import Member

RUNNING = "processing"  # the scheduler's state for a task a worker is running


@dataclass(frozen=True)
class DaskView:
    """This node's part in a cluster; ``scheduler_id`` is "" when no cluster runs for this node."""

    cluster_id: str = ""  # "" also for a cluster this node's user started on a peer (only the peer knows it)
    scheduler_id: str = ""
    scheduler_name: str = ""
    scheduler_here: bool = False  # the counts below are known only where the scheduler runs
    workers: frozenset[str] = frozenset()  # node IDs of the members whose worker the scheduler knows
    starting: frozenset[str] = frozenset()  # node IDs of members asked to run one that has not registered yet
    running_tasks: int = 0
    worker_here: bool = False  # this node runs a worker

    @property
    def running(self) -> bool:
        return bool(self.scheduler_id)

    def to_proto(self) -> dpb.DaskHere:
        return dpb.DaskHere(
            cluster_id=self.cluster_id,
            scheduler_node=self.scheduler_name,
            scheduler_node_id=self.scheduler_id,
            scheduler_here=self.scheduler_here,
            workers=sorted(self.workers),
            starting=sorted(self.starting),
            running_tasks=self.running_tasks,
            worker_here=self.worker_here,
        )


def view_of(
    ctx: NodeContext, cluster: Cluster | None, member: Member | None, home: bytes | None, worker_up: bool
) -> DaskView:
    """The view from the cluster scheduled here, else this node's membership, else the peer its user started one on."""
    if cluster is not None:
        registered = cluster.registered()
        members = {format_id(fp): name for fp, name in cluster.members.items()}
        workers = frozenset(node_id for node_id, name in members.items() if name in registered)
        tasks = cluster.report.get("tasks", {})
        return DaskView(
            cluster_id=cluster.id,
            scheduler_id=ctx.identity.node_id,
            scheduler_name=ctx.name,
            scheduler_here=True,
            workers=workers,
            starting=frozenset(members) - workers,
            running_tasks=int(tasks.get(RUNNING, 0)),
            worker_here=worker_up,
        )
    scheduler, cluster_id = (member.home, member.cluster_id) if member is not None else (home, "")
    if scheduler is None:
        return DaskView()
    peer = ctx.trust.get(scheduler)
    name = ctx.name if scheduler == ctx.identity.fingerprint else peer.name if peer is not None else "?"
    return DaskView(cluster_id=cluster_id, scheduler_id=format_id(scheduler), scheduler_name=name,
                    worker_here=worker_up)  # fmt: skip

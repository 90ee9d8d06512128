"""This node's part in a cluster as a member: one worker, re-certified by the scheduler's node at each (re)start."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.errors import NoizyLabError, TransportError
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.services.dask.ca import csr_for, key_pem, new_key
from noizylab_desktop.services.dask.children import DaskChild, Retired
from noizylab_desktop.services.dask.peers import listen_host

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext
    from noizylab_desktop.services.dask.settings import DaskSettings

logger = logging.getLogger(__name__)

DEATH_TIMEOUT_S = 30  # a worker that cannot reach its scheduler this long exits (and is restarted, re-certified)
MAX_UNREACHABLE = 8  # restarts in a row that could not reach the scheduler's node before this node gives up

Issue = Callable[[bytes, dpb.DaskIssueRequest], Awaitable[dpb.DaskIssued]]


def worker_resources(caps: pb.Capabilities, extra: Mapping[str, float]) -> dict[str, float]:
    """What a worker advertises: ``GPU`` = the NVIDIA GPUs NVML found (none: no GPU resource), then ``[dask]
    resources``, which may add or override any."""
    found = {"GPU": float(len(caps.gpus))} if caps.gpus else {}
    found.update(extra)
    return found


class Member:
    """This node's worker in the cluster whose scheduler runs on ``home`` (this node's own fingerprint included);
    ``peers`` are the cluster's other nodes (scheduler's node, owner, members), each of which it allows ``tasks``."""

    def __init__(
        self,
        ctx: NodeContext,
        config: DaskSettings,
        home: bytes,
        cluster_id: str,
        issue: Issue,
        peers: frozenset[bytes] = frozenset(),
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.home = home
        self.cluster_id = cluster_id
        self.peers = peers
        self._issue = issue
        self._unreachable = 0
        role = f"Dask worker in cluster {cluster_id}"
        self.worker = DaskChild("dask-worker", role, ctx.paths.state_dir / "dask" / "worker", self._prepare)

    @property
    def home_id(self) -> str:
        return format_id(self.home)

    async def _prepare(self) -> dict[str, Any]:
        key = new_key()
        request = dpb.DaskIssueRequest(cluster_id=self.cluster_id, role="worker", csr_pem=csr_for(key))
        try:
            issued = await self._issue(self.home, request)
        except TransportError:
            self._unreachable += 1
            if self._unreachable >= MAX_UNREACHABLE:
                raise Retired("the scheduler's node has not answered for several tries") from None
            raise
        except NoizyLabError as exc:
            # Refused: the cluster ended or changed, or this node is no longer one of its members.
            raise Retired(exc.message) from exc
        self._unreachable = 0
        caps = self.ctx.info().capabilities
        resources = worker_resources(caps, self.config.extra_resources())
        return {
            "role": "worker",
            "scheduler": issued.scheduler_address,
            "host": listen_host(self.ctx, self.config),
            "name": issued.name or self.ctx.name,  # the scheduler admits this name only (admission.py)
            "nthreads": self.config.nthreads or caps.cpu_count or 1,
            "memory_limit": int(caps.memory_total_bytes * self.config.memory_fraction) or "auto",
            "resources": resources,
            "local_directory": str(self.worker.folder),
            "death_timeout": DEATH_TIMEOUT_S,
            "ca_pem": issued.ca_pem.decode(),
            "cert_pem": issued.cert_pem.decode(),
            "key_pem": key_pem(key).decode(),
        }

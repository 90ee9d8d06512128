"""A Dask cluster across two real nodes: up, a 1,000-task map, a task pinned by resource, a stranger refused at the
TLS handshake, an unpaired member's worker gone, and ``dask down`` leaving no process behind."""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Any

import psutil
import pytest

from noizylab_desktop.grid import Grid
from noizylab_desktop.services.dask.ca import ClusterCA, csr_for, key_pem, new_key
from tests.conftest import NodeProcess, start_all, wait_for, within
from tests.integration.dask_support import dask_children, refused, workers
from tests.integration.tasks_helpers import pair

pytest.importorskip("distributed")


def test_a_grid_cluster_runs_maps_pins_by_resource_refuses_strangers_and_ends_cleanly(tmp_path: Any) -> None:
    alpha, beta = start_all(
        NodeProcess(tmp_path / "alpha", "alpha"), NodeProcess(tmp_path / "beta", "beta", dask={"resources": ["GPU=1"]})
    )
    try:
        pair(alpha, beta)
        beta.cli("allow", "alpha", "tasks")
        alpha.cli("allow", "beta", "tasks")  # each member allows every other (alpha runs a worker too)
        up = alpha.json("dask", "up")
        assert sorted(w["name"] for w in up["workers"]) == ["alpha", "beta"], up
        assert up["scheduler"]["address"].startswith("tls://127.0.0.1:") and up["scheduler"]["dashboard_port"] == 0
        assert workers(alpha)["beta"]["resources"] == {"GPU": 1.0} and workers(alpha)["alpha"]["resources"] == {}

        async def use_it() -> None:
            async with Grid(alpha.home) as grid:
                client = await within(grid.dask_client(), 30, "a client of the grid's cluster")
                try:
                    # The workers cannot import this test module (a user's own script would not be on their path
                    # either): the work is the standard library's, which every worker has.
                    squares = client.map(operator.mul, range(1000), range(1000))
                    assert await within(client.gather(squares), 60, "1,000 tasks") == [x * x for x in range(1000)]
                    pinned = client.submit(os.getpid, resources={"GPU": 1}, pure=False)
                    ran_in = await within(pinned, 20, "the GPU task")
                    assert ran_in in {p.pid for p in dask_children(beta)}, "the GPU task ran outside beta's worker"
                    address = client.scheduler.address
                finally:
                    await client.close()
                stranger = ClusterCA(1)
                key = new_key()
                own = stranger.issue(csr_for(key), "stranger", "client")
                assert await refused(address, stranger.cert_pem, own.cert_pem, key_pem(key))
                # The grid's own node certificate is not one the cluster issued either.
                identity = alpha.identity()
                assert await refused(address, identity.cert_pem, identity.cert_pem, identity.key_pem)

        asyncio.run(use_it())
        beta_workers = dask_children(beta)
        assert len(beta_workers) == 1

        alpha.cli("unpair", "beta")
        wait_for(lambda: list(workers(alpha)) == ["alpha"], timeout=60, what="the cluster to go on without beta")
        wait_for(lambda: not dask_children(beta), timeout=30, what="beta's worker to end")
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in beta_workers)

        alpha.cli("dask", "down")
        wait_for(lambda: not dask_children(alpha), timeout=20, what="alpha's scheduler and worker to end")
        assert alpha.json("dask", "status")["running"] is False
    finally:
        alpha.stop()
        beta.stop()

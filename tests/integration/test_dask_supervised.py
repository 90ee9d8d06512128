"""The cluster's processes are the nodes' supervised children: `noizylab tasks` lists each one (name, role, pid,
state, uptime, restarts) on the node that runs it, a worker killed behind the node's back comes back under a new pid,
and `dask down` leaves none listed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.dask_support import dask_children, supervised, workers
from tests.integration.tasks_helpers import pair

pytest.importorskip("distributed")


def test_the_scheduler_and_workers_show_in_tasks_and_a_killed_worker_is_restarted(tmp_path: Path) -> None:
    alpha, beta = start_all(NodeProcess(tmp_path / "alpha", "alpha"), NodeProcess(tmp_path / "beta", "beta"))
    try:
        pair(alpha, beta)
        beta.cli("allow", "alpha", "tasks")
        alpha.cli("allow", "beta", "tasks")  # each member allows every other (alpha runs a worker too)
        cluster = alpha.json("dask", "up")["cluster_id"]

        here = wait_for(lambda: (rows := supervised(alpha)) and all(r["state"] == "running" for r in rows.values())
                        and rows, timeout=30, what="alpha's scheduler and worker listed as running")  # fmt: skip
        assert sorted(here) == ["dask-scheduler", "dask-worker"]
        assert {r["pid"] for r in here.values()} == {p.pid for p in dask_children(alpha)}
        assert here["dask-scheduler"]["description"] == f"Dask scheduler of cluster {cluster}"
        assert here["dask-worker"]["description"] == f"Dask worker in cluster {cluster}"
        assert here["dask-worker"]["detail"].startswith("tls://127.0.0.1:")
        assert all(r["uptime_s"] > 0 and r["restarts"] == 0 for r in here.values()), here

        there = supervised(beta)
        assert list(there) == ["dask-worker"] and there["dask-worker"]["state"] == "running", there
        (worker,) = dask_children(beta)
        assert there["dask-worker"]["pid"] == worker.pid
        listing = beta.cli("tasks").stdout
        assert "supervised by this node:" in listing, listing
        row = next(line.split() for line in listing.splitlines() if line.startswith("dask-worker"))
        assert row[:3] == ["dask-worker", str(worker.pid), "running"] and row[4] == "0", row  # then uptime, restarts
        assert " ".join(row[5:8]) == "Dask worker in", row

        os.kill(worker.pid, signal.SIGKILL)  # behind the node's back: its supervisor must bring it back
        again = wait_for(lambda: (row := supervised(beta).get("dask-worker")) and row["state"] == "running"
                         and row["pid"] != worker.pid and row, timeout=60, what="beta's worker restarted")  # fmt: skip
        assert again["restarts"] == 1 and again["pid"] in {p.pid for p in dask_children(beta)}, again
        wait_for(lambda: "beta" in workers(alpha), timeout=30, what="the restarted worker to register again")

        alpha.cli("dask", "down")
        wait_for(lambda: not supervised(alpha) and not supervised(beta), timeout=30, what="no supervised rows left")
        assert not dask_children(alpha) and not dask_children(beta)
    finally:
        alpha.stop()
        beta.stop()

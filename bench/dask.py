"""The grid's Dask cluster (two real nodes on loopback, mutual TLS) beside the built-in tasks and a plain local
``distributed.LocalCluster`` (the anchor: no TLS, one machine), in the same run.

Run: ``scripts/with-keyring.sh .venv/bin/python bench/dask.py`` (``--quick`` for a short run). Two nodes (alpha asks
and schedules; each allows the other's tasks) start in temporary homes, pair, and ``noizylab dask up`` puts a worker on
each. Measured:

- no-op throughput: N tasks (10,000) that return at once, ``client.map`` then ``gather``, on the grid's cluster and
  on a LocalCluster of two worker processes; the built-in tasks run as many no-op commands (``true``, each one a
  process), submitted with ``SubmitBatch`` 1,000 at a time, until all have exited;
- a 2-node map: 400 tasks of ~20 ms of pure-Python work each, spread over both workers, against the LocalCluster.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from noizylab_desktop._proto import noizylab_tasks_pb2 as tpb
from noizylab_desktop.grid import Grid

# Python puts this script's folder first on the path, where this very file would shadow the `dask` package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_tasks", HERE / "tasks.py")
assert _spec is not None and _spec.loader is not None
bench_tasks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tasks)  # bench/tasks.py: the same two paired nodes
cli, start_nodes = bench_tasks.cli, bench_tasks.start_nodes


CHUNK = 1_000  # built-in tasks per SubmitBatch


def noop(x: int) -> int:
    return x


def work(x: int) -> int:
    return sum(i * i for i in range(60_000)) + x  # ~20 ms of CPU


async def dask_figures(client: Any, tasks: int, chunks: int) -> dict[str, float]:
    began = time.perf_counter()
    results = await client.gather(client.map(noop, range(tasks)))
    noop_s = time.perf_counter() - began
    assert results == list(range(tasks))
    began = time.perf_counter()
    await client.gather(client.map(work, range(chunks)))
    map_s = time.perf_counter() - began
    return {"noop_s": tasks / noop_s, "map_s": chunks / map_s}


async def grid_run(alpha: Path, tasks: int, builtin: int, chunks: int) -> dict[str, float]:
    async with Grid(alpha) as grid:
        client = await grid.dask_client()
        try:
            where = {w.name for w in (await grid.dask.status()).workers}
            assert where == {"alpha", "beta"}, where
            figures = await dask_figures(client, tasks, chunks)
        finally:
            await client.close()
        began = time.perf_counter()
        await builtin_run(grid, builtin)
        figures["builtin_s"] = builtin / (time.perf_counter() - began)
    return figures


async def builtin_run(grid: Grid, count: int) -> None:
    """``count`` no-op commands through ``SubmitBatch``, CHUNK at a time with at most two chunks outstanding (the
    node keeps ``history_limit`` records, 5,000 by default: a window well inside it is always visible in ``List``)."""
    outstanding: set[str] = set()
    submitted = 0
    while submitted < count or outstanding:
        if submitted < count and len(outstanding) <= CHUNK:
            n = min(CHUNK, count - submitted)
            requests = [tpb.SubmitRequest(spec=tpb.TaskSpec(argv=["true"])) for _ in range(n)]
            outstanding |= {a.id for a in await grid.tasks.submit_batch(requests)}
            submitted += n
            continue
        await asyncio.sleep(0.1)
        outstanding -= {r.id for r in await grid.tasks.list(3 * CHUNK) if r.state != "running"}


async def local_run(tasks: int, chunks: int) -> dict[str, float]:
    from distributed import Client, LocalCluster

    threads = os.cpu_count() or 1  # as each grid worker has (DaskSettings.nthreads = 0)
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=threads, processes=True, asynchronous=True,
        dashboard_address="127.0.0.1:0", host="127.0.0.1",
    )  # fmt: skip
    async with cluster, Client(cluster, asynchronous=True) as client:  # type: ignore[no-untyped-call]
        return await dask_figures(client, tasks, chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--builtin", type=int, default=10_000, help="built-in no-op tasks (each is a process)")
    args = parser.parse_args()
    tasks, builtin, chunks = (1_000, 200, 100) if args.quick else (args.tasks, args.builtin, 400)
    with tempfile.TemporaryDirectory() as tmp:
        alpha, beta = start_nodes(Path(tmp))
        try:
            cli(alpha, "allow", "beta", "tasks")  # alpha runs the scheduler and a worker beside beta's
            cli(alpha, "dask", "up")
            grid = asyncio.run(grid_run(alpha, tasks, builtin, chunks))
            cli(alpha, "dask", "down")
        finally:
            for home in (alpha, beta):
                cli(home, "stop")
    local = asyncio.run(local_run(tasks, chunks))
    w = 40
    print(f"{'':{w}} {'grid':>16} {'LocalCluster':>14} {'ratio':>7}")
    print(f"{f'{tasks:,} no-op tasks, Dask (tasks/s)':{w}} {grid['noop_s']:16,.0f} {local['noop_s']:14,.0f} "
          f"{grid['noop_s'] / local['noop_s']:7.2f}")  # fmt: skip
    print(f"{f'{chunks} x 20 ms map, Dask (tasks/s)':{w}} {grid['map_s']:16,.1f} {local['map_s']:14,.1f} "
          f"{grid['map_s'] / local['map_s']:7.2f}")  # fmt: skip
    print(f"{f'{builtin:,} no-op, built-in tasks (tasks/s)':{w}} {grid['builtin_s']:16,.1f} {local['noop_s']:14,.0f} "
          f"{grid['builtin_s'] / local['noop_s']:7.2f}")  # fmt: skip
    print(
        f"grid Dask carried {grid['noop_s'] / grid['builtin_s']:.1f}x as many no-op tasks per second as the built-in "
        "tasks (one process each)"
    )


if __name__ == "__main__":
    main()

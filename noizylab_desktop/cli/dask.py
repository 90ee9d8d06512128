"""``noizylab dask up|status|down``: a Dask cluster across the grid, secured with certificates the grid issues."""

from __future__ import annotations

import argparse
from typing import Any

from noizylab_desktop.cli.output import add_json_flag, notice, print_json, timestamp
from noizylab_desktop.core.config import Paths, Settings

GIB = 2**30


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the dask commands."""
    dask = sub.add_parser("dask", help="a Dask cluster across the grid (needs the `dask` extra)")
    actions = dask.add_subparsers(dest="dask_command", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start a scheduler and workers on the members that allow tasks")
    up.add_argument("--scheduler", default="", metavar="PEER", help="where the scheduler runs (default: here)")
    which = up.add_mutually_exclusive_group()
    which.add_argument("--workers", nargs="+", default=[], metavar="PEER", help="run workers on these (`self`: here)")
    which.add_argument("--all", action="store_true", help="every paired peer must run a worker")
    add_json_flag(up)
    up.set_defaults(handler=_up)
    status = actions.add_parser("status", help="the cluster's workers, resources and running tasks")
    add_json_flag(status)
    status.set_defaults(handler=_status)
    down = actions.add_parser("down", help="stop the scheduler and every worker")
    down.set_defaults(handler=_down)


def _up(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.dask.client import DaskClient

    status = run_with_node(paths, settings, lambda node: DaskClient(node).up(args.scheduler, args.workers, args.all))
    _show(status, args.json)
    return 0


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.dask.client import DaskClient

    _show(run_with_node(paths, settings, lambda node: DaskClient(node).status()), args.json)
    return 0


def _down(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.services.dask.client import DaskClient

    status = run_with_node(paths, settings, lambda node: DaskClient(node).down())
    for note in status.notes:
        print(note)
    return 0


def _show(status: Any, as_json: bool) -> None:
    from noizylab_desktop.services.dask.client import status_dict

    if as_json:
        print_json(status_dict(status))
        return
    for note in status.notes:
        notice(note)
    if not status.running:
        print("no Dask cluster runs: start one with `noizylab dask up`")
        return
    print(f"cluster {status.cluster_id} on {status.scheduler_node} at {status.scheduler_address}, "
          f"certificates until {timestamp(status.expires_at)}")  # fmt: skip
    if status.dashboard_port:
        print(f"dashboard http://127.0.0.1:{status.dashboard_port}/status")
    print(f"{'WORKER':<14} {'THREADS':>7} {'MEMORY':>9} {'RUNNING':>7}  RESOURCES")
    for w in status.workers:
        resources = ", ".join(f"{k}={v:g}" for k, v in sorted(w.resources.items())) or "-"
        print(f"{w.name[:14]:<14} {w.nthreads:>7} {w.memory_limit / GIB:>7.1f} G {w.processing:>7}  {resources}")
    for name in status.pending:
        print(f"{name[:14]:<14} (starting)")
    tasks = ", ".join(f"{n} {state}" for state, n in sorted(status.tasks.items())) or "none"
    print(f"tasks: {tasks}")

"""``noizylab node|start|stop|status|logs``: run this home's node in the foreground or the background, stop it, and
see how it is doing."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.cli.pairing import peer_dict, print_peers
from noizylab_desktop.core.config import Paths, Settings, load_settings, save_settings

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core.local_client import LocalClient


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the commands that run, stop and show the node."""
    node = sub.add_parser("node", help="run the node in the foreground, without a tray (for servers)")
    _ports(node)
    node.set_defaults(handler=_node)
    start = sub.add_parser("start", help="start the node in the background")
    _ports(start)
    start.set_defaults(handler=_start)
    sub.add_parser("stop", help="stop the background node").set_defaults(handler=_stop)
    status = sub.add_parser("status", help="this node, its ports and its peers")
    add_json_flag(status)
    status.set_defaults(handler=_status)
    logs = sub.add_parser("logs", help="show the node's log")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines to show (default 50)")
    logs.set_defaults(handler=_logs)


def _ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="gRPC port (0 picks a free one); remembered in the config")
    parser.add_argument("--sftp-port", type=int, help="SFTP port (0 picks a free one); remembered in the config")
    parser.add_argument("--http-port", type=int, help="metrics/API port (0 picks a free one); remembered")
    parser.add_argument(
        "--totp", metavar="CODE", help="a TOTP code, when TOTP is on and http_host exposes the API beyond loopback"
    )


def _step_up(args: argparse.Namespace, paths: Paths, settings: Settings) -> None:
    """Check ``--totp`` here, before the node starts: the step-up it begins lets the node expose what it asks."""
    if args.totp:
        from noizylab_desktop.core.secrets import KeyringStore
        from noizylab_desktop.core.totp import Totp

        Totp(KeyringStore(settings.keychain_id), paths.state_dir).verify(args.totp)


def _remember_ports(args: argparse.Namespace, paths: Paths, settings: Settings) -> Settings:
    updated = settings.with_ports(args.port, args.sftp_port, args.http_port)
    if updated != settings:
        save_settings(paths, updated)
    return updated


def _node(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli import first_run
    from noizylab_desktop.node.launcher import run_foreground, setup_logging

    settings = _remember_ports(args, paths, settings)
    _step_up(args, paths, settings)
    setup_logging(paths, to_stderr=True)
    # At a terminal, a node's first run asks its questions beside the running node (cli/first_run.py).
    ready = (lambda: first_run.offer_beside(paths, settings)) if first_run.interactive() else None
    return run_foreground(paths, settings, ready)


def _start(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.node.launcher import start_background

    _step_up(args, paths, _remember_ports(args, paths, settings))
    runtime = start_background(paths, [])
    print(f"node started (pid {runtime['pid']}, gRPC port {runtime['grpc_port']}); `noizylab status` shows it")
    from noizylab_desktop.cli import first_run

    first_run.offer(paths, load_settings(paths))
    return 0


def _stop(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    return stop_node(paths, settings)


def stop_node(paths: Paths, settings: Settings) -> int:
    """Ask the node for ``paths`` to shut down, and end its process if it does not within the launcher's timeout."""
    import asyncio

    from noizylab_desktop.core.errors import LauncherError, NotRunningError
    from noizylab_desktop.core.local_client import LocalClient
    from noizylab_desktop.core.runtime import read_runtime_file
    from noizylab_desktop.node import launcher

    runtime = read_runtime_file(paths.runtime_file)
    if runtime is None or not launcher.pid_alive(int(runtime["pid"])):
        if launcher.InstanceLock(paths.lock_file).held_elsewhere():
            raise LauncherError(f"a node holds {paths.lock_file} but left no runtime file: stop its process by hand")
        print("no node is running for this home")
        return 0
    pid = int(runtime["pid"])

    async def ask() -> None:
        async with LocalClient(paths, settings) as client:
            await client.shutdown()

    try:
        asyncio.run(ask())
        stopped = launcher.wait_exit(pid, launcher.STOP_TIMEOUT_S)
    except NotRunningError:
        stopped = False
    if not stopped:
        launcher.terminate(pid)
    print(f"node stopped (pid {pid})")
    return 0


def status_dict(reply: pb.StatusReply, dask: dict[str, Any] | None = None) -> dict[str, Any]:
    """``status --json``; ``dask`` is the cluster this node schedules or works for (``here_dict``), if any."""
    info = reply.info
    return {
        "running": True,
        "id": info.id,
        "name": info.name,
        "version": info.version,
        "pid": reply.pid,
        "uptime_s": round(time.time() - info.started_at, 1),
        # SFTP and HTTP servers arrive with the sync and metrics issues; until then nothing is bound there.
        "ports": {"grpc": info.ports.grpc, "sftp": info.ports.sftp or None, "http": info.ports.http or None},
        "pairing_port": reply.pairing_port or None,
        "peers": [peer_dict(p) for p in reply.peers],
        "calls": {"handled": dict(reply.handled_calls), "refused": dict(reply.refused_calls)},
        "dask": dask,
    }


def dask_line(dask: dict[str, Any]) -> str:
    """``status``'s Dask line: the counts where the scheduler runs here, else where it runs."""
    scheduler = dask["scheduler"]
    worker = "a worker here" if dask["worker_here"] else "no worker here"
    if not scheduler["here"]:
        return f"dask: cluster scheduled on {scheduler['node']}, {worker} (`noizylab dask status` asks it for more)"
    workers, running = len(dask["workers"]), dask["running_tasks"]
    starting = f" ({len(dask['starting'])} starting)" if dask["starting"] else ""
    return (f"dask: scheduler of cluster {dask['cluster_id']} here, {workers} worker{'s' * (workers != 1)}{starting}, "
            f"{running} task{'s' * (running != 1)} running, {worker}")  # fmt: skip


def print_status(data: dict[str, Any]) -> None:
    """``status`` for a person: the node, its ports, then its peers."""
    print(f"{data['name']}  {data['id']}")
    print(f"  running, pid {data['pid']}, up {data['uptime_s']:.0f} s, gRPC port {data['ports']['grpc']}")
    if data["pairing_port"]:
        print(f"  pairing port {data['pairing_port']} open until the last invite code has expired")
    if data.get("dask"):
        print(f"  {dask_line(data['dask'])}")
    print_peers(data["peers"])


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.errors import NotRunningError

    try:
        data = run_with_node(paths, settings, ask_status)
    except NotRunningError as exc:
        if args.json:
            print_json({"running": False, "name": settings.name, "error": exc.message}, one_line=True)
            return 1
        raise
    if args.json:
        print_json(data)
    else:
        print_status(data)
    return 0


async def ask_status(node: LocalClient) -> dict[str, Any]:
    """What ``status --json`` prints for the node ``node`` reaches."""
    from noizylab_desktop.services.dask.client import DaskClient, here_dict

    reply = await node.status()
    # The node answers Here from memory; a cluster scheduled on a peer is `dask status`'s to ask about.
    return status_dict(reply, here_dict(await DaskClient(node).here()))


def _logs(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.node.launcher import follow

    if not paths.log_file.exists() and not args.follow:
        print(f"no log yet in {paths.log_file}")
        return 0
    if paths.log_file.exists():
        lines = paths.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[-args.lines :] if args.lines > 0 else []:
            print(line)
    if args.follow:
        for line in follow(paths.log_file):
            print(line, flush=True)
    return 0

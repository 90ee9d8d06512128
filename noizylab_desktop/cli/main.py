"""The ``noizylab`` command: argument parsing only; every command calls into ``node`` or ``services``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from noizylab_desktop import __version__
from noizylab_desktop.core.config import Paths, Settings, load_settings, save_settings
from noizylab_desktop.core.errors import NoizyLabError

# gRPC's C core logs handshake failures to stderr at INFO; a person should see only our one-line errors.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

Handler = Callable[[argparse.Namespace, Paths, Settings], int]


def _ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="gRPC port (0 picks a free one); remembered in the config")
    parser.add_argument("--sftp-port", type=int, help="SFTP port (0 picks a free one); remembered in the config")
    parser.add_argument("--http-port", type=int, help="metrics/API port (0 picks a free one); remembered")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="noizylab", description="NOIZYLAB Desktop: join your computers into one private grid."
    )
    parser.add_argument("--version", action="version", version=f"noizylab {__version__}")
    parser.add_argument("--home", help="folder for this node's config, state and logs (or NOIZYLAB_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    node = sub.add_parser("node", help="run the node in the foreground, without a tray (for servers)")
    _ports(node)
    start = sub.add_parser("start", help="start the node in the background")
    _ports(start)
    sub.add_parser("stop", help="stop the background node")
    status = sub.add_parser("status", help="this node, its ports and its peers")
    _json(status)
    logs = sub.add_parser("logs", help="show the node's log")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines to show (default 50)")
    ident = sub.add_parser("id", help="print this node's ID")
    _json(ident)

    pair = sub.add_parser("pair", help="pair with another machine")
    pair_sub = pair.add_subparsers(dest="pair_command", metavar="ACTION", required=True)
    invite = pair_sub.add_parser("invite", help="show a one-time code to type on the other machine")
    _json(invite)
    invite.add_argument("--address", action="append", default=[], help="address to put in the code (repeatable)")
    invite.add_argument("--no-wait", action="store_true", help="print the code and return at once")
    join = pair_sub.add_parser("join", help="pair using a code shown on the other machine")
    join.add_argument("code")
    _json(join)

    peers = sub.add_parser("peers", help="paired machines and their health")
    _json(peers)
    unpair = sub.add_parser("unpair", help="stop trusting a paired machine")
    unpair.add_argument("peer", help="its ID, the start of its ID, or its name")
    demo = sub.add_parser("demo", help="start two nodes on this machine, pair them and show their status")
    demo.add_argument("--keep", action="store_true", help="leave both nodes running")
    from noizylab_desktop.node.features import cli_registrars

    for register in cli_registrars():
        register(sub)
    return parser


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _remember_ports(args: argparse.Namespace, paths: Paths, settings: Settings) -> Settings:
    updated = settings.with_ports(args.port, args.sftp_port, args.http_port)
    if updated != settings:
        save_settings(paths, updated)
    return updated


def cmd_node(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.node.launcher import run_foreground, setup_logging

    settings = _remember_ports(args, paths, settings)
    setup_logging(paths, to_stderr=True)
    return run_foreground(paths, settings)


def cmd_start(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.node.launcher import start_background

    _remember_ports(args, paths, settings)
    runtime = start_background(paths, [])
    print(f"node started (pid {runtime['pid']}, gRPC port {runtime['grpc_port']}); `noizylab status` shows it")
    return 0


def cmd_stop(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.commands import stop

    return stop(paths, settings)


def cmd_logs(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
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


def _async_command(name: str) -> Handler:
    def handler(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
        from noizylab_desktop.cli import commands

        command = getattr(commands, name)
        return _run(command(args, paths, settings))

    return handler


def cmd_tray(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.ui.app import run_tray

    return run_tray(paths, settings)


HANDLERS: dict[str, Handler] = {
    "node": cmd_node,
    "start": cmd_start,
    "stop": cmd_stop,
    "logs": cmd_logs,
    "status": _async_command("status"),
    "id": _async_command("show_id"),
    "peers": _async_command("peers"),
    "unpair": _async_command("unpair"),
    "pair": _async_command("pair"),
    "demo": _async_command("demo"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn our errors into one line on stderr with exit code 1."""
    args = build_parser().parse_args(argv)
    try:
        paths = Paths.resolve(args.home)
        paths.ensure()
        settings = load_settings(paths)
        handler = HANDLERS.get(args.command or "") or getattr(args, "handler", None) or cmd_tray
        return handler(args, paths, settings)
    except NoizyLabError as exc:
        print(f"noizylab: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

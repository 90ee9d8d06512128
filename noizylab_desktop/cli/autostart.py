"""``noizylab autostart on|off|status``: start the tray of this home when the person logs in (``node/autostart``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.node.autostart import AutostartStatus


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``autostart`` and its actions."""
    parser = sub.add_parser("autostart", help="start the tray at login: on, off, status")
    actions = parser.add_subparsers(dest="autostart_command", metavar="ACTION", required=True)
    for verb, text in (("on", "start the tray at login"), ("off", "stop starting it at login"), ("status", "")):
        action = actions.add_parser(verb, help=text or "whether it starts at login, and where that is set")
        add_json_flag(action)
        action.set_defaults(handler=_autostart, verb=verb)


def status_dict(status: AutostartStatus) -> dict[str, Any]:
    """``autostart ... --json``."""
    return {"state": status.state, "on": status.on, "where": status.where, "command": list(status.command),
            "hint": status.hint or None}  # fmt: skip


def _autostart(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.node.autostart import for_platform

    autostart = for_platform(paths)
    status = {"on": autostart.enable, "off": autostart.disable, "status": autostart.status}[args.verb]()
    if args.json:
        print_json(status_dict(status), one_line=True)
    else:
        print(status.line())
    return 0

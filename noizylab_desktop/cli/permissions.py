"""``noizylab allow|deny PEER SCOPE`` and ``permissions``: what each paired peer may ask of this node."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.client import add_totp_flag
from noizylab_desktop.cli.output import add_json_flag, print_listing
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.permissions import SCOPES

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core.local_client import LocalClient


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the permission commands."""
    scopes = ", ".join(SCOPES)
    for verb, allowed in (("allow", True), ("deny", False)):
        parser = sub.add_parser(verb, help=f"{verb} a paired peer one or more things ({scopes})")
        parser.add_argument("peer", help="its ID, the start of its ID, or its name")
        parser.add_argument("scope", nargs="+", choices=list(SCOPES), metavar="SCOPE", help=scopes)
        if allowed:
            add_totp_flag(parser)  # control, display and tasks ask for a step-up when TOTP is on
        parser.set_defaults(handler=_set, allowed=allowed, totp=None)
    listing = sub.add_parser("permissions", help="what each paired peer may do on this machine")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)


def _row(peer: pb.PeerPermissions) -> dict[str, Any]:
    return {"id": peer.peer_id, "name": peer.peer_name, "allowed": dict(sorted(peer.allowed.items()))}


def _line(peer: pb.PeerPermissions) -> str:
    on = [scope for scope in SCOPES if peer.allowed.get(scope)]
    return f"{peer.peer_name}: {', '.join(on) if on else 'nothing allowed'}"


def _set(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node

    async def set_each(node: LocalClient) -> pb.PeerPermissions:
        reply = pb.PeerPermissions()
        for scope in args.scope:
            reply = await node.set_permission(args.peer, scope, args.allowed)
        return reply

    print(_line(run_with_node(paths, settings, set_each, args.totp)))
    return 0


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    reply = run_with_node(paths, settings, lambda node: node.permissions())
    print_listing(
        reply.peers,
        as_json=args.json,
        row=_row,
        line=_line,
        empty="no paired peers yet: pair one with `noizylab pair invite`",
    )
    return 0

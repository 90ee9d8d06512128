"""``noizylab allow|deny PEER SCOPE`` and ``permissions``: what each paired peer may ask of this node."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.permissions import SCOPES


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the permission commands."""
    scopes = ", ".join(SCOPES)
    for verb, allowed in (("allow", True), ("deny", False)):
        parser = sub.add_parser(verb, help=f"{verb} a paired peer one or more things ({scopes})")
        parser.add_argument("peer", help="its ID, the start of its ID, or its name")
        parser.add_argument("scope", nargs="+", choices=list(SCOPES), metavar="SCOPE", help=scopes)
        parser.set_defaults(handler=_set, allowed=allowed)
    listing = sub.add_parser("permissions", help="what each paired peer may do on this machine")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.set_defaults(handler=_list)


def _row(peer: pb.PeerPermissions) -> dict[str, Any]:
    return {"id": peer.peer_id, "name": peer.peer_name, "allowed": dict(sorted(peer.allowed.items()))}


def _print(peer: pb.PeerPermissions) -> None:
    on = [scope for scope in SCOPES if peer.allowed.get(scope)]
    print(f"{peer.peer_name}: {', '.join(on) if on else 'nothing allowed'}")


def _set(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core.local_client import LocalClient

    async def go() -> int:
        async with LocalClient(paths, settings) as node:
            reply = pb.PeerPermissions()
            for scope in args.scope:
                reply = await node.set_permission(args.peer, scope, args.allowed)
        _print(reply)
        return 0

    return asyncio.run(go())


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core.local_client import LocalClient

    async def go() -> int:
        async with LocalClient(paths, settings) as node:
            reply = await node.permissions()
        if args.json:
            print(json.dumps([_row(p) for p in reply.peers], indent=2))
        elif not reply.peers:
            print("no paired peers yet: pair one with `noizylab pair invite`")
        for peer in [] if args.json else reply.peers:
            _print(peer)
        return 0

    return asyncio.run(go())

"""``noizylab clip on|off [PEER]``, ``clip pause|resume`` and ``clip status [--json]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, clock, print_json
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
    from noizylab_desktop._proto import noizylab_clipboard_pb2_grpc as cpb_grpc


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``clip`` and its actions."""
    clip = sub.add_parser("clip", help="clipboard sync with paired peers: on, off, pause, resume, status")
    actions = clip.add_subparsers(dest="clip_command", metavar="ACTION", required=True)
    for verb, on in (("on", True), ("off", False)):
        parser = actions.add_parser(verb, help=f"turn clipboard sync {verb} with a peer (no peer: every paired peer)")
        parser.add_argument("peer", nargs="?", default="", help="its ID, the start of its ID, or its name")
        add_json_flag(parser, help="print the status as JSON")
        parser.set_defaults(handler=_set_sync, on=on)
    for verb, paused in (("pause", True), ("resume", False)):
        parser = actions.add_parser(verb, help=f"{verb} clipboard sync with every peer (remembered)")
        add_json_flag(parser, help="print the status as JSON")
        parser.set_defaults(handler=_set_paused, paused=paused)
    status = actions.add_parser("status", help="switches, peers, the last clip and counters")
    add_json_flag(status)
    status.set_defaults(handler=_status)


def status_dict(status: cpb.ClipStatus) -> dict[str, Any]:
    """The status as plain JSON-ready data."""
    return {
        "paused": status.paused,
        "backend": status.backend,
        "max_bytes": status.max_bytes,
        "peers": [
            {"id": p.id, "name": p.name, "on": p.on, "online": p.online, "pending": p.pending} for p in status.peers
        ],
        "last": {"from": status.last_from, "at": status.last_at, "kinds": status.last_kinds}
        if status.last_at
        else None,
        "counters": dict(sorted(status.counters.items())),
        "last_notice": status.last_notice,
    }


def _print(status: cpb.ClipStatus, as_json: bool) -> None:
    if as_json:
        print_json(status_dict(status))
        return
    print(f"clipboard sync: {'paused' if status.paused else 'running'} ({status.backend} clipboard)")
    if not status.peers:
        print("no paired peers yet: pair one with `noizylab pair invite`")
    for peer in status.peers:
        state = "on" if peer.on else "off"
        extra = ", a clip waits for it" if peer.pending else ""
        print(f"  {peer.name}: {state} ({'online' if peer.online else 'offline'}{extra})")
    if status.last_at:
        print(f"last clip from {status.last_from} at {clock(status.last_at)} ({status.last_kinds})")
    if status.last_notice:
        print(f"note: {status.last_notice}")


def _call(
    paths: Paths, settings: Settings, method: Callable[[cpb_grpc.ClipboardStub], object], request: object
) -> cpb.ClipStatus:
    """``method`` (of the node's clipboard service) with ``request``; the clipboard's status it answers."""
    from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
    from noizylab_desktop._proto import noizylab_clipboard_pb2_grpc as cpb_grpc
    from noizylab_desktop.cli.client import run_with_node

    reply = run_with_node(
        paths, settings, lambda node: node.call(method(cpb_grpc.ClipboardStub(node.channel)), request)
    )
    assert isinstance(reply, cpb.ClipStatus)
    return reply


def _set_sync(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb

    request = cpb.ClipSyncRequest(peer=args.peer, on=args.on)
    _print(_call(paths, settings, lambda stub: stub.SetSync, request), args.json)
    return 0


def _set_paused(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb

    _print(_call(paths, settings, lambda stub: stub.SetPaused, cpb.ClipPauseRequest(paused=args.paused)), args.json)
    return 0


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb

    _print(_call(paths, settings, lambda stub: stub.Status, pb.Empty()), args.json)
    return 0

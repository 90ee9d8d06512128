"""``noizylab id|pair invite|pair join|peers|unpair``: this node's ID, and the machines it trusts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.client import add_totp_flag
from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.words import plural, when

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core.local_client import LocalClient


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ID, pairing and peer commands."""
    ident = sub.add_parser("id", help="print this node's ID")
    add_json_flag(ident)
    ident.set_defaults(handler=_show_id)

    pair = sub.add_parser("pair", help="pair with another machine")
    pair.set_defaults(handler=_pair)
    pair_sub = pair.add_subparsers(dest="pair_command", metavar="ACTION", required=True)
    invite = pair_sub.add_parser("invite", help="show a one-time code to type on the other machine")
    add_json_flag(invite)
    invite.add_argument("--address", action="append", default=[], help="address to put in the code (repeatable)")
    invite.add_argument("--no-wait", action="store_true", help="print the code and return at once")
    add_totp_flag(invite)
    join = pair_sub.add_parser("join", help="pair using a code shown on the other machine")
    join.add_argument("code", nargs="?", help="the invite code (asked for after --list when left out)")
    join.add_argument("--list", action="store_true", help="list nearby machines that are inviting")
    join.add_argument("--choose", type=int, metavar="N", help="join the N-th machine --list shows (needs its code)")
    join.add_argument("--listen", type=float, default=2.0, metavar="S", help="seconds to listen for inviting machines")
    add_json_flag(join)
    add_totp_flag(join)

    peers = sub.add_parser("peers", help="paired machines and their health")
    add_json_flag(peers)
    peers.set_defaults(handler=_peers)
    unpair = sub.add_parser("unpair", help="stop trusting a paired machine")
    unpair.add_argument("peer", help="its ID, the start of its ID, or its name")
    add_totp_flag(unpair)
    unpair.set_defaults(handler=_unpair)
    rename = sub.add_parser("rename", help="change this machine's name (paired machines learn it at once)")
    rename.add_argument("name", help="the new name")
    rename.set_defaults(handler=_rename)


def peer_dict(peer: pb.Peer) -> dict[str, Any]:
    """A peer as ``peers --json`` and ``status --json`` give it."""
    caps = peer.capabilities
    return {
        "id": peer.id,
        "name": peer.name,
        "online": peer.online,
        "address": peer.address,
        "rtt_ms": round(peer.rtt_ms, 3),
        "last_seen": peer.last_seen or None,
        "paired_at": peer.paired_at,
        # When the peer said it unpaired this node; else, how it refuses this node's beats lately, if it does.
        "removed_at": peer.removed_at or None,
        "refusal": peer.refusal or None,
        "os": caps.os or None,
        "cpus": caps.cpu_count or None,
        "memory_bytes": caps.memory_total_bytes or None,
        "gpus": [g.name for g in caps.gpus],
    }


def print_peers(peers: list[dict[str, Any]]) -> None:
    """Peers (as ``peer_dict`` gives them) for a person: one indented line each."""
    if not peers:
        print("  no peers yet: pair one with `noizylab pair invite`")
    for peer in peers:
        dot = "●" if peer["online"] else "○"
        print(f"  {dot} {peer['name']:<20} {peer['id'][:15]}…  {peer_state(peer)}  {peer['address']}")


def peer_state(peer: dict[str, Any]) -> str:
    """A peer's health in words: online, offline, or whether it removed this machine."""
    import shlex

    forget = f"`noizylab unpair {shlex.quote(peer['name'])}` forgets it here"
    if peer.get("removed_at"):
        return f"removed this machine on {when(peer['removed_at'])}: {forget}"
    if peer.get("refusal") == "unpaired":
        return f"no longer accepts this machine: {forget}"
    if peer.get("refusal") == "handshake":
        return f"may have removed this machine (it refuses the connection): {forget}"
    return f"online, {peer['rtt_ms']:.1f} ms" if peer["online"] else "offline"


def _show_id(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.core import identity

    paths.ensure()
    if paths.cert_file.exists():
        # The ID is the public certificate's SHA-256: showing an existing node's ID needs no keychain.
        node_id = identity.node_id_of(paths.cert_file.read_bytes())
    else:
        node_id = identity.load_or_create(paths, identity.keychain_vault(paths, settings), settings.name).node_id
    if args.json:
        print_json({"id": node_id, "name": settings.name}, one_line=True)
    else:
        print(node_id)
    return 0


def _peers(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    listed = [peer_dict(p) for p in run_with_node(paths, settings, lambda node: node.status()).peers]
    if args.json:
        print_json(listed)
    else:
        print_peers(listed)
    return 0


def _unpair(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    reply = run_with_node(paths, settings, lambda node: node.unpair(args.peer), args.totp)
    print(f"unpaired {reply.peer_name} ({reply.peer_id}): it can no longer reach this node")
    return 0


def _rename(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from dataclasses import replace

    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.config import load_settings, save_settings
    from noizylab_desktop.core.errors import NotRunningError
    from noizylab_desktop.core.trust import machine_name

    try:
        reply = run_with_node(
            paths, settings, lambda node: node.call(node.control.Rename, pb.RenameRequest(name=args.name))
        )
    except NotRunningError:
        # No node to tell: the config says it, and peers learn it from the node's first heartbeat.
        name = machine_name(args.name)
        save_settings(paths, replace(load_settings(paths), name=name))
        print(f"this machine is called {name} now; paired machines learn it when its node next starts")
        return 0
    assert isinstance(reply, pb.RenameReply)
    print(f"this machine is called {reply.name} now; paired machines that are online learn it at once")
    return 0


def _pair(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    if args.pair_command == "join" and (args.list or args.choose is not None):
        code = _code_from_list(args)
        if code is None:
            return 0
        args.code = code
    elif args.pair_command == "join" and not args.code:
        from noizylab_desktop.core.errors import PairingError

        raise PairingError("type the invite code shown on the other machine, or list inviting machines with --list")
    result = run_with_node(paths, settings, lambda node: _invite_or_join(args, node), args.totp)
    if result is None:
        return 0
    if args.json:
        row = {"peer_id": result.peer_id, "peer_name": result.peer_name, "verification": result.verification}
        print_json(row, one_line=True)
    else:
        print(f"Paired with {result.peer_name} ({result.peer_id}).")
        print(f"Verification: {result.verification}  (the other machine shows the same)")
    return 0


def _code_from_list(args: argparse.Namespace) -> str | None:
    """The code to join with after choosing a listed machine, or None when the list was only shown."""
    import asyncio
    import sys

    from noizylab_desktop.core.discovery.browse import nearby
    from noizylab_desktop.core.discovery.choose import code_for, listing

    inviting = [a for a in asyncio.run(nearby(args.listen)) if a.inviting]
    if args.json and args.choose is None:
        print_json(listing(inviting))
        return None
    if not args.json:
        if not inviting:
            print("no machine nearby is inviting: run `noizylab pair invite` on it, on the same network")
        for row in listing(inviting):
            print(f"  {row['number']}  {', '.join(row['hosts']):<30} tag {row['tag']}")
    choice = args.choose
    interactive = sys.stdin.isatty() and not args.json
    if choice is None and inviting and interactive:
        choice = int(input("Which machine? (number) ") or "0")
    if choice is None:
        if inviting and not args.json:
            print("Join one with:  noizylab pair join --choose N CODE  (CODE: the invite code it shows)")
        return None
    code = args.code or (input("Invite code shown on that machine: ").strip() if interactive else "")
    return code_for(inviting, choice, code)


async def _invite_or_join(args: argparse.Namespace, node: LocalClient) -> pb.PairingResult | None:
    """The pairing's result, or None when ``invite`` only shows its code."""
    import time

    if args.pair_command == "join":
        return await node.join(args.code)
    invite = await node.create_invite(args.address)
    if args.json:
        print_json({"code": invite.code, "expires_at": invite.expires_at}, one_line=True, flush=True)
    else:
        minutes = max(1, round((invite.expires_at - time.time()) / 60))
        from noizylab_desktop.core.discovery.choose import tag_of_code

        print(f"Invite code (valid {plural(minutes, 'minute')}, once):\n\n    {invite.code}\n", flush=True)
        print("On the other machine run:  noizylab pair join CODE", flush=True)
        print(f"(`noizylab pair join --list` there shows this machine as tag {tag_of_code(invite.code)})", flush=True)
    if args.no_wait or args.json:
        return None
    print("Waiting for the other machine to join… (Ctrl-C stops waiting; the code stays valid)", flush=True)
    return await node.wait_pairing(invite.code, max(1.0, invite.expires_at - time.time()))

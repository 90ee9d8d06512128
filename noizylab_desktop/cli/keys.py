"""``noizylab keys list|rotate``: this node's identity key, its current certificate and its SSH key, and rotating
them so that peers follow without re-pairing (``node/keys.py``, ``docs/trust.md``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json, timestamp
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
    from noizylab_desktop.core.local_client import LocalClient

BACK_S = 30.0  # how long `rotate` waits for the node to come back on its new key


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the key commands."""
    keys = sub.add_parser("keys", help="this node's keys: list them, rotate them")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the identity key, the current certificate and the SSH key")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)
    rotate = actions.add_parser("rotate", help="a new key, signed by the old one; peers follow without re-pairing")
    rotate.add_argument("which", choices=("identity", "ssh"), help="the identity (TLS) key, or the SSH key")
    add_json_flag(rotate)
    rotate.set_defaults(handler=_rotate)


def keys_dict(reply: kpb.KeysReply) -> dict[str, Any]:
    """``keys list --json``."""
    return {
        "identity": {
            "id": reply.id,
            "algorithm": reply.algorithm,
            "created_at": reply.created_at,
            "rotations": reply.generation,
        },
        "certificate": {"issued_at": reply.leaf_issued_at, "expires_at": reply.leaf_expires_at},
        "ssh": {"key": reply.ssh_key, "fingerprint": reply.ssh_fingerprint},
        "peers_behind": list(reply.peers_behind),
    }


async def _keys(node: LocalClient) -> kpb.KeysReply:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
    from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc

    reply = await node.call(kpb_grpc.KeysStub(node.channel).List, pb.Empty())
    assert isinstance(reply, kpb.KeysReply)
    return reply


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop.cli.client import run_with_node

    data = keys_dict(run_with_node(paths, settings, _keys))
    if args.json:
        print_json(data)
        return 0
    ident, cert, ssh = data["identity"], data["certificate"], data["ssh"]
    print(f"identity     {ident['id']}")
    print(f"             {ident['algorithm']}, created {timestamp(ident['created_at'])}, rotated {ident['rotations']}x")
    print(f"certificate  issued {timestamp(cert['issued_at'])}, expires {timestamp(cert['expires_at'])}")
    print(f"ssh          {ssh['fingerprint']} (ed25519)")
    if data["peers_behind"]:
        print(f"still to tell of a rotation when they come back: {', '.join(data['peers_behind'])}")
    return 0


def _rotate(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
    from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc
    from noizylab_desktop.cli.client import run_with_node

    async def rotate(node: LocalClient) -> kpb.RotateReply:
        reply = await node.call(kpb_grpc.KeysStub(node.channel).RotateKey, kpb.RotateRequest(kind=args.which), 60)
        assert isinstance(reply, kpb.RotateReply)
        return reply

    reply = run_with_node(paths, settings, rotate)
    if args.which == "identity":
        _wait_back(paths, settings, lambda keys: keys.id == reply.new_id)
    else:
        _wait_back(paths, settings, lambda keys: keys.ssh_fingerprint == reply.ssh_fingerprint)
    data = {
        "rotated": args.which,
        "old_id": reply.old_id,
        "id": reply.new_id,
        "generation": reply.generation,
        "ssh_fingerprint": reply.ssh_fingerprint,
        "told": list(reply.told),
        "behind": list(reply.behind),
        "cosigned_by": reply.cosigned_by,
    }
    if args.json:
        print_json(data)
        return 0
    if args.which == "identity":
        print(f"new identity key: this node is {reply.new_id} now (was {reply.old_id})")
        if reply.cosigned_by:
            print(f"co-signed by {reply.cosigned_by}, as this grid asks (grid.rotation_cosign)")
    else:
        print(f"new SSH key: {reply.ssh_fingerprint}")
    if reply.told:
        print(f"moved to it at once: {', '.join(reply.told)}")
    if reply.behind:
        print(f"told when they come back: {', '.join(reply.behind)}")
    return 0


def _wait_back(paths: Paths, settings: Settings, done: Callable[[kpb.KeysReply], bool]) -> None:
    """Wait until the node restarted on its new key answers (``done`` says it has)."""
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.errors import LauncherError, NoizyLabError

    deadline = time.monotonic() + BACK_S
    while time.monotonic() < deadline:
        try:
            if done(run_with_node(paths, settings, _keys)):
                return
        except NoizyLabError:
            pass
        time.sleep(0.2)
    raise LauncherError(f"the node did not come back on its new key within {BACK_S:.0f} s: see `noizylab logs`")

"""``noizylab devices list|remove|confirm``: the grid's members, as the member list every member holds says.

``remove`` signs a removal that reaches every member (``docs/trust.md``), unlike ``unpair``, which forgets a peer on
this machine only. ``--lost`` also revokes what the lost machine could have known here.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.client import add_totp_flag
from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.words import plural, when

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb

REMOVE_DEADLINE_S = 15.0  # telling the removed machine takes up to 2 s, the rest is signing and writing


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``devices``."""
    devices = sub.add_parser("devices", help="the grid's machines: list, remove (everywhere), confirm")
    devices_sub = devices.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    listing = devices_sub.add_parser("list", help="every member of the grid, and the removed ones")
    add_json_flag(listing)
    listing.set_defaults(handler=_list)
    remove = devices_sub.add_parser("remove", help="remove a machine from the whole grid: every member refuses it")
    remove.add_argument("device", help="its ID, the start of its ID, or its name")
    remove.add_argument(
        "--lost", action="store_true", help="it was lost or stolen: also revoke API tokens and open invite codes"
    )
    add_json_flag(remove)
    add_totp_flag(remove)
    remove.set_defaults(handler=_remove)
    confirm = devices_sub.add_parser("confirm", help="trust a machine another member introduced (pending)")
    confirm.add_argument("device", help="its ID, the start of its ID, or its name")
    add_totp_flag(confirm)
    confirm.set_defaults(handler=_confirm)


def device_dict(device: pb.Device) -> dict[str, Any]:
    """A device as ``devices list --json`` gives it."""
    return {
        "id": device.id,
        "name": device.name,
        "state": device.state,
        "introduced_by": device.introduced_by or None,
        "since": device.since or None,
        "online": device.online,
    }


def _list(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node

    reply = run_with_node(paths, settings, lambda node: node.call(node.control.ListDevices, pb.Empty()))
    assert isinstance(reply, pb.DeviceList)
    rows = [device_dict(d) for d in reply.devices]
    if args.json:
        print_json({"version": reply.version, "devices": rows})
        return 0
    print(f"member list version {reply.version}")
    for row in rows:
        dot = "●" if row["online"] else "○"
        state = row["state"]
        if state in ("removed", "lost") and row["since"]:
            state = f"{state} by {row['introduced_by']} on {when(row['since'])}"
        elif state == "pending":
            state = f"pending: introduced by {row['introduced_by']}; `noizylab devices confirm {row['id'][:15]}`"
        elif row["introduced_by"]:
            state = f"{state} (introduced by {row['introduced_by']})"
        print(f"  {dot} {row['name']:<20} {row['id'][:15]}…  {state}")
    return 0


def _remove(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.node.devices import FILES_REMAIN

    request = pb.RemoveDeviceRequest(device=args.device, lost=args.lost)
    reply = run_with_node(
        paths,
        settings,
        lambda node: node.call(node.control.RemoveDevice, request, REMOVE_DEADLINE_S),
        args.totp,
    )
    assert isinstance(reply, pb.RemoveDeviceReply)
    if args.json:
        row = {
            "id": reply.id,
            "name": reply.name,
            "version": reply.version,
            "lost": args.lost,
            "tokens_revoked": reply.tokens_revoked,
            "invites_closed": reply.invites_closed,
        }
        print_json(row, one_line=True)
        return 0
    print(f"removed {reply.name} ({reply.id}) from the grid: every member refuses it (member list {reply.version})")
    if args.lost:
        print(
            f"marked lost: revoked {plural(reply.tokens_revoked, 'API token')} and closed "
            f"{plural(reply.invites_closed, 'open invite code')} here; every other member does the same"
        )
        print(f"{reply.name}: {FILES_REMAIN}")
    return 0


def _confirm(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node

    reply = run_with_node(
        paths,
        settings,
        lambda node: node.call(node.control.ConfirmDevice, pb.PeerRef(peer=args.device)),
        args.totp,
    )
    assert isinstance(reply, pb.Device)
    print(f"{reply.name} ({reply.id}) is trusted here now")
    return 0

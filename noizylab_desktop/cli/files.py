"""``noizylab send PEER FILE``: one file of this machine into a peer's received-files folder, with progress."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json, progress
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.words import size

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_files_pb2 as fpb
    from noizylab_desktop.core.local_client import LocalClient


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``send``."""
    send = sub.add_parser(
        "send", help="send a file to a paired peer (it lands in the peer's Downloads/NOIZYLAB; needs `files` there)"
    )
    send.add_argument("peer", help="its ID, the start of its ID, or its name")
    send.add_argument("file", help="the file to send")
    add_json_flag(send)
    send.set_defaults(handler=_send)


def _line(step: fpb.SendProgress) -> str:
    percent = 100 * step.sent // max(step.size, 1)
    return f"sending {step.name} to {step.peer_name}: {percent}% ({size(step.sent)} of {size(step.size)})"


async def _send_showing_progress(node: LocalClient, request: fpb.SendFileRequest, quiet: bool) -> fpb.SendProgress:
    """The node's last answer to ``Send``, with a progress line on stderr as the peer takes the file."""
    import grpc

    from noizylab_desktop._proto import noizylab_files_pb2_grpc as fpb_grpc

    last: fpb.SendProgress | None = None
    call = fpb_grpc.FilesStub(node.channel).Send(request)  # the node's send has its own deadline, by size
    try:
        async for step in call:
            last = step
            if not quiet:  # the last answer too: the line ends at 100% before the result
                if step.resumed_from and step.sent == step.resumed_from:
                    progress(f"resuming {step.name}: {step.peer_name} holds {size(step.resumed_from)} of it already")
                progress(_line(step))
    except grpc.aio.AioRpcError as exc:
        raise node.error(exc) from None
    assert last is not None and last.saved_as, "the node ended a send without its last answer"
    return last


def _send(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_files_pb2 as fpb
    from noizylab_desktop.cli.client import run_with_node

    request = fpb.SendFileRequest(peer=args.peer, path=os.path.abspath(args.file))
    done = run_with_node(paths, settings, lambda node: _send_showing_progress(node, request, args.json))
    if args.json:
        print_json(
            {
                "peer": done.peer_name,
                "name": done.name,
                "size": done.size,
                "saved_as": done.saved_as,
                "resumed_from": done.resumed_from,
            }
        )
    else:
        resumed = f", resumed from {size(done.resumed_from)}" if done.resumed_from else ""
        print(f"sent {done.name} ({size(done.size)}) to {done.peer_name}: saved there as {done.saved_as}{resumed}")
    return 0

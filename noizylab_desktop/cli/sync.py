"""``noizylab share add|list|remove|pause|resume`` and ``sync status|wait|conflicts|merge``: folder sync from the
command line."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from noizylab_desktop.cli.output import add_json_flag, print_json, print_listing, timestamp
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.words import plural

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from noizylab_desktop._proto import noizylab_sync_pb2 as spb
    from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
    from noizylab_desktop.core.local_client import LocalClient

M = TypeVar("M", bound="Message")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the share and sync commands."""
    share = sub.add_parser("share", help="folders kept in sync with a peer or an SSH server")
    verbs = share.add_subparsers(dest="share_command", required=True, metavar="COMMAND")
    add = verbs.add_parser("add", help="sync a folder with a peer (or ssh://user@host[:port])")
    add.add_argument("dir", help="the folder on this machine")
    add.add_argument("--peer", required=True, help="a paired peer's name or ID prefix, or ssh://user@host[:port]")
    add.add_argument("--remote", default="", help="the folder there (default: this folder's name in its sync folder)")
    add.add_argument("--host-key", default="", help="for ssh:// targets: the server's public host key line or file")
    add_json_flag(add)
    add.set_defaults(handler=_add)
    listing = verbs.add_parser("list", help="every share and its state")
    add_json_flag(listing)
    listing.set_defaults(handler=_status)
    for verb, helptext in (
        ("remove", "stop syncing a folder (its files stay)"),
        ("pause", "pause a share"),
        ("resume", "resume a paused share"),
    ):
        parser = verbs.add_parser(verb, help=helptext)
        parser.add_argument("share", help="its ID (or the start of it) or its folder")
        if verb == "resume":
            parser.add_argument("--allow-deletes", action="store_true", help="apply the mass delete it paused on")
        parser.set_defaults(handler=_change, verb=verb)
    sync = sub.add_parser("sync", help="the state of folder sync")
    sverbs = sync.add_subparsers(dest="sync_command", required=True, metavar="COMMAND")
    status = sverbs.add_parser("status", help="every share: state, files, conflicts, progress")
    add_json_flag(status)
    status.set_defaults(handler=_status)
    wait = sverbs.add_parser("wait", help="return once every share is in sync (for scripts)")
    wait.add_argument("--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds (60)")
    wait.set_defaults(handler=_wait)
    conflicts = sverbs.add_parser("conflicts", help="text conflicts left as conflict copies, not yet resolved")
    add_json_flag(conflicts)
    conflicts.set_defaults(handler=_conflicts)
    merge = sverbs.add_parser(
        "merge", help="show a conflict, ask the AI advisor for a merge (--ai), apply it (--apply) or keep one version"
    )
    merge.add_argument("conflict", help="its ID (or the start of it), its file or its conflict copy")
    merge.add_argument("--ai", action="store_true", help="ask the AI advisor to propose a merge (shown, not applied)")
    merge.add_argument("--apply", action="store_true", help="apply the merge proposed last (with --ai: this one)")
    merge.add_argument(
        "--keep", choices=["mine", "theirs"], help="resolve by keeping this node's or the peer's version"
    )
    add_json_flag(merge)
    merge.set_defaults(handler=_merge)


def _row(info: spb.ShareInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "local": info.local,
        "peer": info.peer,
        "remote": info.remote,
        "state": info.state,
        "message": info.message,
        "files": info.files,
        "bytes": info.bytes,
        "last_sync": info.last_sync,
        "conflicts": info.conflicts,
        "pending": info.pending,
        "transfer": {"done": info.transfer_done, "total": info.transfer_total},
        "recent": list(info.recent),
        "served": info.served,
    }


def _line(info: spb.ShareInfo) -> str:
    if info.served:
        return f"{info.id}  {info.local} ← {info.peer}'s share, served here  {info.state} ({info.message})"
    ago = f", synced {time.time() - info.last_sync:.0f} s ago" if info.last_sync else ""
    conflicts = f", {plural(info.conflicts, 'conflict')}" if info.conflicts else ""
    progress = ""
    if info.state == "syncing" and info.transfer_total:
        progress = f" {100 * info.transfer_done // max(info.transfer_total, 1)}%"
    return (
        f"{info.id}  {info.local} ↔ {info.peer}:{info.remote}  {info.state}{progress} ({info.message}), "
        f"{plural(info.files, 'file')}{conflicts}{ago}"
    )


def _ask(
    paths: Paths,
    settings: Settings,
    method: Callable[[spb_grpc.SyncStub], object],
    request: object,
    reply: type[M],
    timeout: float | None = None,
) -> M:
    """``method`` of the node's sync service with ``request``, and its answer of type ``reply``."""
    from noizylab_desktop.cli.client import run_with_node

    answer = run_with_node(paths, settings, lambda node: _call(node, method, request, timeout))
    assert isinstance(answer, reply)
    return answer


async def _call(
    node: LocalClient, method: Callable[[spb_grpc.SyncStub], object], request: object, timeout: float | None = None
) -> object:
    from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
    from noizylab_desktop.core.transport import DEFAULT_DEADLINE_S

    stub = spb_grpc.SyncStub(node.channel)
    return await node.call(method(stub), request, DEFAULT_DEADLINE_S if timeout is None else timeout)


def _add(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb

    host_key = args.host_key
    if host_key and os.path.isfile(host_key):
        with open(host_key, encoding="utf-8") as f:
            host_key = f.read().strip()
    request = spb.AddShareRequest(
        local=os.path.abspath(os.path.expanduser(args.dir)), peer=args.peer, remote=args.remote, host_key=host_key
    )
    info = _ask(paths, settings, lambda stub: stub.AddShare, request, spb.ShareInfo, timeout=30)
    if args.json:
        print_json(_row(info))
    else:
        print(f"sharing {_line(info)}")
    return 0


def _change(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb

    ref = args.share
    if os.path.sep in ref or os.path.isdir(ref):
        ref = os.path.abspath(os.path.expanduser(ref))
    if args.verb == "remove":
        info = _ask(paths, settings, lambda stub: stub.RemoveShare, spb.ShareRef(share_id=ref), spb.ShareInfo)
        print(f"stopped syncing {info.local} (its files stay)")
        return 0
    request = spb.PauseRequest(
        share=ref, paused=args.verb == "pause", allow_deletes=bool(getattr(args, "allow_deletes", False))
    )
    print(_line(_ask(paths, settings, lambda stub: stub.SetPaused, request, spb.ShareInfo)))
    return 0


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb

    reply = _ask(paths, settings, lambda stub: stub.ListShares, pb.Empty(), spb.ShareList)
    print_listing(
        reply.shares,
        as_json=args.json,
        row=_row,
        line=_line,
        empty="no shares yet: add one with `noizylab share add DIR --peer PEER`",
    )
    return 0


def _wait(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb
    from noizylab_desktop.cli.client import run_with_node

    request = spb.WaitRequest(timeout_s=args.timeout)
    reply = run_with_node(paths, settings, lambda node: _wait_showing_progress(node, request, args.timeout + 10))
    print(f"in sync: {plural(len(reply.shares), 'share')}")
    return 0


def _progress_line(shares: Sequence[spb.ShareInfo]) -> str:
    """What ``sync wait`` is still waiting for, in one line ("" when every share is in sync)."""
    busy = [s for s in shares if s.state != "idle" and not s.served]
    if not busy:
        return ""
    first = busy[0]
    more = f" (and {plural(len(busy) - 1, 'other share')})" if len(busy) > 1 else ""
    name = os.path.basename(first.local) or first.local
    return f"waiting for {name} ↔ {first.peer}: {first.state} ({first.message}){more}"


async def _wait_showing_progress(node: LocalClient, request: spb.WaitRequest, timeout: float) -> spb.ShareList:
    """The node's answer to ``WaitIdle``, with a line on stderr each time what it waits for changes."""
    import asyncio

    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb
    from noizylab_desktop.cli.output import progress

    waiting = asyncio.ensure_future(_call(node, lambda stub: stub.WaitIdle, request, timeout))
    shown = ""
    try:
        while not waiting.done():
            listed = await _call(node, lambda stub: stub.ListShares, pb.Empty())
            assert isinstance(listed, spb.ShareList)
            line = _progress_line(listed.shares)
            if line and line != shown and not waiting.done():
                progress(line)
                shown = line
            # A glance a second is plenty for a person; the answer itself comes as soon as the node has it.
            await asyncio.wait({waiting}, timeout=1.0)
    finally:
        waiting.cancel()
    reply = waiting.result()
    assert isinstance(reply, spb.ShareList)
    return reply


def _conflict_row(c: spb.ConflictInfo) -> dict[str, Any]:
    return {
        "id": c.id,
        "share": c.share_id,
        "local": c.local,
        "peer": c.peer,
        "path": c.path,
        "copy": c.copy,
        "at": c.at,
        "file_from": c.file_from,
        "copy_from": c.copy_from,
        "has_ancestor": c.has_ancestor,
    }


def _conflict_line(c: spb.ConflictInfo) -> str:
    when = timestamp(c.at)
    return f"{c.id}  {os.path.join(c.local, c.path)} ↔ {c.peer}  {when}  copy: {c.copy} (from {c.copy_from})"


def _conflicts(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb

    reply = _ask(paths, settings, lambda stub: stub.ListConflicts, pb.Empty(), spb.ConflictList)
    print_listing(
        reply.conflicts, as_json=args.json, row=_conflict_row, line=_conflict_line, empty="no unresolved conflicts"
    )
    return 0


def _merge(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.errors import MergeError

    if args.keep and (args.ai or args.apply):
        raise MergeError("--keep resolves the conflict by itself: leave out --ai and --apply")
    if args.keep or (args.apply and not args.ai):
        request = spb.ResolveRequest(conflict=args.conflict, keep=args.keep or "proposal")
        info = _ask(paths, settings, lambda stub: stub.ResolveConflict, request, spb.ConflictInfo, timeout=30)
        how = {"mine": "kept your version", "theirs": "kept the peer's version"}.get(args.keep, "applied the merge")
        print(f"resolved {info.path}: {how}; the conflict copy and the replaced file are in .nzversions")
        return 0

    async def propose(node: LocalClient) -> tuple[spb.MergeProposal, object]:
        asked = spb.MergeRequest(conflict=args.conflict, ai=args.ai)
        proposal = await _call(node, lambda stub: stub.ProposeMerge, asked, timeout=120)
        assert isinstance(proposal, spb.MergeProposal)
        applied = None
        if args.apply:
            request = spb.ResolveRequest(conflict=proposal.conflict.id, keep="proposal")
            applied = await _call(node, lambda stub: stub.ResolveConflict, request, timeout=30)
        return proposal, applied

    proposal, applied = run_with_node(paths, settings, propose)
    c = proposal.conflict
    if args.json:
        row = _conflict_row(c) | {
            "proposal": proposal.text.decode("utf-8", "replace") if args.ai else None,
            "diff_file": proposal.diff_file,
            "diff_copy": proposal.diff_copy,
            "diff_versions": proposal.diff_versions,
            "applied": applied is not None,
        }
        print_json(row)
        return 0
    print(_conflict_line(c))
    if not args.ai:
        print(proposal.diff_versions or "(the two versions differ only in line endings)", end="")
        hint = f"ask the AI advisor: `noizylab sync merge {c.id} --ai`; " if proposal.advisor_on else ""
        print(f"{hint}or keep one: `noizylab sync merge {c.id} --keep mine|theirs`")
        return 0
    print("The proposed merge against the file now:")
    print(proposal.diff_file or "(no change)\n", end="")
    print("The proposed merge against the conflict copy:")
    print(proposal.diff_copy or "(no change)\n", end="")
    if applied is not None:
        print(f"applied to {c.path}; the conflict copy and the replaced file are in .nzversions")
    else:
        print(f"nothing is changed until you apply it: `noizylab sync merge {c.id} --apply`")
    return 0

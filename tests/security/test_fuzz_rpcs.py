"""Every RPC a node serves, fed random hostile requests by a paired peer, answers only with a documented status.

One real node runs for the module on a small X screen of its own (``fuzz_grid.py``: its sync folder sits in a
sentinel folder with its working folder and the targets of two links inside the share). Two paired peers call it
over the real mTLS wire: ``mallory`` holds every permission, so requests reach the handlers; ``nobody`` holds none.
For each example the test checks what docs/security.md ("Status codes a peer can get") promises:

- the status is in the documented set for that RPC and caller, never ``UNKNOWN`` or ``INTERNAL``; a unary call
  answers within its deadline (only streams are cut short by the caller: ``DEADLINE_EXCEEDED``, ``CANCELLED``);
- the details are one line, without a traceback;
- the node still answers a health call;
- nothing outside the sync folder appeared, changed or went away, bar the host's own logs and state;

and after each RPC's examples, that the node logged no traceback. The RPCs come from the proto descriptors
(``wire_fuzz.rpcs``): one that is in neither ``PEER_FACING`` nor ``OWN_NODE_ONLY`` nor ``ELSEWHERE`` fails
``test_every_rpc_the_node_serves_is_classified``. ``Pairing.Join`` is fuzzed by a stranger on the pairing port.

``NOIZYLAB_FUZZ_EXAMPLES`` sets the examples per peer-facing RPC (default 12); a request of one field or none,
own-node-only RPCs and the peer without permissions get a quarter. Runs are derandomized, with no example database,
so CI repeats itself; with ``-s`` each RPC prints the answers it got, to show how deep the requests reached.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop._proto import noizylab_files_pb2 as fpb
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.core.feature import MAX_DETAILS
from noizylab_desktop.core.permissions import SCOPES
from noizylab_desktop.core.transport import CHANNEL_OPTIONS
from noizylab_desktop.services.tasks.handlers import handlers
from tests.security.fuzz_grid import SHARE, Grid, grid_in
from tests.security.hostile import stranger
from tests.security.wire_fuzz import (
    MAX_ITEMS,
    Hints,
    Rpc,
    hostile_text,
    messages,
    mostly,
    reals,
    requests,
    rpcs,
    wholes,
)
from tests.slowness import scaled
from tests.xvfb import Xvfb

Code = grpc.StatusCode

EXAMPLES = int(os.environ.get("NOIZYLAB_FUZZ_EXAMPLES", "12"))
FEW = max(2, EXAMPLES // 4)
UNARY_S = 20.0  # a unary call's deadline (scaled): passing it means the handler hung
STREAM_S = 0.75  # how long a stream is read before the caller ends it (not scaled: only the cost grows)
MAX_READ = 20  # messages read from a stream before the caller ends it

# Every RPC a peer may call, with the permission it needs (None: any paired peer), as docs/security.md's table.
PEER_FACING: dict[str, str | None] = {
    "Node.GetInfo": None,
    "Node.Heartbeat": None,
    "Node.Health": None,
    "Node.WatchEvents": None,
    "Node.Unpaired": None,  # marks only the caller (from its certificate) as having unpaired this node
    "Node.Members": None,  # the grid's member list: what every member signed for all members to verify
    "Node.PushMembers": None,  # judged by its signatures; a stale or forged list is refused in the reply
    "Health.Check": None,
    "Health.Watch": None,
    "Health.List": None,
    "Metrics.Snapshot": None,
    "Tasks.Offer": None,
    "Tasks.Cancel": None,
    "Tasks.Execute": "tasks",
    "Sync.Offer": "sync",
    "Sync.Index": "sync",
    "Sync.Hash": "sync",
    "Sync.Watch": "sync",
    "Sync.PutFiles": "sync",
    "Sync.PutStream": "sync",
    "Sync.GetFiles": "sync",
    "Sync.GetStream": "sync",
    "Clipboard.Push": "clipboard",
    "Display.Session": "display",
    "Tunnel.Open": "tunnel",
    "Files.Receive": "files",  # one file of a bare name into the received-files folder, never over one there
    "Dask.Up": "tasks",
    "Dask.Down": "tasks",
    "Dask.Join": "tasks",
    "Dask.Status": None,  # the cluster's members and owner; others are refused or told none runs
    "Dask.Probe": None,  # versions, and whether this node would take part for the caller
    "Dask.Leave": None,  # from the scheduler's node of the cluster this node works for, or a member of the one here
    "Dask.Issue": None,  # the scheduler's node signs only for its members (worker) and its owner (client)
    "Keys.Rotate": None,  # the caller's own key rotation, signed by the key pinned for it (test_rotation_hostile.py)
    # A co-signature of the caller's own identity rotation, for a member only (test_key_rotation_cosign.py).
    "Keys.Cosign": None,
}

# RPCs for this node's own CLI and tray: a peer is refused whatever it sends (they are fuzzed for that too).
OWN_NODE_ONLY: dict[str, str] = {
    **dict.fromkeys(
        [f"Control.{m}" for m in ("Status", "CreateInvite", "WaitPairing", "JoinInvite", "Unpair", "Shutdown")]
        + ["Control.SetPermission", "Control.ListPermissions", "Control.Rename"]
        + ["Control.ListDevices", "Control.RemoveDevice", "Control.ConfirmDevice"],
        "the node's control surface: status, invites, unpairing, grid devices, permissions, renaming, shutdown",
    ),
    **dict.fromkeys(
        ["Tasks.Submit", "Tasks.SubmitBatch", "Tasks.List", "Tasks.Get"],
        "routes and lists this node's user's own tasks; peers use Execute, Cancel and Offer",
    ),
    **dict.fromkeys(
        [f"Sync.{m}" for m in ("AddShare", "RemoveShare", "SetPaused", "ListShares", "WaitIdle")]
        + ["Sync.ListConflicts", "Sync.ProposeMerge", "Sync.ResolveConflict"],
        "manages this node's own shares and conflicts",
    ),
    **dict.fromkeys(
        ["Clipboard.SetSync", "Clipboard.SetPaused", "Clipboard.Status"], "this node's own clipboard settings"
    ),
    "Display.Locate": "hands this node's viewer a peer's address and certificate",
    **dict.fromkeys(
        [f"Tunnel.{m}" for m in ("Forward", "StopForward", "List", "SetRule", "Rules")],
        "this node's own tunnels and the ports it lets peers open",
    ),
    "Files.Send": "sends a file of this machine to a peer",
    "Metrics.Cluster": "every node's figures as this node sees them",
    "Dask.Here": "what this node knows of its own Dask cluster, for `noizylab status`",
    **dict.fromkeys(["Keys.List", "Keys.RotateKey"], "lists and rotates this node's own keys"),
    "Update.Busy": "tells `noizylab update apply` whether tasks or remote desktops run here, before it restarts",
}

# RPCs not served on the node's mTLS port: fuzzed by their own test here.
ELSEWHERE: dict[str, str] = {
    "Pairing.Join": "served on the pairing port (server-authenticated TLS, open while an invite is): "
    "test_a_stranger_joining_with_random_proofs_is_refused_cleanly",
}

# The status codes a call may end with (docs/security.md, "Status codes a peer can get"): the exception tree's
# codes (services/feature.py's abort_with), the Guard's, the edge's, gRPC's own size cap, and the caller's own
# deadline and cancel on streams.
DOCUMENTED = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.PERMISSION_DENIED,
    Code.FAILED_PRECONDITION,
    Code.UNAUTHENTICATED,
    Code.RESOURCE_EXHAUSTED,
}
STREAM_ENDS = {Code.DEADLINE_EXCEEDED, Code.CANCELLED}
EXTRA: dict[str, set[grpc.StatusCode]] = {
    "Health.Check": {Code.NOT_FOUND},  # grpc.health.v1: a service name this node does not serve
    "Health.List": {Code.UNIMPLEMENTED},  # grpcio-health-checking's servicer has no List
    "Metrics.Snapshot": {Code.UNAVAILABLE},  # asked before the node's first sample
}
REFUSED = {Code.PERMISSION_DENIED, Code.INVALID_ARGUMENT}


# Steering, three times in four: share IDs the node knows, paths that exist, values a session takes (so that input
# is injected); and always a task that can only ever run `true`.
ON_SCREEN = mostly(st.floats(0, 320), reals())
HINTS = Hints(
    fields={
        "share_id": mostly(st.sampled_from([SHARE, SHARE, "fedcba987654"]), hostile_text()),
        "path": mostly(st.sampled_from(["a.txt", "link/x", "outfile", "new.txt", "sub/new.txt"]), hostile_text()),
        "argv": mostly(
            st.lists(hostile_text(), max_size=3), st.sampled_from([MAX_ITEMS - 1, MAX_ITEMS]).map(lambda n: [".."] * n)
        ).map(lambda rest: ["true", *rest]),
        "task_type": hostile_text().filter(lambda name: name not in handlers()),  # "": the command, so `true`
        "StartSession.monitor": mostly(st.sampled_from([0, 1, 2]), wholes(FieldDescriptor.TYPE_INT32)),
        "StartSession.max_fps": mostly(st.sampled_from([0, 5, 240]), wholes(FieldDescriptor.TYPE_INT32)),
        "SelectMonitor.monitor": mostly(st.sampled_from([0, 1, 2]), wholes(FieldDescriptor.TYPE_INT32)),
        **dict.fromkeys(("PointerMove.x", "PointerMove.y", "PointerButton.x", "PointerButton.y"), ON_SCREEN),
        "Key.scancode": mostly(st.integers(0, 247), wholes(FieldDescriptor.TYPE_UINT32)),
        "Key.keysym": mostly(st.sampled_from([0x61, 0xFF0D, 0x1000041]), wholes(FieldDescriptor.TYPE_UINT32)),
        **dict.fromkeys(("Feedback.decode_ms", "Feedback.paint_ms"), mostly(st.floats(0, 100), reals())),
    },
    present=frozenset({"share_id", "path", "argv"}),
)

# A client stream's first message as the handler expects it, so that it reads the rest.
LEADS: dict[str, st.SearchStrategy[Any]] = {
    "Display.Session": messages(dpb.StartSession.DESCRIPTOR, HINTS).map(lambda s: dpb.ViewerMessage(start=s)),
    "Clipboard.Push": messages(cpb.ClipHeader.DESCRIPTOR, HINTS).map(lambda h: cpb.ClipPart(header=h)),
    "Tunnel.Open": messages(tpb.TunnelOpen.DESCRIPTOR, HINTS).map(lambda o: tpb.TunnelFrame(open=o)),
    "Files.Receive": messages(fpb.FileOffer.DESCRIPTOR, HINTS).map(lambda o: fpb.FilePart(offer=o)),
}


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, screen: Xvfb) -> Iterator[Grid]:
    yield from grid_in(tmp_path_factory.mktemp("fuzz"), screen.display)


def one_line(details: str) -> bool:
    """Whether a status's details are one line of at most ``MAX_DETAILS`` characters, without a traceback."""
    return len(details.splitlines()) <= 1 and len(details) <= MAX_DETAILS and "Traceback" not in details


def call(rpc: Rpc, chan: grpc.Channel, request: Any) -> tuple[grpc.StatusCode, str]:
    """Send ``request`` (a list of messages for a client stream); the status and details the call ended with."""
    method = rpc.callable(chan)
    argument = iter(request) if rpc.streams_in else request
    try:
        if not rpc.streams_out:
            method(argument, timeout=scaled(UNARY_S))
            return Code.OK, ""
        responses = method(argument, timeout=STREAM_S)
        for count, _ in enumerate(responses, 1):
            if count >= MAX_READ:
                responses.cancel()
                return Code.CANCELLED, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return Code.OK, ""


def allowed(rpc: Rpc, caller: str) -> set[grpc.StatusCode]:
    """The codes ``caller`` may get from ``rpc``."""
    if rpc.name in OWN_NODE_ONLY or (caller == "nobody" and PEER_FACING[rpc.name] is not None):
        codes = set(REFUSED)
    else:
        codes = DOCUMENTED | EXTRA.get(rpc.name, set())
    return codes | STREAM_ENDS if rpc.streams_out else codes


def fuzz(grid: Grid, rpc: Rpc, caller: str, examples: int) -> None:
    """Call ``rpc`` as ``caller`` with ``examples`` random requests, checking each answer and the node after it."""
    chan = grid.peers[caller].chan
    codes = allowed(rpc, caller)
    before = grid.snapshot()
    logged = len(grid.log())
    seen: Counter[str] = Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(request=requests(rpc, HINTS, LEADS.get(rpc.name)))
    def one(request: Any) -> None:
        code, details = call(rpc, chan, request)
        seen[f"{code.name} {details[:70]}"] += 1
        assert code in codes, f"{rpc.name} as {caller} ended {code.name}: {details[:300]!r}"
        assert one_line(details), f"{rpc.name}: details {details[:300]!r}…"
        grid.health.Health(pb.Empty(), timeout=scaled(10))
        assert grid.written_outside(before) == [], f"{rpc.name} wrote outside the sync folder"

    one()
    # With -s: how deep the requests reached (which answers, how often).
    print(f"\n{rpc.name} as {caller}:", *(f"\n  {n:3} {what}" for what, n in seen.most_common()))
    new = grid.log()[logged:]
    assert "Traceback" not in new, new[new.index("Traceback") - 300 :][:3000]


def examples_for(rpc: Rpc) -> int:
    """``EXAMPLES``, or ``FEW`` for a request of one field or none: there is little to vary, and a stream that stays
    open (a watch) costs its whole read time each."""
    return EXAMPLES if len(rpc.method.input_type.fields) > 1 else FEW


def by_name(names: Any) -> list[Rpc]:
    served = {rpc.name: rpc for rpc in rpcs()}
    return [served[name] for name in sorted(names)]


def test_every_rpc_the_node_serves_is_classified() -> None:
    names = {rpc.name for rpc in rpcs()}
    classified = PEER_FACING.keys() | OWN_NODE_ONLY.keys() | ELSEWHERE.keys()
    assert sorted(names - classified) == [], "add each new RPC to PEER_FACING or OWN_NODE_ONLY (with why)"
    assert sorted(classified - names) == [], "these RPCs are gone: take them out of the tables"
    assert not PEER_FACING.keys() & OWN_NODE_ONLY.keys()
    assert all(scope in SCOPES for scope in PEER_FACING.values() if scope is not None)


@pytest.mark.parametrize("rpc", by_name(PEER_FACING), ids=lambda rpc: rpc.name)
def test_a_peer_holding_every_permission_gets_only_documented_statuses(grid: Grid, rpc: Rpc) -> None:
    fuzz(grid, rpc, "mallory", examples_for(rpc))


@pytest.mark.parametrize("rpc", by_name(PEER_FACING.keys() | OWN_NODE_ONLY.keys()), ids=lambda rpc: rpc.name)
def test_a_peer_without_permissions_is_refused_whatever_needs_one(grid: Grid, rpc: Rpc) -> None:
    fuzz(grid, rpc, "nobody", FEW)


@pytest.mark.parametrize("rpc", by_name(OWN_NODE_ONLY), ids=lambda rpc: rpc.name)
def test_a_peer_holding_every_permission_is_refused_the_own_node_calls(grid: Grid, rpc: Rpc) -> None:
    fuzz(grid, rpc, "mallory", FEW)


def test_a_stranger_joining_with_random_proofs_is_refused_cleanly(grid: Grid) -> None:
    """``Pairing.Join`` is the one RPC anyone may reach (while an invite is open); no Edge stands before it."""
    grid.host.invite()
    port = grid.host.status()["pairing_port"]
    creds = grpc.ssl_channel_credentials(root_certificates=grid.host.identity().cert_pem)
    chan = grpc.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS)
    join = by_name(ELSEWHERE)[0]
    hints = Hints({**HINTS.fields, "joiner_cert_der": st.one_of(st.just(stranger().cert_der), st.binary())})
    codes = {Code.INVALID_ARGUMENT, Code.PERMISSION_DENIED, Code.RESOURCE_EXHAUSTED}
    before = grid.snapshot()
    # By ID: an earlier fuzzed heartbeat may have renamed mallory (a peer names itself; see test_rename_hostile.py).
    peers_before = sorted(p["id"] for p in grid.host.json("peers"))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(request=requests(join, hints))
    def one(request: Any) -> None:
        code, details = call(join, chan, request)
        assert code in codes, f"Pairing.Join ended {code.name}: {details[:300]!r}"
        assert one_line(details), f"Pairing.Join: details {details[:300]!r}…"
        grid.health.Health(pb.Empty(), timeout=scaled(10))

    try:
        one()
    finally:
        chan.close()
    assert grid.written_outside(before) == []
    assert sorted(p["id"] for p in grid.host.json("peers")) == peers_before  # the stranger joined nobody
    assert len(peers_before) == 2

"""Whether a node may run a Dask process among a cluster's members: only where it allows ``tasks`` for every one.

Dask's processes trust each other: workers exchange pickled data, clients' and workers' graphs are unpickled on the
scheduler, and a task that submits tasks connects with its worker's certificate. So any member can run code in every
other member's worker and in the scheduler. A node runs a worker (or the scheduler) only when it allows ``tasks``
for every other node of the cluster: the scheduler's node, the owner (whose client sends the work) and each member.
The scheduler's node plans with ``plan_members`` (from what each member said in ``Dask.Probe``), each member checks
again at ``Dask.Join`` with ``refusal``, and a member leaves when that stops being true (deny, unpair).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.nodeid import format_id, parse_id

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext


def shown(text: str, limit: int = 300) -> str:
    """A peer's text as one printable line of at most ``limit`` characters (it reaches the owner's terminal)."""
    return "".join(c for c in " ".join(text.split()) if c.isprintable())[:limit]


def parse_members(ids: Iterable[str]) -> set[bytes] | None:
    """The fingerprints of the node IDs a peer listed; None when one is malformed."""
    try:
        return {parse_id(i) for i in ids}
    except (NoizyLabError, ValueError):
        return None


def lacking(ctx: NodeContext, nodes: Iterable[bytes]) -> list[bytes]:
    """The nodes among ``nodes`` (this node aside) that this node does not allow ``tasks``, in a stable order."""
    own = ctx.identity.fingerprint
    return sorted({fp for fp in nodes if fp != own and not ctx.permissions.allowed(fp, "tasks")})


def name_of(ctx: NodeContext, fp: bytes) -> str:
    """What this node calls ``fp``: its peer name, or the ID of a node it has not paired."""
    peer = ctx.trust.get(fp)
    return peer.name if peer is not None else f"unpaired node {format_id(fp)[:15]}"


def refusal(ctx: NodeContext, lacks: Iterable[bytes]) -> str:
    """The one line this node refuses with when it does not allow ``tasks`` for ``lacks`` ("" when none)."""
    names = [name_of(ctx, fp) for fp in lacks]
    if not names:
        return ""
    them = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    fix = " ".join(f"`noizylab allow {n} tasks`" if not n.startswith("unpaired") else f"pair {n}" for n in names)
    return (
        f"{ctx.name} does not allow tasks for {them}, in the same Dask cluster, whose code would run in its worker: "
        f"on {ctx.name}, {fix}, or leave {'it' if len(names) == 1 else 'them'} out"
    )


def plan_members(
    candidates: Mapping[bytes, str], lacks: Mapping[bytes, set[bytes]], keep: bytes
) -> tuple[list[bytes], list[bytes]]:
    """Which ``candidates`` stay so that each allows ``tasks`` for every other, and who is left out, in that order.

    ``lacks`` says, for each candidate, the candidates it does not allow. Left out first is the one that refuses the
    most others still in (ties: the later candidate); ``keep`` (the scheduler's node) is never left out, so whoever
    it does not allow is. Removing refusers one at a time keeps one of two members that refuse each other.
    """
    staying = list(candidates)
    out: list[bytes] = []
    for fp in [fp for fp in staying if fp != keep and fp in lacks.get(keep, set())]:
        staying.remove(fp)
        out.append(fp)
    while True:
        refusers = [(len(lacks.get(fp, set()) & set(staying)), i, fp) for i, fp in enumerate(staying) if fp != keep]
        worst = max(refusers, default=(0, 0, b""))
        if worst[0] == 0:
            return staying, out
        staying.remove(worst[2])
        out.append(worst[2])

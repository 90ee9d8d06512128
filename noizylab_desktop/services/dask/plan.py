"""Who takes part in a cluster ``dask up`` asks for: each candidate's versions and permissions (``Dask.Probe``),
then the largest set that allow each other (``mutual.py``), with a line for each one left out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop.core.errors import DaskError, NoizyLabError
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.services.dask.mutual import lacking, parse_members, plan_members, shown
from noizylab_desktop.services.dask.peers import call_peer
from noizylab_desktop.services.dask.versions import check_matching, local_versions

if TYPE_CHECKING:
    from noizylab_desktop.core.context import NodeContext

PROBE_S = 5.0


async def plan(
    ctx: NodeContext, wanted: Mapping[bytes, str], owner: bytes, strict: bool
) -> tuple[dict[bytes, str], list[str]]:
    """The members (fingerprint to name) among ``wanted`` and a note for each left out; ``strict`` (workers named,
    or ``--all``): a one-line ``DaskError`` instead of leaving one out."""
    own = ctx.identity.fingerprint
    probes = await asyncio.gather(*(_probe(ctx, fp, owner, wanted) for fp in wanted))
    problems: dict[bytes, str] = {}
    found: dict[bytes, dpb.DaskVersions] = {}
    for fp, (versions, problem) in zip(wanted, probes, strict=True):
        if problem:
            problems[fp] = problem
        else:
            found[fp] = versions
    # Among those that can take part, each must allow tasks for every other (mutual.py); so must this node,
    # which runs the scheduler: whoever it does not allow is left out rather than it.
    able = {fp: name for fp, name in wanted.items() if fp in found}
    lacks = {fp: {x for x in parse_members(v.lacks) or set() if x in able} for fp, v in found.items()}
    lacks[own] = set(lacking(ctx, able))
    _, out = plan_members(able, lacks, own)
    for fp in out:
        problems[fp] = (
            f"{ctx.name}, the scheduler's node, does not allow tasks for it: "
            f"on {ctx.name}, `noizylab allow {able[fp]} tasks`, or leave it out"
            if fp in lacks[own]
            else shown(found[fp].refusal) or "it does not allow tasks for every other member of the cluster"
        )
    members: dict[bytes, str] = {}
    notes = []
    for fp, name in wanted.items():
        if fp in problems:
            if strict:
                raise DaskError(f"{name} cannot take part: {problems[fp]}")
            notes.append(f"{name} left out: {problems[fp]}")
        else:
            members[fp] = name
    check_matching({name: found[fp] for fp, name in members.items()})
    return members, notes


async def _probe(
    ctx: NodeContext, fp: bytes, owner: bytes, wanted: Mapping[bytes, str]
) -> tuple[dpb.DaskVersions, str]:
    """A candidate's versions and the nodes it lacks, and why it cannot take part at all ("" when it can)."""
    if fp == ctx.identity.fingerprint:
        return local_versions(), ""
    state = next((s for s in ctx.registry.peers() if s.peer.fingerprint == fp), None)
    if state is None or not state.online:
        return dpb.DaskVersions(), "it is offline"
    probe = dpb.DaskProbe(owner_id=format_id(owner), member_ids=[format_id(m) for m in wanted])
    try:
        found: dpb.DaskVersions = await call_peer(ctx, fp, "Probe", probe, PROBE_S)
    except NoizyLabError as exc:
        return dpb.DaskVersions(), exc.message
    if not found.allows:
        who = ctx.name if owner == ctx.identity.fingerprint else "the asking node"
        return found, f"it does not allow tasks for {who}: allow it there with `noizylab allow PEER tasks`"
    return found, ""

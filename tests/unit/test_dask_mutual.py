"""A node runs a Dask process only among nodes it allows tasks: who stays in a cluster, and the line a member
refuses with."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from noizylab_desktop.core.context import NodeContext
from noizylab_desktop.core.nodeid import format_id
from noizylab_desktop.core.permissions import Permissions
from noizylab_desktop.services.dask.mutual import lacking, parse_members, plan_members, refusal

S, A, B, C = (bytes([n]) * 32 for n in (1, 2, 3, 4))  # the scheduler's node, then three members
NAMES = {S: "alpha", A: "beta", B: "gamma", C: "delta"}


def test_members_that_all_allow_each_other_all_stay() -> None:
    assert plan_members(NAMES, {}, S) == ([S, A, B, C], [])


def test_a_member_that_refuses_another_is_left_out_and_the_other_stays() -> None:
    assert plan_members(NAMES, {A: {B}}, S) == ([S, B, C], [A])


def test_of_two_members_refusing_each_other_one_stays() -> None:
    staying, out = plan_members(NAMES, {A: {B}, B: {A}}, S)
    assert len(out) == 1 and out[0] in (A, B) and staying == [fp for fp in NAMES if fp not in out]


def test_the_member_refusing_most_goes_first_so_fewer_are_left_out() -> None:
    assert plan_members(NAMES, {A: {B, C}, B: {A}, C: {A}}, S) == ([S, B, C], [A])


def test_the_scheduler_s_node_stays_and_whoever_it_does_not_allow_is_left_out() -> None:
    assert plan_members(NAMES, {S: {B}}, S) == ([S, A, C], [B])
    assert plan_members(NAMES, {S: {B}, A: {S}}, S) == ([S, C], [B, A])  # refusing the scheduler's node: out too
    # It stays even when it runs no worker itself (not a candidate).
    assert plan_members({A: "beta", B: "gamma"}, {S: {A}}, S) == ([B], [A])


class Trust:
    def __init__(self, names: dict[bytes, str]) -> None:
        self.names = names

    def get(self, fp: bytes) -> SimpleNamespace | None:
        return SimpleNamespace(name=self.names[fp]) if fp in self.names else None


def context(tmp_path: Path, me: bytes) -> NodeContext:
    peers = {fp: name for fp, name in NAMES.items() if fp != me and fp != C}  # delta: not paired here
    ctx = SimpleNamespace(name=NAMES[me], identity=SimpleNamespace(fingerprint=me), trust=Trust(peers),
                          permissions=Permissions(tmp_path / "permissions.sqlite"))  # fmt: skip
    return cast(NodeContext, ctx)


def test_a_member_names_each_node_of_the_cluster_it_does_not_allow_and_the_fix_in_one_line(tmp_path: Path) -> None:
    ctx = context(tmp_path, A)
    ctx.permissions.set(S, "tasks", True)
    assert lacking(ctx, [S, A, B]) == [B]  # itself never counts
    line = refusal(ctx, lacking(ctx, [S, A, B]))
    assert line == (
        "beta does not allow tasks for gamma, in the same Dask cluster, whose code would run in its worker: "
        "on beta, `noizylab allow gamma tasks`, or leave it out"
    )
    both = refusal(ctx, lacking(ctx, [S, B, C]))
    assert "\n" not in both and f"gamma and unpaired node {format_id(C)[:15]}" in both, both
    assert refusal(ctx, []) == ""


def test_a_malformed_member_list_is_told_apart() -> None:
    assert parse_members([format_id(A), format_id(B)]) == {A, B}
    assert parse_members([format_id(A), "not-an-id"]) is None

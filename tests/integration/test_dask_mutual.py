"""Dask's processes run each other's code (pickled tasks and data), so a node runs a worker only among nodes it
allows tasks: every member, the scheduler's node and the owner. A member that does not is refused with one line
naming whom it lacks, a node outside the cluster cannot get a worker in by any list it names, and a member that
stops allowing another while the cluster runs takes its worker out within 5 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from noizylab_desktop._proto import noizylab_dask_pb2 as dpb
from noizylab_desktop._proto import noizylab_dask_pb2_grpc as dpb_grpc
from noizylab_desktop.services.dask.ca import csr_for, new_key
from tests.conftest import NodeProcess, start_all, wait_for
from tests.integration.dask_support import dask_children, workers
from tests.integration.tasks_helpers import pair
from tests.security.hostile import Hostile, channel

pytest.importorskip("distributed")

NODES = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    """alpha, beta and gamma, each paired with each other, allowing nothing yet."""
    root = tmp_path_factory.mktemp("trio")
    alpha, beta, gamma = start_all(*(NodeProcess(root / name, name) for name in NODES))
    try:
        pair(alpha, beta)
        pair(alpha, gamma)
        pair(beta, gamma)
        yield alpha, beta, gamma
    finally:
        for node in (alpha, beta, gamma):
            node.stop()


def allow(node: NodeProcess, *others: NodeProcess, allowed: bool = True) -> None:
    for other in others:
        node.cli("allow" if allowed else "deny", other.name, "tasks")


def hostile(me: NodeProcess, target: NodeProcess) -> Hostile:
    """``me``'s real identity calling ``target``'s Dask service with raw stubs, skipping its own node's code."""
    identity = me.identity()
    return Hostile(me, target, identity, channel(identity, target))


def test_a_member_that_does_not_allow_another_member_is_refused_in_one_line_naming_it(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    alpha, beta, gamma = trio
    allow(alpha, beta, gamma)
    allow(beta, alpha)  # ...but not gamma
    allow(gamma, alpha, beta)
    try:
        named = alpha.cli("dask", "up", "--workers", "self", "beta", "gamma", check=False)
        assert named.returncode == 1 and named.stdout == ""
        assert named.stderr.strip().splitlines() == [
            "noizylab: error: beta cannot take part: beta does not allow tasks for gamma, in the same Dask cluster, "
            "whose code would run in its worker: on beta, `noizylab allow gamma tasks`, or leave it out"
        ], named.stderr
        assert not dask_children(alpha) and not dask_children(beta) and not dask_children(gamma)

        # Without naming workers, the member that refuses is left out and says why; the others run.
        up = alpha.json("dask", "up")
        assert sorted(w["name"] for w in up["workers"]) == ["alpha", "gamma"], up
        assert any(n.startswith("beta left out: beta does not allow tasks for gamma, ") for n in up["notes"]), up
        assert not dask_children(beta)
        alpha.cli("dask", "down")

        # The scheduler's node is held to the same rule: a member it does not allow is left out.
        allow(beta, gamma)
        allow(alpha, gamma, allowed=False)
        scheduled = alpha.cli("dask", "up", "--workers", "beta", "gamma", check=False)
        assert scheduled.returncode == 1
        assert scheduled.stderr.strip() == (
            "noizylab: error: gamma cannot take part: alpha, the scheduler's node, does not allow tasks for it: "
            "on alpha, `noizylab allow gamma tasks`, or leave it out"
        ), scheduled.stderr
    finally:
        alpha.cli("dask", "down", check=False)
        wait_for(lambda: not any(dask_children(n) for n in trio), 30, "no Dask process left")


def test_a_node_outside_the_cluster_cannot_get_a_worker_in_by_naming_a_list(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess], tmp_path: Path
) -> None:
    alpha, beta, gamma = trio
    allow(alpha, beta, gamma)  # alpha lets gamma run tasks on it...
    allow(beta, alpha)
    allow(beta, gamma, allowed=False)  # ...but beta does not, so gamma stays out of the cluster of alpha and beta
    allow(gamma, alpha, beta)
    mallory = hostile(gamma, alpha)
    to_beta = hostile(gamma, beta)
    try:
        up = alpha.json("dask", "up", "--workers", "self", "beta")
        assert sorted(w["name"] for w in up["workers"]) == ["alpha", "beta"], up
        cluster, members = up["cluster_id"], [alpha.id, beta.id]
        on_alpha = mallory.stub(dpb_grpc.DaskStub)

        # No worker certificate for a node the cluster was not declared with, whatever cluster it names.
        for named in (cluster, ""):
            ask = dpb.DaskIssueRequest(cluster_id=named, role="worker", csr_pem=csr_for(new_key()))
            with pytest.raises(grpc.RpcError) as refused:
                on_alpha.Issue(ask, timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "not a member of Dask cluster" in (refused.value.details() or "")
        # A "member leaving" it never was changes nothing.
        on_alpha.Leave(dpb.DaskClusterRef(cluster_id=cluster, reason="gamma lies"), timeout=10)

        # As a scheduler, it asks beta to join a cluster whose list leaves gamma itself out: beta still counts the
        # node that asks, and does not run a worker for it.
        join = dpb.DaskJoin(cluster_id=cluster, owner_id=alpha.id, member_ids=members)
        assert to_beta.code_of(lambda: to_beta.stub(dpb_grpc.DaskStub).Join(join, timeout=10)) == (
            grpc.StatusCode.PERMISSION_DENIED
        )
        # Nor does beta's probe hide it: gamma is named among those beta lacks.
        probe = to_beta.stub(dpb_grpc.DaskStub).Probe(dpb.DaskProbe(owner_id=alpha.id, member_ids=members), timeout=10)
        assert (
            not probe.allows
            and list(probe.lacks) == [gamma.id]
            and "beta does not allow tasks for gamma" in probe.refusal
        )

        status = alpha.json("dask", "status")
        assert status["cluster_id"] == cluster and sorted(workers(alpha)) == ["alpha", "beta"], status
        assert len(dask_children(beta)) == 1 and not dask_children(gamma)
    finally:
        mallory.close()
        to_beta.close()
        alpha.cli("dask", "down", check=False)
        wait_for(lambda: not any(dask_children(n) for n in trio), 30, "no Dask process left")


def test_a_member_that_stops_allowing_another_takes_its_worker_out_within_5_s(
    trio: tuple[NodeProcess, NodeProcess, NodeProcess],
) -> None:
    alpha, beta, gamma = trio
    allow(alpha, beta, gamma)
    allow(beta, alpha, gamma)
    allow(gamma, alpha, beta)
    try:
        up = alpha.json("dask", "up")
        assert sorted(w["name"] for w in up["workers"]) == ["alpha", "beta", "gamma"], up

        # beta stops allowing gamma: beta's worker is the one that may no longer run beside gamma's.
        allow(beta, gamma, allowed=False)
        denied = time.monotonic()
        wait_for(lambda: not dask_children(beta), 5, "beta's worker to leave")
        left_after = time.monotonic() - denied
        rotated = wait_for(lambda: (s := alpha.json("dask", "status"))["cluster_id"] != up["cluster_id"]
                           and sorted(w["name"] for w in s["workers"]) == ["alpha", "gamma"] and s,
                           60, "the cluster to rotate without beta")  # fmt: skip
        assert any(
            n == "certificates rotated: beta left (beta no longer allows tasks for gamma)" for n in rotated["notes"]
        ), rotated["notes"]
        assert not dask_children(beta), f"beta's worker came back (it left after {left_after:.1f} s)"

        # The scheduler's node stops allowing a member: that member's worker goes, and the cluster rotates.
        allow(alpha, gamma, allowed=False)
        wait_for(lambda: not dask_children(gamma), 5, "gamma's worker to leave")
        again = wait_for(lambda: (s := alpha.json("dask", "status"))["cluster_id"] != rotated["cluster_id"]
                         and [w["name"] for w in s["workers"]] == ["alpha"] and s,
                         60, "the cluster to rotate without gamma")  # fmt: skip
        assert "certificates rotated: alpha no longer allows tasks for gamma" in again["notes"], again["notes"]
    finally:
        alpha.cli("dask", "down", check=False)
        wait_for(lambda: not any(dask_children(n) for n in trio), 30, "no Dask process left")

"""Hostile members and stale certificates: a certificate the cluster issued for one node registers only that node's
worker, under its own name; unpairing a member rotates the cluster, so every certificate issued before (the
member's, and the owner's client certificate) opens nothing any more."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path

import psutil
import pytest

from noizylab_desktop.grid import Grid
from tests.conftest import NodeProcess, start_all, wait_for, within
from tests.integration.dask_support import dask_children, issued_to, refused, security, worker_admitted, workers
from tests.integration.tasks_helpers import pair

pytest.importorskip("distributed")


def test_a_member_s_certificate_registers_only_its_own_worker_and_unpairing_rotates_every_certificate(
    tmp_path: Path,
) -> None:
    alpha, beta = start_all(NodeProcess(tmp_path / "alpha", "alpha"), NodeProcess(tmp_path / "beta", "beta"))
    try:
        pair(alpha, beta)
        beta.cli("allow", "alpha", "tasks")
        alpha.cli("allow", "beta", "tasks")  # each member allows every other (alpha runs a worker too)
        before = alpha.json("dask", "up")
        address = before["scheduler"]["address"]
        assert sorted(w["name"] for w in before["workers"]) == ["alpha", "beta"]

        async def impostors() -> None:
            # beta's owner gets a worker certificate for beta, as its own worker does, and tries to use it as
            # another node: a new "gamma" offering a GPU, so that GPU work would land on it.
            beta_cert, beta_key = await issued_to(beta, "worker")
            assert beta_cert.name == "beta"
            as_beta = security("worker", beta_cert.ca_pem, beta_cert.cert_pem, beta_key)
            assert not await worker_admitted(address, as_beta, "gamma", tmp_path / "gamma")
            # A client certificate (alpha's own user may hold one) does not register a worker at all.
            client_cert, client_key = await issued_to(alpha, "client")
            as_client = security("worker", client_cert.ca_pem, client_cert.cert_pem, client_key)
            assert not await worker_admitted(address, as_client, "alpha-extra", tmp_path / "extra")
            assert sorted(workers(alpha)) == ["alpha", "beta"]

        asyncio.run(impostors())
        assert "refused a worker registering as 'gamma'" in alpha.cli("logs").stdout

        async def stale_after_rotation() -> None:
            old_client, old_client_key = await issued_to(alpha, "client")
            old_worker, old_worker_key = await issued_to(beta, "worker")
            beta_workers = dask_children(beta)
            await asyncio.to_thread(alpha.cli, "unpair", "beta")
            after = await asyncio.to_thread(
                wait_for, lambda: (s := alpha.json("dask", "status"))["cluster_id"] != before["cluster_id"]
                and [w["name"] for w in s["workers"]] == ["alpha"] and s, 60, "the cluster rotated without beta",
            )  # fmt: skip
            assert any(n.startswith("certificates rotated: beta was unpaired") for n in after["notes"]), after
            await asyncio.to_thread(wait_for, lambda: not dask_children(beta), 30, "beta's worker to end")
            assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in beta_workers)
            new_address = after["scheduler"]["address"]
            after_ca = (await issued_to(alpha, "client"))[0].ca_pem
            assert after_ca != old_client.ca_pem
            # Both certificates from before the rotation fail the TLS handshake with the new scheduler.
            assert await refused(new_address, old_client.ca_pem, old_client.cert_pem, old_client_key)
            assert await refused(new_address, old_worker.ca_pem, old_worker.cert_pem, old_worker_key)
            # Even trusting the new CA (a member that had been told of it) does not make the old certificates pass.
            assert await refused(new_address, after_ca, old_worker.cert_pem, old_worker_key)
            # ...while a certificate issued now works: the cluster itself is fine.
            async with Grid(alpha.home) as grid:
                client = await within(grid.dask_client(), 30, "a client of the rotated cluster")
                try:
                    assert await within(client.submit(operator.add, 2, 3), 20, "a task") == 5
                finally:
                    await client.close()

        asyncio.run(stale_after_rotation())
    finally:
        alpha.stop()
        beta.stop()

"""The scheduler admits a worker only under the name the grid gave the node its certificate names."""

from __future__ import annotations

from noizylab_desktop.services.dask.admission import subject_of, worker_refusal

ALPHA, BETA, STRANGER = "AAAAAAA-AAAAAAA", "BBBBBBB-BBBBBBB", "CCCCCCC-CCCCCCC"
MEMBERS = {ALPHA: "alpha", BETA: "beta"}


def cert(node_id: str, role: str) -> dict[str, str]:
    return {"commonName": node_id, "organizationalUnitName": role, "organizationName": "c1"}


def test_a_member_s_worker_certificate_admits_it_under_its_own_name() -> None:
    assert worker_refusal(cert(BETA, "worker"), "beta", MEMBERS) == ""


def test_a_member_cannot_register_under_another_member_s_name_or_a_new_one() -> None:
    assert (
        worker_refusal(cert(BETA, "worker"), "alpha", MEMBERS)
        == "node BBBBBBB-BBBBBBB registers as 'beta', not 'alpha'"
    )
    assert "not 'gamma'" in worker_refusal(cert(BETA, "worker"), "gamma", MEMBERS)


def test_a_client_or_scheduler_certificate_registers_no_worker() -> None:
    assert worker_refusal(cert(ALPHA, "client"), "alpha", MEMBERS) == "a client certificate cannot register a worker"
    assert "scheduler certificate" in worker_refusal(cert(ALPHA, "scheduler"), "alpha", MEMBERS)
    assert "without a role" in worker_refusal({"commonName": ALPHA}, "alpha", MEMBERS)


def test_a_node_that_is_no_member_is_refused_even_with_a_worker_certificate() -> None:
    assert (
        worker_refusal(cert(STRANGER, "worker"), "gamma", MEMBERS)
        == "node CCCCCCC-CCCCCCC is not a member of this cluster"
    )
    assert worker_refusal({}, "alpha", MEMBERS) != ""


def test_the_subject_is_read_from_the_shape_getpeercert_gives() -> None:
    peercert = {
        "subject": ((("commonName", BETA),), (("organizationalUnitName", "worker"),), (("organizationName", "c1"),))
    }
    assert subject_of(peercert) == cert(BETA, "worker")
    assert subject_of(None) == {} and subject_of({}) == {}

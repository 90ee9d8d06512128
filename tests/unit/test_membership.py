"""The grid's signed member list: who may introduce and remove, what a receiver refuses, and how versions move."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core import membership as m
from noizylab_desktop.core.identity import Identity, make_certificate


@dataclass
class Machine:
    """One member's identity and the list it holds."""

    name: str
    identity: Identity = field(init=False)
    doc: pb.MemberList = field(default_factory=pb.MemberList)

    def __post_init__(self) -> None:
        cert, key = make_certificate(self.name)
        self.identity = Identity(cert, key, b"", "")

    @property
    def fp(self) -> bytes:
        return self.identity.fingerprint

    @property
    def own(self) -> tuple[bytes, bytes]:
        return self.fp, self.identity.cert_der

    def introduce(self, other: Machine, now: float = 1.0) -> None:
        self.doc = m.introduce(self.doc, other.identity.cert_der, other.name, [], "", self.fp, self.identity.sign, now)

    def revoke(self, other: Machine, lost: bool = False) -> None:
        self.doc = m.revoke(self.doc, other.fp, lost, self.fp, self.identity.sign, 2.0)

    def take(self, doc: pb.MemberList) -> m.Merged:
        merged = m.merge(self.doc, doc, self.own, self.identity.sign)
        self.doc = merged.doc
        return merged

    def view(self) -> m.Roster:
        return m.holder_view(self.doc, self.fp)


def pair(a: Machine, b: Machine) -> None:
    """Pairing: each side introduces the other, then they exchange lists."""
    a.introduce(b)
    b.introduce(a)
    b.take(a.doc)
    a.take(b.doc)


@pytest.fixture
def grid() -> tuple[Machine, Machine, Machine]:
    """alpha paired with beta, then gamma joined alpha: all three hold one list."""
    alpha, beta, gamma = Machine("alpha"), Machine("beta"), Machine("gamma")
    pair(alpha, beta)
    pair(alpha, gamma)
    beta.take(alpha.doc)
    return alpha, beta, gamma


def test_a_machine_introduced_by_one_member_is_a_member_for_every_member(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    assert set(beta.view().members) == {alpha.fp, gamma.fp}  # beta never paired with gamma
    gamma.take(beta.doc)
    assert set(gamma.view().members) == {alpha.fp, beta.fp}
    assert alpha.doc.version == beta.doc.version == gamma.doc.version


def test_a_list_that_holds_nothing_new_changes_nothing(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, _ = grid
    merged = beta.take(alpha.doc)
    assert not merged.changed and not merged.resigned


def test_an_introduction_signed_by_another_key_than_its_introducers_is_refused(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    mallory = Machine("mallory")
    forged = pb.Introduction(
        anchor_der=mallory.identity.cert_der, name="mallory", introducer=alpha.fp, version=gamma.doc.version + 1
    )
    forged.signature = gamma.identity.sign(m.introduction_body(forged))  # gamma poses as alpha
    doc = m.signed(
        forged.version, [*gamma.doc.introductions, forged], list(gamma.doc.revocations), gamma.fp, gamma.identity.sign
    )
    with pytest.raises(m.ForgedList, match="not signed by the key of the member it names"):
        beta.take(doc)
    assert mallory.fp not in beta.view().members


def test_a_removal_signed_by_another_key_than_its_revokers_is_refused(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, gamma = grid
    forged = pb.Revocation(member=beta.fp, revoker=alpha.fp, version=gamma.doc.version + 1, at=3.0)
    forged.signature = gamma.identity.sign(m.revocation_body(forged))
    doc = m.signed(forged.version, list(gamma.doc.introductions), [forged], gamma.fp, gamma.identity.sign)
    with pytest.raises(m.ForgedList, match="removal of .* is not signed"):
        alpha.take(doc)
    assert beta.fp in alpha.view().members


def test_a_list_whose_own_signature_is_not_its_signers_is_refused(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, gamma = grid
    gamma.revoke(beta)
    gamma.doc.signer = alpha.fp  # gamma's list, claimed to be alpha's
    with pytest.raises(m.ForgedList, match="not signed by the member it names"):
        alpha.take(gamma.doc)


def test_a_list_signed_by_a_stranger_is_refused(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, _ = grid
    stranger = Machine("stranger")
    stranger.doc = m.signed(beta.doc.version + 1, list(beta.doc.introductions), [], stranger.fp, stranger.identity.sign)
    with pytest.raises(m.ForgedList):
        alpha.take(stranger.doc)


def test_a_removal_reaches_every_member_and_versions_only_go_up(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, gamma = grid
    before = beta.doc.version
    gamma.take(beta.doc)
    beta.revoke(alpha)
    assert beta.doc.version == before + 1
    gamma.take(beta.doc)
    assert alpha.fp in gamma.view().removed and alpha.fp not in gamma.view().members
    assert gamma.view().removed[alpha.fp].revoker == beta.fp


def test_a_replayed_older_list_is_refused_and_cannot_re_add_a_removed_device(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    old = pb.MemberList()
    old.CopyFrom(alpha.doc)
    alpha.revoke(beta)
    gamma.take(alpha.doc)
    with pytest.raises(m.StaleList, match=r"older member list \(version 4; this machine holds version 5\)"):
        gamma.take(old)
    # The same records at a higher version, re-signed by a member: the removal stays, since records only add up.
    replayed = m.signed(
        gamma.doc.version + 1, list(old.introductions), list(old.revocations), alpha.fp, alpha.identity.sign
    )
    gamma.take(replayed)
    assert beta.fp in gamma.view().removed and beta.fp not in gamma.view().members


def test_a_new_introduction_of_a_removed_device_is_refused(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, gamma = grid
    gamma.take(alpha.doc)
    alpha.revoke(beta)
    gamma.take(alpha.doc)
    with pytest.raises(m.MembershipError, match="was removed from the grid"):
        gamma.introduce(beta)
    # A member that re-introduces it anyway (it had not heard) has its list refused by those that have.
    stale = pb.Introduction(anchor_der=beta.identity.cert_der, name="beta", introducer=gamma.fp, version=9)
    stale.signature = gamma.identity.sign(m.introduction_body(stale))
    doc = m.signed(9, [*gamma.doc.introductions, stale], list(gamma.doc.revocations), gamma.fp, gamma.identity.sign)
    with pytest.raises(m.ForgedList, match="which was removed from the grid"):
        alpha.take(doc)


def test_an_introduction_the_removed_device_backdates_after_its_removal_is_void(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    alpha.revoke(beta, lost=True)
    # The thief signs an introduction of its own machine at an old version, as if made before the removal.
    mallory = Machine("mallory")
    forged = pb.Introduction(anchor_der=mallory.identity.cert_der, name="m", introducer=beta.fp, version=1, at=0.5)
    forged.signature = beta.identity.sign(m.introduction_body(forged))
    smuggled = m.signed(
        alpha.doc.version,
        [*alpha.doc.introductions, forged],
        list(alpha.doc.revocations),
        alpha.fp,
        alpha.identity.sign,
    )
    gamma.take(smuggled)  # well signed, by members: taken, but the backdated introduction counts for nothing
    assert mallory.fp not in gamma.view().members
    assert gamma.view().removed[beta.fp].lost


def test_members_who_changed_the_list_at_once_meet_on_one_version(grid: tuple[Machine, Machine, Machine]) -> None:
    alpha, beta, gamma = grid
    gamma.take(beta.doc)
    delta, epsilon = Machine("delta"), Machine("epsilon")
    alpha.introduce(delta)
    beta.introduce(epsilon)
    assert alpha.doc.version == beta.doc.version  # the same number, different records
    gamma.take(alpha.doc)
    resigned = gamma.take(beta.doc)
    assert resigned.resigned and gamma.doc.version == alpha.doc.version + 1
    alpha.take(gamma.doc)
    beta.take(gamma.doc)
    assert m.same_records(alpha.doc, beta.doc) and alpha.doc.version == beta.doc.version == gamma.doc.version
    assert {delta.fp, epsilon.fp} <= set(alpha.view().members)


def test_two_members_removing_each_other_resolve_the_same_way_everywhere(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    delta = Machine("delta")
    pair(gamma, delta)
    for machine in (alpha, beta, gamma, delta):
        for other in (alpha, beta, gamma, delta):
            try_take(machine, other.doc)
    alpha.revoke(beta)
    beta.revoke(alpha)
    # Two bystanders hear the two removals in opposite orders; the loser's list is refused where the winner's
    # removal is already held (it is signed by a removed device), and taken where it is not.
    for first, second in ((alpha, beta), (beta, alpha)):
        bystander = gamma if first is alpha else delta
        try_take(bystander, first.doc)
        try_take(bystander, second.doc)
    try_take(gamma, delta.doc)
    try_take(delta, gamma.doc)
    assert set(gamma.view().removed) == set(delta.view().removed)
    assert len(gamma.view().removed) == 1  # the first removal in (version, revoker) order voids the other


def try_take(machine: Machine, doc: pb.MemberList) -> None:
    """``machine`` takes ``doc`` unless it refuses it."""
    try:
        machine.take(doc)
    except m.MembershipError:
        pass


def test_the_digest_heartbeats_compare_names_the_records_not_the_signer(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, gamma = grid
    gamma.take(beta.doc)
    resigned = m.signed(alpha.doc.version, list(alpha.doc.introductions), [], gamma.fp, gamma.identity.sign)
    assert m.digest(resigned) == m.digest(alpha.doc)
    alpha.introduce(Machine("delta"))
    beta.introduce(Machine("epsilon"))  # a split: one version on each side, other records
    assert alpha.doc.version == beta.doc.version and m.digest(alpha.doc) != m.digest(beta.doc)


def test_a_list_of_more_records_than_a_grid_holds_is_refused_before_any_is_verified(
    grid: tuple[Machine, Machine, Machine],
) -> None:
    alpha, beta, _ = grid
    flood = pb.MemberList(version=beta.doc.version + 1, introductions=[pb.Introduction()] * (m.MAX_RECORDS + 1))
    with pytest.raises(m.ForgedList, match="more than a grid holds"):
        beta.take(flood)

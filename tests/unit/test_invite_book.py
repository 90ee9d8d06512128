"""The inviter accepts each code once, for ten minutes, and refuses more than five wrong codes a minute."""

from __future__ import annotations

import pytest

from noizylab_desktop.core.errors import PairingError
from noizylab_desktop.core.pairing import InviteBook, join_proof, verification_string

INVITER, JOINER = b"i" * 32, b"j" * 32


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(clock: Clock) -> InviteBook:
    return InviteBook(clock=clock)


def test_the_right_proof_is_accepted_once(book: InviteBook) -> None:
    book.create(b"secret1")
    accepted = book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER)
    assert accepted.used
    with pytest.raises(PairingError, match="already used"):
        book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER)


def test_a_code_expires_after_ten_minutes(book: InviteBook, clock: Clock) -> None:
    book.create(b"secret1")
    clock.now += 600.5
    with pytest.raises(PairingError, match="expired"):
        book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER)
    assert book.open_count() == 0


def test_a_proof_bound_to_another_certificate_is_wrong(book: InviteBook) -> None:
    book.create(b"secret1")
    with pytest.raises(PairingError, match="wrong invite code"):
        book.accept(join_proof(b"secret1", INVITER, b"m" * 32), INVITER, JOINER)


def test_after_five_wrong_codes_in_a_minute_even_the_right_one_waits(book: InviteBook, clock: Clock) -> None:
    book.create(b"secret1")
    for attempt in range(5):
        with pytest.raises(PairingError, match="wrong invite code"):
            book.accept(join_proof(b"guess%d" % attempt, INVITER, JOINER), INVITER, JOINER)
        clock.now += 1
    with pytest.raises(PairingError, match="too many"):
        book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER)
    clock.now += 60
    assert book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER).used


def test_both_sides_derive_the_same_six_digit_verification() -> None:
    text = verification_string(b"secret1", INVITER, JOINER)
    assert len(text) == 7 and text[3] == " " and text.replace(" ", "").isdigit()
    assert text == verification_string(b"secret1", INVITER, JOINER)
    assert text != verification_string(b"secret2", INVITER, JOINER)

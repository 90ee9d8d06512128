"""Wrong codes are limited per machine and per invite, so a stranger can neither guess a code nor lock the owner out."""

from __future__ import annotations

import pytest

from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.errors import PairingError, PairingRateLimited
from noizylab_desktop.core.invite_book import (
    INVITE_GUESS_LIMIT,
    MAX_SOURCES,
    SOURCE_LIMIT,
    InviteBook,
    join_proof,
    source_key,
)

INVITER, JOINER = b"i" * 32, b"j" * 32
KNOCKER, OWNER = "192.168.1.66", "192.168.1.20"


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _wrong(book: InviteBook, source: str, n: int = 0) -> PairingError:
    with pytest.raises(PairingError) as caught:
        book.accept(join_proof(b"guess-%d" % n, INVITER, JOINER), INVITER, JOINER, source)
    return caught.value


def test_a_knocker_is_stopped_while_the_owners_machine_still_joins() -> None:
    book = InviteBook(clock=Clock())
    book.create(b"secret1")
    for n in range(SOURCE_LIMIT):
        assert "wrong invite code" in _wrong(book, KNOCKER, n).message
    assert isinstance(_wrong(book, KNOCKER, 99), PairingRateLimited)
    assert book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER, OWNER).used


def test_the_knocker_may_try_again_after_a_minute() -> None:
    clock = Clock()
    book = InviteBook(clock=clock)
    book.create(b"secret1")
    for n in range(SOURCE_LIMIT):
        _wrong(book, KNOCKER, n)
    clock.now += 60.5
    assert "wrong invite code" in _wrong(book, KNOCKER, 7).message


def test_an_invite_that_took_its_bound_of_guesses_closes_but_a_fresh_one_works() -> None:
    book = InviteBook(clock=Clock(), guess_limit=3)
    book.create(b"secret1")
    for n in range(3):  # three machines, one guess each: the per-machine limit never triggers
        _wrong(book, f"10.0.0.{n}", n)
    with pytest.raises(PairingRateLimited, match="too many wrong guesses"):
        book.accept(join_proof(b"secret1", INVITER, JOINER), INVITER, JOINER, OWNER)
    book.create(b"secret2")
    assert book.open_count() == 1
    assert book.accept(join_proof(b"secret2", INVITER, JOINER), INVITER, JOINER, OWNER).used


def test_a_guess_counts_against_every_invite_open_at_that_moment_only() -> None:
    book = InviteBook(clock=Clock())
    first = book.create(b"secret1")
    _wrong(book, KNOCKER)
    second = book.create(b"secret2")
    _wrong(book, KNOCKER, 1)
    assert (first.wrong, second.wrong) == (2, 1)


def test_one_ipv6_machine_counts_once_for_its_whole_64() -> None:
    assert source_key("2001:db8::1") == source_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert source_key("2001:db8:0:1::1") != source_key("2001:db8::1")
    assert source_key("::ffff:192.168.1.20") == source_key("192.168.1.20") == "192.168.1.20"


def test_the_table_of_sources_stays_bounded() -> None:
    clock = Clock()
    book = InviteBook(clock=clock)
    book.create(b"secret1")
    for n in range(MAX_SOURCES + 50):
        _wrong(book, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", n)
        clock.now += 0.001
    assert len(book.sources) <= MAX_SOURCES


def test_guessing_an_invite_is_no_likelier_than_before() -> None:
    # Before: 56-bit secrets and 5 wrong codes a minute for everyone, so at most 55 guesses in a 10-minute life.
    assert INVITE_GUESS_LIMIT / 2 ** (8 * codes.SECRET_BYTES) <= 55 / 2**56

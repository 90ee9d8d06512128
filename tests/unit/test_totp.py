"""TOTP step-up (RFC 6238): codes in the window are accepted once, wrong tries are limited, a step-up expires.

The secret is in the real keychain (the test's private Secret Service); time is a clock the test moves, never a sleep.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from noizylab_desktop.core.errors import StepUpError, StepUpNeeded
from noizylab_desktop.core.secrets import KeyringStore
from noizylab_desktop.core.totp import DIGITS, SECRET_NAME, STEP_S, STEP_UP_S, Enrolment, Totp

START = 1_700_000_010.0  # 10 s into a time step


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Iterator[KeyringStore]:
    found = KeyringStore(f"totp-test-{uuid.uuid4().hex}")
    yield found
    found.delete(SECRET_NAME)


def code_at(enrolment: Enrolment, at: float) -> str:
    return pyotp.TOTP(enrolment.secret).at(at)


def enabled(store: KeyringStore, tmp_path: Path, clock: Clock) -> tuple[Totp, Enrolment]:
    """TOTP turned on at ``clock``'s time, then a step on (the confirming code's step is spent)."""
    totp = Totp(store, tmp_path, clock)
    enrolment = totp.enrol("alpha")
    totp.confirm(enrolment, code_at(enrolment, clock.now))
    with pytest.raises(StepUpNeeded):
        totp.require(None)  # setting up starts no step-up
    clock.now += STEP_S
    return totp, enrolment


def test_rfc_6238_vectors_hold_for_the_codes_checked() -> None:
    # RFC 6238 appendix B, SHA-1, secret "12345678901234567890": a 6-digit code is the last 6 of its 8 digits.
    secret = base64.b32encode(b"12345678901234567890").decode()
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    for at, expected in (
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ):
        assert totp.at(at) == expected[-DIGITS:]


def test_setup_keeps_the_secret_in_the_keychain_and_turns_it_on(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp = Totp(store, tmp_path, clock)
    assert not totp.enabled()
    totp.require(None)  # off: nothing is asked
    enrolment = totp.enrol("alpha")
    assert enrolment.uri.startswith("otpauth://totp/NOIZYLAB:alpha?secret=" + enrolment.secret)
    assert len(enrolment.recovery_codes) == 10 and len(set(enrolment.recovery_codes)) == 10
    assert not totp.enabled(), "nothing is kept before a code confirms the app holds the secret"
    with pytest.raises(StepUpError, match="does not match the new secret"):
        totp.confirm(enrolment, "000000" if code_at(enrolment, clock.now) != "000000" else "111111")
    totp.confirm(enrolment, code_at(enrolment, clock.now))
    assert totp.enabled() and store.get(SECRET_NAME) == enrolment.secret.encode()
    assert enrolment.secret.encode() not in (tmp_path / "totp.sqlite").read_bytes()
    with pytest.raises(StepUpError, match="TOTP is on already"):
        totp.enrol("alpha")


def test_a_code_is_accepted_once_even_after_a_restart(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp, enrolment = enabled(store, tmp_path, clock)
    code = code_at(enrolment, clock.now)
    totp.verify(code)
    restarted = Totp(store, tmp_path, clock)  # a new process reads the same state
    with pytest.raises(StepUpError, match="this TOTP code was used already"):
        restarted.verify(code)
    # The previous step's code is still in the window but older than the one used: refused too.
    with pytest.raises(StepUpError, match="used already"):
        restarted.verify(code_at(enrolment, clock.now - STEP_S))
    clock.now += STEP_S
    restarted.verify(code_at(enrolment, clock.now))


def test_codes_one_step_either_side_pass_and_two_steps_away_do_not(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp, enrolment = enabled(store, tmp_path, clock)
    clock.now += STEP_S  # the step before now is not the confirming code's, spent already
    for offset in (2, -2):
        with pytest.raises(StepUpError, match="wrong TOTP code"):
            totp.verify(code_at(enrolment, clock.now + offset * STEP_S))
    totp.verify(code_at(enrolment, clock.now - STEP_S))  # a phone a little behind
    totp.verify(code_at(enrolment, clock.now + STEP_S))  # a phone a little ahead


def test_the_sixth_wrong_try_is_refused_even_with_the_right_code(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp, enrolment = enabled(store, tmp_path, clock)
    right = code_at(enrolment, clock.now)
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        with pytest.raises(StepUpError) as raised:
            totp.verify(wrong)
        assert raised.value.message == f"wrong TOTP code ({left} {'try' if left == 1 else 'tries'} left in 5 minutes)"
    with pytest.raises(StepUpError) as raised:
        totp.verify(right)
    assert raised.value.message == "5 wrong TOTP codes in 5 minutes: try again in 300 s"
    assert Totp(store, tmp_path, clock).status().wrong_tries == 5, "the count survives a restart"
    clock.now += 300
    totp.verify(code_at(enrolment, clock.now))
    assert totp.status().wrong_tries == 0


def test_a_step_up_lasts_five_minutes(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp, enrolment = enabled(store, tmp_path, clock)
    with pytest.raises(StepUpNeeded, match="--totp CODE"):
        totp.require(None)
    totp.require(code_at(enrolment, clock.now))
    clock.now += STEP_UP_S - 1
    totp.require(None)
    assert totp.status().stepped_up_until == pytest.approx(clock.now + 1)
    clock.now += 1
    with pytest.raises(StepUpNeeded):
        totp.require(None)
    assert totp.status().stepped_up_until is None


def test_a_recovery_code_stands_in_once_and_disable_needs_a_fresh_code(store: KeyringStore, tmp_path: Path) -> None:
    clock = Clock()
    totp, enrolment = enabled(store, tmp_path, clock)
    first = enrolment.recovery_codes[0]
    totp.verify(first.upper())
    assert totp.status().recovery_codes_left == 9
    with pytest.raises(StepUpError, match="this recovery code was used already"):
        totp.verify(first)
    with pytest.raises(StepUpNeeded):
        totp.disable(None)  # a step-up holds, yet turning TOTP off takes a code of its own
    totp.disable(enrolment.recovery_codes[1])
    assert not totp.enabled() and store.get(SECRET_NAME) is None
    with pytest.raises(StepUpError, match="TOTP is off already"):
        totp.disable("123456")

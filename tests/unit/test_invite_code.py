"""Invite codes carry addresses, the inviter's fingerprint and a secret; typos are caught before sending."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest

from noizylab_desktop.core import invite
from noizylab_desktop.core.errors import PairingError
from noizylab_desktop.core.transport import peer_host


def _code(*hosts: str) -> invite.InviteCode:
    return invite.InviteCode.new(bytes(range(32)), 50052, list(hosts))


def test_a_code_round_trips_ipv4_ipv6_and_host_names() -> None:
    original = _code("192.168.1.20", "fe80::1", "studio.local")
    decoded = invite.decode(invite.encode(original))
    assert decoded == original
    assert decoded.addresses == ["192.168.1.20:50052", "[fe80::1]:50052", "studio.local:50052"]


def test_a_code_is_short_enough_to_type() -> None:
    text = invite.encode(_code("192.168.1.20").expiring(time.time() + 600))
    assert len(text.replace("-", "")) <= 50  # 45 before the expiry was added
    assert all(len(group) <= 5 for group in text.split("-"))


def test_case_spacing_and_look_alike_digits_are_forgiven() -> None:
    original = _code("10.0.0.2")
    text = invite.encode(original)
    sloppy = " " + text.lower().replace("-", " ").replace("o", "0").replace("i", "1").replace("b", "8") + " "
    assert invite.decode(sloppy) == original


def test_a_mistyped_code_gets_a_one_line_error() -> None:
    text = invite.encode(_code("10.0.0.2"))
    swapped = text[:3] + ("A" if text[3] != "A" else "B") + text[4:]
    for bad in (swapped, text[:-2], "not a code", ""):
        with pytest.raises(PairingError) as caught:
            invite.decode(bad)
        assert caught.value.message == invite.MISTYPED


def test_a_machine_with_no_address_cannot_make_a_code() -> None:
    with pytest.raises(PairingError, match="advertise"):
        invite.encode(_code())


def test_each_code_gets_a_fresh_secret() -> None:
    assert _code("10.0.0.2").secret != _code("10.0.0.2").secret


def test_the_joiners_address_is_read_from_grpcs_peer_string() -> None:
    assert peer_host("ipv4:192.168.1.20:51234") == "192.168.1.20"
    assert peer_host("ipv6:[fe80::1]:51234") == "fe80::1"
    assert peer_host("unix:/tmp/socket") is None


def test_a_code_says_when_it_expires_to_the_minute_rounded_up() -> None:
    code = _code("10.0.0.2").expiring(1_765_000_000.5)
    assert code.expires_at == 1_765_000_020.0
    assert invite.decode(invite.encode(code)) == code


def test_a_code_from_the_version_before_the_expiry_still_decodes() -> None:
    old = _code("10.0.0.2")
    body = bytes([2]) + old.fp_prefix + old.secret + old.port.to_bytes(2, "big") + b"\x04" + bytes([10, 0, 0, 2])
    text = base64.b32encode(body + hashlib.sha256(body).digest()[:2]).decode().rstrip("=")
    assert invite.decode(text) == old and old.expires_at == 0.0

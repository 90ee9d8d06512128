"""Pairing by list: the inviting machines discovery heard, and the code to join the one a person chose.

Choosing a machine never replaces the proof: the code's secret must still be typed, the code must come from the
machine chosen (its tag is a hash of the fingerprint prefix the code carries), and the join pins that fingerprint
and proves the secret exactly as a typed code alone does. The chosen machine's announced hosts are only put first
in the code, so the join tries where the machine was heard before the hosts the code names.
"""

from __future__ import annotations

from typing import Any

from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.discovery.records import Announcement, tag_of
from noizylab_desktop.core.errors import PairingError

NO_CODE = "choosing a machine is not enough: type the invite code it shows (discovery never pairs on its own)"


def listing(inviting: list[Announcement]) -> list[dict[str, Any]]:
    """The inviting machines as ``pair join --list`` shows them, numbered from 1."""
    return [
        {"number": n, "tag": a.tag, "hosts": list(a.hosts), "pairing_port": a.pairing_port}
        for n, a in enumerate(inviting, 1)
    ]


def tag_of_code(code: str) -> str:
    """The tag of the machine that made ``code``."""
    return tag_of(codes.decode(code).fp_prefix)


def code_for(inviting: list[Announcement], choice: int, code: str) -> str:
    """The code to join the ``choice``-th listed machine with: ``code`` itself, its hosts led by where it was heard."""
    if not 1 <= choice <= len(inviting):
        raise PairingError(f"choose a number from 1 to {len(inviting)}" if inviting else "no machine is inviting")
    if not code.strip():
        raise PairingError(NO_CODE)
    chosen = inviting[choice - 1]
    typed = codes.decode(code)
    if tag_of(typed.fp_prefix) != chosen.tag:
        raise PairingError("that code was made by another machine than the one chosen: type the code it shows")
    hosts = tuple(dict.fromkeys([*chosen.hosts, *typed.hosts]))
    return codes.encode(codes.InviteCode(typed.fp_prefix, typed.secret, typed.port, hosts))

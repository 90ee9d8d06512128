"""Invite codes: where the inviter is, which certificate it holds, and a one-time secret, in one typeable string.

Layout (then base32, in groups of five): version, the first 10 bytes of the inviter's fingerprint (the joiner pins
it: no trust on first use), an 8-byte secret (64 bits; ``invite_book`` states the guessing bound), the pairing port,
when the code expires (3 bytes: minutes since 2024-01-01 UTC, enough until 2055), the addresses, and a 2-byte
checksum so a typo is caught before anything is sent. The expiry lets a joiner that finds the pairing port closed
(it closes a minute after the last code expired) say "expired at 14:05" instead of "cannot reach". Version 2 codes,
without it, still decode.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import os
from dataclasses import dataclass, replace

from noizylab_desktop.core.errors import PairingError
from noizylab_desktop.core.transport import host_port

VERSION = 3  # 2: the secret grew from 7 to 8 bytes; 3: the expiry
FP_BYTES = 10
SECRET_BYTES = 8
EXPIRY_BYTES = 3
EPOCH = 1704067200  # 2024-01-01 00:00 UTC: the expiry counts minutes from here
MISTYPED = "that invite code is mistyped: check it against the inviting machine and type it again"


@dataclass(frozen=True)
class InviteCode:
    """What an invite code carries."""

    fp_prefix: bytes
    secret: bytes
    port: int
    hosts: tuple[str, ...]
    expires_at: float = 0.0  # Unix time, a whole minute (rounded up); 0 when the code does not say (version 2)

    @property
    def addresses(self) -> list[str]:
        """``host:port`` for each host, IPv6 in brackets."""
        return [host_port(h, self.port) for h in self.hosts]

    @classmethod
    def new(cls, fp: bytes, port: int, hosts: list[str]) -> InviteCode:
        """A code with a fresh secret."""
        return cls(fp[:FP_BYTES], os.urandom(SECRET_BYTES), port, tuple(hosts))

    def expiring(self, at: float) -> InviteCode:
        """This code, saying it expires at ``at`` (rounded up to the minute, as the code stores it)."""
        return replace(self, expires_at=_from_minutes(_minutes(at)))


def _from_minutes(minutes: int) -> float:
    return float(EPOCH + 60 * minutes) if minutes > 0 else 0.0


def _minutes(expires_at: float) -> int:
    """``expires_at`` as the code stores it; 0 when unknown (or out of the 3 bytes' range)."""
    minutes = math.ceil((expires_at - EPOCH) / 60) if expires_at else 0
    return minutes if 0 < minutes < 1 << (8 * EXPIRY_BYTES) else 0


def _host_bytes(host: str) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raw = host.encode("idna")
        if not 0 < len(raw) < 256:
            raise PairingError(f"{host!r} cannot be put in an invite code") from None
        return b"h" + bytes([len(raw)]) + raw
    return (b"\x04" if ip.version == 4 else b"\x06") + ip.packed


def encode(invite: InviteCode) -> str:
    """The invite as ``XXXXX-XXXXX-...``."""
    if not invite.hosts:
        raise PairingError("this machine has no address to put in an invite code: set `advertise` in its config")
    body = bytes([VERSION]) + invite.fp_prefix + invite.secret + invite.port.to_bytes(2, "big")
    body += _minutes(invite.expires_at).to_bytes(EXPIRY_BYTES, "big")
    body += b"".join(_host_bytes(h) for h in invite.hosts[:8])
    raw = body + hashlib.sha256(body).digest()[:2]
    text = base64.b32encode(raw).decode().rstrip("=")
    return "-".join(text[i : i + 5] for i in range(0, len(text), 5))


def decode(code: str) -> InviteCode:
    """Parse a typed code; look-alike digits are forgiven, any other typo is a one-line error."""
    clean = code.strip().upper().translate(str.maketrans("018", "OIB", "- \t\n"))
    try:
        raw = base64.b32decode(clean + "=" * (-len(clean) % 8))
    except ValueError:
        raise PairingError(MISTYPED) from None
    body, check = raw[:-2], raw[-2:]
    if len(body) < 1 + FP_BYTES + SECRET_BYTES + 2 or hashlib.sha256(body).digest()[:2] != check:
        raise PairingError(MISTYPED)
    if body[0] not in (2, VERSION):
        raise PairingError("that invite code comes from a different NOIZYLAB version: update both machines")
    at = 1
    fp, at = body[at : at + FP_BYTES], at + FP_BYTES
    secret, at = body[at : at + SECRET_BYTES], at + SECRET_BYTES
    port, at = int.from_bytes(body[at : at + 2], "big"), at + 2
    minutes = 0
    if body[0] == VERSION:
        minutes, at = int.from_bytes(body[at : at + EXPIRY_BYTES], "big"), at + EXPIRY_BYTES
    hosts: list[str] = []
    while at < len(body):
        kind = body[at : at + 1]
        if kind == b"\x04":
            hosts.append(str(ipaddress.IPv4Address(body[at + 1 : at + 5])))
            at += 5
        elif kind == b"\x06":
            hosts.append(str(ipaddress.IPv6Address(body[at + 1 : at + 17])))
            at += 17
        elif kind == b"h" and at + 1 < len(body):
            size = body[at + 1]
            hosts.append(body[at + 2 : at + 2 + size].decode("idna"))
            at += 2 + size
        else:
            raise PairingError(MISTYPED)
    if not hosts or port == 0:
        raise PairingError(MISTYPED)
    return InviteCode(fp, secret, port, tuple(hosts), _from_minutes(minutes))

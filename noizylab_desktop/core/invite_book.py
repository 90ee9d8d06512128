"""The inviter's book of open invites: which join proof is accepted, and how many wrong guesses anyone gets.

Wrong codes are limited two ways, so that a stranger can neither guess a code nor lock the owner out:

- per source (an IPv4 address, or an IPv6 /64): five wrong codes a minute, then that machine waits a minute. One
  knocker slows only itself; the owner's joining machine, somewhere else, is not held up by it.
- per invite: a wrong code cannot say which invite it was meant for, so it counts as a guess at every invite open at
  that moment; an invite that has taken ``INVITE_GUESS_LIMIT`` wrong guesses refuses even its right code. That bounds
  guessing however many sources take part, and a fresh invite starts at zero, so the owner can always make a new one.

Bound: a code's secret is 64 random bits, so an invite falls to guessing with a probability of at most
``INVITE_GUESS_LIMIT / 2**64`` (about 2**-50.7) over its whole life.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from noizylab_desktop.core.errors import PairingError, PairingRateLimited
from noizylab_desktop.core.identity import hmac_sha256

INVITE_TTL_S = 600.0
SOURCE_LIMIT = 5
WINDOW_S = 60.0
INVITE_GUESS_LIMIT = 10_000
FORGET_AFTER_S = 3600.0
MAX_SOURCES = 4096


def join_proof(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> bytes:
    return hmac_sha256(secret, b"noizylab-join", inviter_fp, joiner_fp)


def accept_proof(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> bytes:
    return hmac_sha256(secret, b"noizylab-accept", inviter_fp, joiner_fp)


def verification_string(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> str:
    """Six digits both people can compare, e.g. ``482 913``."""
    number = int.from_bytes(hmac_sha256(secret, b"noizylab-verify", inviter_fp, joiner_fp)[:8], "big") % 1_000_000
    return f"{number // 1000:03d} {number % 1000:03d}"


def source_key(host: str | None) -> str:
    """Who is counted for a wrong code: the IPv4 address, or the IPv6 /64 (one machine can hold a whole /64)."""
    if not host:
        return ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class Invite:
    """One code's secret and state."""

    secret: bytes
    expires_at: float
    used: bool = False
    wrong: int = 0  # wrong codes tried while this invite was open: each one was a guess at it

    def open(self, now: float) -> bool:
        return not self.used and self.expires_at > now


@dataclass
class InviteBook:
    """Open invites and recent wrong attempts; decides whether a join proof is accepted."""

    clock: Callable[[], float] = time.time
    ttl_s: float = INVITE_TTL_S
    guess_limit: int = INVITE_GUESS_LIMIT
    invites: list[Invite] = field(default_factory=list)
    sources: dict[str, deque[float]] = field(default_factory=dict)

    def create(self, secret: bytes) -> Invite:
        """Record a new invite for ``secret``."""
        invite = Invite(secret=secret, expires_at=self.clock() + self.ttl_s)
        self.invites.append(invite)
        return invite

    def open_count(self) -> int:
        """Invites that can still be used."""
        now = self.clock()
        self.invites = [i for i in self.invites if i.expires_at + FORGET_AFTER_S > now]
        return sum(1 for i in self.invites if i.open(now) and i.wrong < self.guess_limit)

    def last_expiry(self) -> float:
        """When the last invite made expires (used or not); 0 when none is remembered."""
        return max((i.expires_at for i in self.invites), default=0.0)

    def accept(self, proof: bytes, inviter_fp: bytes, joiner_fp: bytes, source: str = "") -> Invite:
        """The invite ``proof`` answers, marked used; otherwise a one-line ``PairingError``."""
        now = self.clock()
        recent = self._recent(source, now)
        if len(recent) >= SOURCE_LIMIT:
            raise PairingRateLimited(
                "too many wrong invite codes from this machine in the last minute: wait a minute, then try again"
            )
        for invite in self.invites:
            if hmac.compare_digest(join_proof(invite.secret, inviter_fp, joiner_fp), proof):
                if invite.used:
                    raise PairingError("that invite code was already used: make a new one with `noizylab pair invite`")
                if invite.expires_at <= now:
                    raise PairingError("that invite code has expired: make a new one with `noizylab pair invite`")
                if invite.wrong >= self.guess_limit:
                    raise PairingRateLimited(
                        "that invite code was closed after too many wrong guesses at it: "
                        "make a new one with `noizylab pair invite`"
                    )
                invite.used = True
                return invite
        recent.append(now)
        for invite in self.invites:
            if invite.open(now):
                invite.wrong += 1
        raise PairingError("wrong invite code: check it against the inviting machine, or make a new one")

    def _recent(self, source: str, now: float) -> deque[float]:
        """``source``'s wrong codes in the last minute; forgets quiet sources so the table stays small."""
        if source not in self.sources and len(self.sources) >= MAX_SOURCES:
            self.sources = {k: v for k, v in self.sources.items() if v and v[-1] > now - WINDOW_S}
            while len(self.sources) >= MAX_SOURCES:
                # Thousands of sources in one minute: drop the quietest; the per-invite bound still holds.
                del self.sources[min(self.sources, key=lambda k: self.sources[k][-1])]
        recent = self.sources.setdefault(source, deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        return recent

"""TOTP step-up for sensitive actions (RFC 6238: 30 s steps, 6 digits, one step either side).

When it is on, granting ``control``, ``display`` or ``tasks``, pairing, unpairing and exposing anything beyond
loopback ask for a code. A code proves presence for ``STEP_UP_S`` (five minutes), so a burst of such actions needs
one code. The secret lives only in the keychain; the rest (when it was turned on, the last time step a code was
accepted for, recent wrong tries, hashed recovery codes, until when a step-up holds) is in a small SQLite file in
the state folder, shared by the node and its command line, and every check reads it afresh in one transaction:

- a code is accepted once: its time step must be later than the last one accepted, which survives restarts;
- at most ``MAX_TRIES`` wrong codes in ``TRIES_WINDOW_S``: past that every try is refused, right or wrong, until
  the oldest ages out;
- a recovery code (shown once at setup, kept as a SHA-256 hash) stands in for a code, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from noizylab_desktop.core.errors import KeychainError, NoizyLabError, StepUpError, StepUpNeeded
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.secrets import SecretStore

STEP_S = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now
MAX_TRIES = 5
TRIES_WINDOW_S = 300.0
STEP_UP_S = 300.0
RECOVERY_CODES = 10
SECRET_NAME = "totp-secret"
FILE = "totp.sqlite"
ISSUER = "NOIZYLAB"
# The gRPC metadata key a command line call carries its code in.
METADATA_KEY = "noizylab-totp"
NEEDED = "{what} needs a TOTP code from your authenticator app: run it again with --totp CODE"
SCHEMA = """
CREATE TABLE IF NOT EXISTS totp (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    enabled_at REAL NOT NULL,
    last_step INTEGER NOT NULL,
    stepped_up_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS wrong_tries (at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS recovery (hash BLOB PRIMARY KEY, used_at REAL);
"""


@dataclass(frozen=True)
class Enrolment:
    """A new secret, its ``otpauth://`` address (what the QR code holds) and its recovery codes, shown once."""

    secret: str
    uri: str
    recovery_codes: tuple[str, ...]


@dataclass(frozen=True)
class TotpStatus:
    """Whether TOTP is on, and what a person may want to know about it."""

    enabled: bool
    enabled_at: float | None
    stepped_up_until: float | None
    wrong_tries: int
    recovery_codes_left: int


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def _normal(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


class Totp:
    """The step-up of one node home: its secret in ``store``, its state in ``state_dir``."""

    def __init__(self, store: SecretStore, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.path = state_dir / FILE
        self.clock = clock

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock from its start: two checks never accept the same step."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # ------------------------------------------------------------------ enrolment

    def enrol(self, account: str) -> Enrolment:
        """A fresh secret and recovery codes; nothing is stored until ``confirm``."""
        if self.enabled():
            raise StepUpError("TOTP is on already: turn it off first with `noizylab totp disable`")
        import pyotp  # here, not at the top: a node imports this module at start, and pyotp cost 0.5 s under Wine

        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(name=account, issuer_name=ISSUER)
        codes = tuple(f"{secrets.token_hex(2)}-{secrets.token_hex(2)}" for _ in range(RECOVERY_CODES))
        return Enrolment(secret, uri, codes)

    def confirm(self, enrolment: Enrolment, code: str) -> None:
        """Turn TOTP on with ``enrolment`` once ``code`` shows the app holds its secret."""
        step = self._matching_step(enrolment.secret, code)
        if step is None:
            raise StepUpError("that code does not match the new secret: check the app's clock and try again")
        now = self.clock()
        self.store.set(SECRET_NAME, enrolment.secret.encode())
        with self._db() as db:
            db.execute("DELETE FROM totp")
            db.execute("DELETE FROM wrong_tries")
            db.execute("DELETE FROM recovery")
            # Setting up proves the app holds the secret, not that an action was meant: no step-up starts.
            db.execute("INSERT INTO totp VALUES (1, ?, ?, 0)", (now, step))
            db.executemany(
                "INSERT INTO recovery VALUES (?, NULL)", [(_digest(_normal(c)),) for c in enrolment.recovery_codes]
            )

    def disable(self, code: str | None) -> None:
        """Turn TOTP off; it takes a fresh code (or a recovery code), never just a step-up still running."""
        if not self.enabled():
            raise StepUpError("TOTP is off already: turn it on with `noizylab totp setup`")
        if not code:
            raise StepUpNeeded(NEEDED.format(what="turning TOTP off"))
        self.verify(code)
        with self._db() as db:
            db.execute("DELETE FROM totp")
            db.execute("DELETE FROM wrong_tries")
            db.execute("DELETE FROM recovery")
        self.store.delete(SECRET_NAME)

    # ------------------------------------------------------------------ checks

    def enabled(self) -> bool:
        """Whether sensitive actions ask for a code."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM totp").fetchone() is not None

    def status(self) -> TotpStatus:
        """What ``noizylab totp status`` shows."""
        now = self.clock()
        with self._db() as db:
            row = db.execute("SELECT enabled_at, stepped_up_until FROM totp").fetchone()
            tries = db.execute("SELECT count(*) FROM wrong_tries WHERE at > ?", (now - TRIES_WINDOW_S,)).fetchone()[0]
            left = db.execute("SELECT count(*) FROM recovery WHERE used_at IS NULL").fetchone()[0]
        if row is None:
            return TotpStatus(False, None, None, 0, 0)
        until = float(row[1]) if row[1] > now else None
        return TotpStatus(True, float(row[0]), until, int(tries), int(left))

    def require(self, code: str | None, what: str = "this") -> None:
        """Pass when TOTP is off, a step-up holds, or ``code`` is good (which starts a step-up); else refuse."""
        with self._db() as db:
            row = db.execute("SELECT stepped_up_until FROM totp").fetchone()
        if row is None or row[0] > self.clock():
            return
        if not code:
            raise StepUpNeeded(NEEDED.format(what=what))
        self.verify(code)

    def verify(self, code: str) -> None:
        """Accept ``code`` (a TOTP code or an unused recovery code) once and start a step-up, or refuse it."""
        secret = self.store.get(SECRET_NAME)
        with self._db() as db:
            row = db.execute("SELECT last_step FROM totp").fetchone()
            if row is None:
                return  # off: nothing to prove
            now = self.clock()
            db.execute("DELETE FROM wrong_tries WHERE at <= ?", (now - TRIES_WINDOW_S,))
            tries = [at for (at,) in db.execute("SELECT at FROM wrong_tries ORDER BY at")]
            if len(tries) >= MAX_TRIES:
                wait = math.ceil(tries[0] + TRIES_WINDOW_S - now)
                raise StepUpError(f"{MAX_TRIES} wrong TOTP codes in 5 minutes: try again in {wait} s")
            why = self._accept(db, secret, int(row[0]), code, now)
            if why is None:
                db.execute("UPDATE totp SET stepped_up_until = ?", (now + STEP_UP_S,))
                db.execute("DELETE FROM wrong_tries")
                return
            db.execute("INSERT INTO wrong_tries VALUES (?)", (now,))
            left = MAX_TRIES - len(tries) - 1
        raise StepUpError(f"{why} ({left} {'try' if left == 1 else 'tries'} left in 5 minutes)")

    def _accept(
        self, db: sqlite3.Connection, secret: bytes | None, last_step: int, code: str, now: float
    ) -> str | None:
        """None when ``code`` is accepted (and recorded as used), else why not."""
        given = _normal(code)
        if len(given) == DIGITS and given.isdigit():
            if secret is None:
                raise KeychainError(
                    "TOTP is on but the keychain holds no secret for it: turn it off with "
                    "`noizylab totp disable --totp RECOVERY-CODE`"
                )
            step = self._matching_step(secret.decode(), given, now)
            if step is None:
                return "wrong TOTP code"
            if step <= last_step:
                return "this TOTP code was used already: wait for the next one"
            db.execute("UPDATE totp SET last_step = ?", (step,))
            return None
        used = db.execute("SELECT used_at FROM recovery WHERE hash = ?", (_digest(given),)).fetchone()
        if used is None:
            return "wrong TOTP code"
        if used[0] is not None:
            return "this recovery code was used already"
        db.execute("UPDATE recovery SET used_at = ? WHERE hash = ?", (now, _digest(given)))
        return None

    def _matching_step(self, secret: str, code: str, now: float | None = None) -> int | None:
        """The time step within one step of now whose code is ``code``."""
        import pyotp

        at = self.clock() if now is None else now
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
        here = int(at // STEP_S)
        given = _normal(code)
        for step in range(here - WINDOW, here + WINDOW + 1):
            if hmac.compare_digest(totp.at(step * STEP_S), given):
                return step
        return None


async def require_step_up(totp: Totp, context: grpc.aio.ServicerContext, what: str) -> None:
    """End the call unless its caller proved presence (the code in its metadata) or a step-up holds; ``what`` names
    the action in the refusal ("granting control")."""
    code = dict(context.invocation_metadata() or ()).get(METADATA_KEY)
    try:
        await asyncio.to_thread(totp.require, code if isinstance(code, str) else None, what)
    except NoizyLabError as exc:
        await abort_with(context, exc)

"""Every peer's open sessions on every server this node runs, so that unpair and deny can end them at once.

- A server opens a ``Session`` for each long-lived thing a peer holds: the Guard one per gRPC stream, the SFTP server
  one per SSH connection. Each names the permission scopes it relies on and how to end it.
- ``Sessions.end(fp)`` ends all of a peer's sessions (it was unpaired); ``Sessions.end(fp, scope)`` those that rely
  on ``scope`` (it was denied). The node calls it; no server needs to know why.
- A gRPC stream learns its scopes as it runs: ``require_permission`` calls ``uses_scope`` on the stream it checks
  (the Guard makes it the current session of the handler's task).
"""

from __future__ import annotations

import contextvars
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """Why a session ends: its peer was unpaired (``scope`` empty) or lost ``scope``."""

    scope: str = ""

    @property
    def unpaired(self) -> bool:
        return not self.scope

    @property
    def message(self) -> str:
        """One line for the peer."""
        if self.unpaired:
            return "this node is no longer paired with you"
        return f"this node no longer allows {self.scope} for you"


class Session:
    """One open thing a peer holds (a stream, a connection), the scopes it relies on, and how to end it."""

    def __init__(self, fp: bytes, what: str, end: Callable[[Ending], None], scopes: Iterable[str] = ()) -> None:
        self.fp = fp
        self.what = what
        self.scopes = set(scopes)
        self._end = end

    def end(self, ending: Ending) -> None:
        self._end(ending)


class Sessions:
    """The open sessions by peer; used on the node's loop only."""

    def __init__(self) -> None:
        self._open: defaultdict[bytes, set[Session]] = defaultdict(set)

    def open(self, fp: bytes, what: str, end: Callable[[Ending], None], scopes: Iterable[str] = ()) -> Session:
        """Register a session of the peer ``fp``; ``end`` is called (once) if the peer loses it."""
        session = Session(fp, what, end, scopes)
        self._open[fp].add(session)
        return session

    def close(self, session: Session) -> None:
        """The session ended by itself; idempotent."""
        held = self._open.get(session.fp)
        if held is not None:
            held.discard(session)
            if not held:
                del self._open[session.fp]

    def count(self, fp: bytes) -> int:
        """How many sessions the peer holds now."""
        return len(self._open.get(fp, ()))

    def end(self, fp: bytes, scope: str = "") -> int:
        """End the peer's sessions: all of them, or those relying on ``scope``; returns how many."""
        ending = Ending(scope)
        ended = [s for s in self._open.get(fp, ()) if ending.unpaired or scope in s.scopes]
        for session in ended:
            self.close(session)
            try:
                session.end(ending)
            except Exception:
                # One server failing to end its session must not leave the others open.
                logger.exception("could not end %s", session.what)
        return len(ended)


_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar("noizylab_session", default=None)


def set_current(session: Session | None) -> contextvars.Token[Session | None]:
    """Make ``session`` the one that ``uses_scope`` marks in this context (tasks made now inherit it)."""
    return _current.set(session)


def reset_current(token: contextvars.Token[Session | None]) -> None:
    _current.reset(token)


def uses_scope(scope: str) -> None:
    """Mark the session this code runs in (a guarded gRPC stream) as relying on ``scope``; none: nothing to do."""
    session = _current.get()
    if session is not None:
        session.scopes.add(scope)

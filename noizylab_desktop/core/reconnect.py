"""A member that was away learns the grid's member list before any other call on its return, even with its node
running all along (issue #19: "an offline member learns [a removal] before any other call on reconnect").

A node is **away** when its event loop stood still for longer than its peers take to call it down (its process was
stopped, its machine slept: ``note`` sees the gap, whoever runs first on its return, the ticker or a call), or when
every member it beats went down (its link broke: ``cut_off``, from the registry). A node that starts reads its
members' lists before it serves anyone (``Membership.catch_up``, ``node.py``); a node that comes back does the same
before it does anything else:

- **calls to it** from a peer (``Guard.hold``) wait, all but ``Node.Members`` (how members read each other's lists,
  read-only and signed), and then the trust store decides: a device removed meanwhile is refused ``UNAUTHENTICATED``;
- **calls from it** with one request over the registry's channels (heartbeats, rotations, pushes, syncs, clipboard:
  ``Outgoing``) wait, all but the member list's own ``Members`` and ``PushMembers``, and a call to a device removed
  meanwhile is refused here, before it leaves.

A catch-up reads every reachable member's list at once (``CATCH_UP_S`` at most). When no member answered there was
nothing to learn from: the waiting calls go on, and the node stays away, so the next call tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

TICK_S = 0.25
PASS_IN = frozenset({"/noizylab.grid.v1.Node/Members"})
PASS_OUT = frozenset({"/noizylab.grid.v1.Node/Members", "/noizylab.grid.v1.Node/PushMembers"})

# A catch-up: how many members it asked, and how many answered.
CatchUp = Callable[[], Awaitable[tuple[int, int]]]


class Reconnect:
    """Whether this node is away, and the one catch-up that ends it."""

    name = "reconnect"

    def __init__(
        self,
        catch_up: CatchUp,
        away_after_s: float,
        me: bytes,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._catch_up = catch_up
        self.away_after_s = away_after_s
        self.me = me
        self._clock = clock
        self._wall = wall
        self._ticked: tuple[float, float] | None = None  # the last note (none yet: a node's start is no absence)
        self.why = ""  # why this node is away ("" while it is not)
        self._task: asyncio.Future[None] | None = None
        self._said = ""  # the absence already logged (a node cut off tries again at each call, quietly)
        self.caught_up = 0  # catch-ups that heard from a member, for tests and status

    def note(self) -> None:
        """The loop runs now: if it stood still past ``away_after_s`` since the last note, this node was away."""
        now, wall = self._clock(), self._wall()
        # Monotonic time stops while a machine sleeps on some systems; wall time does not (a jump of the clock
        # forward only costs one catch-up).
        last = self._ticked or (now, wall)
        gap = max(now - last[0], wall - last[1])
        self._ticked = (now, wall)
        if gap > self.away_after_s and not self.why:
            self.why = f"this node stood still for {gap:.1f} s"

    def cut_off(self) -> None:
        """Every member this node beats went down: it is away until it catches up with one."""
        if not self.why:
            self.why = "every member went down"

    @property
    def away(self) -> bool:
        self.note()
        return bool(self.why)

    async def run(self) -> None:
        """Note the loop running every ``TICK_S``, so a stall shows as a gap between two notes."""
        while True:
            self.note()
            await asyncio.sleep(TICK_S)

    async def ready(self) -> None:
        """Return once this node caught up with the member list (at once while it is not away)."""
        if not self.away:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._catch_up_now())
        await asyncio.shield(self._task)

    async def _catch_up_now(self) -> None:
        why, began = self.why, self._clock()
        if why != self._said:
            self._said = why
            logger.warning("back after %s: reading the members' lists before any other call", why)
        asked, answered = await self._catch_up()
        took = self._clock() - began
        if answered or not asked:
            self.why = self._said = ""
            self.caught_up += 1
            logger.info("caught up on the member list from %d of %d members in %.1f s", answered, asked, took)
        else:
            logger.debug("no member answered in %.1f s: calls go on, and the next one asks again", took)

    async def hold(self, fp: bytes, method: str) -> None:
        """For the Guard: a peer's call waits for a catch-up under way (this node's own calls never wait)."""
        if fp != self.me and method not in PASS_IN:
            await self.ready()


class Outgoing(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """On a channel to one peer: a call waits while this node catches up, and a call to a peer that is no longer
    trusted (removed meanwhile) is refused before it leaves.

    Calls with one request only (what the node sends by itself: heartbeats, pushes, sync, clipboard, metrics). Calls
    that stream requests (a tunnel, a viewer's session, a file sent) are opened by a person and are not held: gRPC
    would pass each of their writes through a queue of its own, on the hot path of tunnels and input."""

    def __init__(self, reconnect: Reconnect, trusted: Callable[[], bool], name: str) -> None:
        self.reconnect = reconnect
        self.trusted = trusted
        self.name = name

    async def _gate(self, details: grpc.aio.ClientCallDetails) -> None:
        method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
        if method in PASS_OUT:
            return
        await self.reconnect.ready()
        if not self.trusted():
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                f"{self.name} is no longer trusted here (removed from the grid or unpaired)",
            )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        await self._gate(details)
        return await continuation(details, request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        await self._gate(details)
        return await continuation(details, request)

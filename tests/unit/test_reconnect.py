"""A node back from away reads the member list before any other call (core/reconnect.py), on a real gRPC channel.

The integration test (test_grid_membership.py) proves the refusal of calls *to* the returning node with real nodes;
these prove what it does itself: a stall or a broken link makes it away, its own calls wait for the catch-up, and a
call to a peer removed meanwhile never leaves it.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from noizylab_desktop.core.reconnect import Outgoing, Reconnect

ME = b"m" * 32
METHOD = "/noizylab.grid.v1.Node/GetInfo"
MEMBERS = "/noizylab.grid.v1.Node/Members"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Grid:
    """What a catch-up learns: whether the peer is still trusted, and in which order things happened."""

    def __init__(self, answered: int = 1) -> None:
        self.trusted = True
        self.answered = answered
        self.order: list[str] = []

    async def catch_up(self) -> tuple[int, int]:
        self.order.append("catch-up")
        await asyncio.sleep(0.05)  # a member's answer takes a moment
        self.trusted = False  # the list read says the peer was removed meanwhile
        return 2, self.answered


def reconnect(grid: Grid, clock: Clock) -> Reconnect:
    return Reconnect(grid.catch_up, 3.0, ME, clock=clock, wall=clock)


def test_a_stall_longer_than_a_peer_takes_to_call_it_down_makes_the_node_away() -> None:
    clock = Clock()
    gate = reconnect(Grid(), clock)
    clock.now += 30  # a node's own start (reading its members' lists first) is no absence
    assert not gate.away
    clock.now += 2.9
    assert not gate.away
    clock.now += 3.1
    assert gate.away and gate.why == "this node stood still for 3.1 s"


def test_losing_every_member_makes_the_node_away_until_a_catch_up_hears_from_one() -> None:
    grid = Grid(answered=0)
    gate = reconnect(grid, Clock())
    gate.cut_off()
    asyncio.run(gate.ready())
    assert gate.away, "nobody answered: still away, the next call asks again"
    grid.answered = 1
    asyncio.run(gate.ready())
    assert not gate.away and gate.caught_up == 1


def test_its_own_calls_are_held_only_while_away_and_never_the_member_lists_reads() -> None:
    grid, clock = Grid(), Clock()
    gate = reconnect(grid, clock)

    async def scenario() -> None:
        gate.note()
        await gate.hold(b"p" * 32, METHOD)
        assert grid.order == []  # not away: nothing waits
        clock.now += 10
        await gate.hold(b"p" * 32, MEMBERS)
        assert grid.order == []  # how members catch up with each other passes
        await gate.hold(ME, METHOD)
        assert grid.order == []  # this node's own command line and tray never wait
        await asyncio.gather(gate.hold(b"p" * 32, METHOD), gate.hold(b"q" * 32, METHOD))
        assert grid.order == ["catch-up"]  # one catch-up for every call that waited

    asyncio.run(scenario())


def test_back_from_away_a_call_to_a_peer_removed_meanwhile_never_leaves_this_node() -> None:
    grid, clock = Grid(), Clock()
    gate = reconnect(grid, clock)

    async def scenario() -> None:
        reached: list[str] = []

        async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            reached.append(context.peer())
            return b"ok"

        handler = grpc.method_handlers_generic_handler(
            "noizylab.grid.v1.Node",
            {name: grpc.unary_unary_rpc_method_handler(answer) for name in ("GetInfo", "Members")},
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        interceptor = Outgoing(gate, lambda: grid.trusted, "beta")
        try:
            gate.note()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=[interceptor]) as chan:
                assert await chan.unary_unary(METHOD)(b"", timeout=5) == b"ok"  # trusted, not away: it goes
                clock.now += 10  # the loop stood still: this node was away
                assert await chan.unary_unary(MEMBERS)(b"", timeout=5) == b"ok"  # the catch-up's own read goes
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await chan.unary_unary(METHOD)(b"", timeout=5)
        finally:
            await server.stop(None)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == "beta is no longer trusted here (removed from the grid or unpaired)"
        assert grid.order == ["catch-up"] and len(reached) == 2  # the third call never reached the peer

    asyncio.run(scenario())

"""Which of a peer's open sessions unpair and deny end (``services/sessions.py``)."""

from __future__ import annotations

import asyncio

from noizylab_desktop.core.sessions import Ending, Sessions, reset_current, set_current, uses_scope

ALICE, BOB = b"\x01" * 32, b"\x02" * 32


def test_unpair_ends_all_of_the_peers_sessions_and_deny_those_that_rely_on_the_scope() -> None:
    sessions = Sessions()
    ended: dict[str, Ending] = {}
    for fp, what, scopes in (
        (ALICE, "alice ssh", ("sync",)),
        (ALICE, "alice watch", ("sync",)),
        (ALICE, "alice task", ("tasks",)),
        (ALICE, "alice events", ()),
        (BOB, "bob ssh", ("sync",)),
    ):
        sessions.open(fp, what, lambda ending, what=what: ended.__setitem__(what, ending), scopes)

    assert sessions.end(ALICE, "sync") == 2
    assert ended == {"alice ssh": Ending("sync"), "alice watch": Ending("sync")}
    assert ended["alice ssh"].message == "this node no longer allows sync for you"
    assert sessions.end(ALICE, "clipboard") == 0, "nothing relies on it"

    assert sessions.end(ALICE) == 2
    assert ended["alice task"] == ended["alice events"] == Ending()
    assert Ending().message == "this node is no longer paired with you"
    assert sessions.count(ALICE) == 0 and sessions.end(ALICE) == 0, "each is ended once"
    assert sessions.count(BOB) == 1, "another peer keeps its sessions"


def test_one_session_failing_to_end_does_not_keep_the_others_open() -> None:
    sessions = Sessions()
    ended: list[str] = []

    def broken(ending: Ending) -> None:
        raise RuntimeError("the transport is gone")

    sessions.open(ALICE, "broken", broken)
    sessions.open(ALICE, "fine", lambda ending: ended.append("fine"))
    assert sessions.end(ALICE) == 2
    assert ended == ["fine"]


def test_a_stream_learns_the_scopes_its_handler_checks() -> None:
    sessions = Sessions()
    session = sessions.open(ALICE, "stream", lambda ending: None)

    async def handler() -> None:
        uses_scope("sync")  # what require_permission does in the handler's task

    async def guarded() -> None:
        token = set_current(session)
        try:
            task = asyncio.ensure_future(handler())
        finally:
            reset_current(token)
        await task
        uses_scope("tasks")  # outside the handler's task: no session is current

    asyncio.run(guarded())
    assert session.scopes == {"sync"}

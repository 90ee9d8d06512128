"""The tray's loop (ui/qt_async.py): qasync's, with ready callbacks batched behind one Qt wake-up, and still fair."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from noizylab_desktop.ui.qt_async import QEventLoop
from tests.slowness import scaled
from tests.ui.waiting import Run, within


def test_callbacks_run_in_the_order_they_were_scheduled_and_a_cancelled_one_never_runs(run: Run) -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        done = loop.create_future()
        loop.call_soon(ran.append, "first")
        loop.call_soon(ran.append, "cancelled").cancel()
        loop.call_soon(ran.append, "second")
        loop.call_soon(done.set_result, None)
        await within(done, 5, "the callbacks to run")
        return ran

    assert run(scenario()) == ["first", "second"]


def test_a_callback_scheduled_by_a_running_one_waits_for_the_next_turn(run: Run) -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        done = loop.create_future()

        def first() -> None:
            ran.append("first")
            loop.call_soon(ran.append, "scheduled by first")

        loop.call_soon(first)
        loop.call_soon(ran.append, "queued before it ran")
        loop.call_soon(lambda: loop.call_soon(done.set_result, None))
        await within(done, 5, "the callbacks to run")
        return ran

    assert run(scenario()) == ["first", "queued before it ran", "scheduled by first"]


def test_a_task_that_only_yields_does_not_starve_qt_timers(run: Run) -> None:
    async def scenario() -> bool:
        fired = asyncio.Event()
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(fired.set)
        timer.start(10)
        # Always ready again, so the queue never empties by itself; bounded by the clock, not by the loop's timers
        # (which a starved loop would not fire either).
        give_up = time.monotonic() + scaled(5)
        while not fired.is_set() and time.monotonic() < give_up:
            await asyncio.sleep(0)
        return fired.is_set()

    assert run(scenario()), "Qt's timer never fired while a task kept the loop busy"


def test_threads_hand_work_to_the_loop_and_the_node_loop_still_runs_to_completion(run: Run) -> None:
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        got: list[int] = []
        done = loop.create_future()

        def worker() -> None:
            for i in range(200):
                loop.call_soon_threadsafe(got.append, i)
            loop.call_soon_threadsafe(done.set_result, None)

        threading.Thread(target=worker).start()
        await within(done, 10, "every callback from the thread")
        return got

    assert run(scenario()) == list(range(200))


def test_closing_the_loop_drops_callbacks_that_never_ran(tray_app: QApplication) -> None:
    loop = QEventLoop(tray_app)
    ran: list[str] = []
    loop.call_soon(ran.append, "never")

    loop.close()

    assert loop.is_closed() and ran == []


def test_sockets_carry_a_stream_both_ways_through_full_buffers(run: Run) -> None:
    payload = bytes(range(256)) * 32768  # 8 MiB: more than the socket buffers, so writers wait for writability

    async def scenario() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(len(payload)))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        back = await within(reader.readexactly(len(payload)), 30, "the echo of 8 MiB")
        writer.close()
        server.close()
        await server.wait_closed()
        return back

    assert run(scenario()) == payload


def test_a_removed_reader_is_not_called_again(run: Run) -> None:
    async def scenario() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        here, there = socket.socketpair()
        calls = 0
        first = loop.create_future()

        def readable() -> None:
            nonlocal calls
            calls += 1
            if not first.done():
                first.set_result(None)

        loop.add_reader(here, readable)
        there.send(b"x")
        await within(first, 5, "the reader to be called")
        removed = loop.remove_reader(here)
        there.send(b"y")  # still unread data: a reader left behind would be called at once, again and again
        # A second socket, readable after that: once its reader runs, Qt has polled the first one too.
        later_here, later_there = socket.socketpair()
        later = loop.create_future()
        loop.add_reader(later_here, lambda: later.done() or later.set_result(None))
        later_there.send(b"z")
        await within(later, 5, "the second reader to be called")
        loop.remove_reader(later_here)
        for s in (here, there, later_here, later_there):
            s.close()
        return calls, removed

    assert run(scenario()) == (1, True)

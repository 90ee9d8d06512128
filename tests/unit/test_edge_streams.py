"""The edge's checks on a request stream that the handler reads in a task of its own (as the display's input reader
does) while the call ends: the bad message read last is not answered once the call is over, and nothing is left for
asyncio to log ("exception was never retrieved").

A stand-in context replaces gRPC's here, because the race behind it (the caller's deadline passing just as a bad
input message is read) cannot be timed with a real server; the property test (tests/security/test_fuzz_rpcs.py)
met it in a long run."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import grpc

from noizylab_desktop._proto import noizylab_display_pb2 as dpb
from noizylab_desktop.core.edge import wrap_stream_in


class EndingContext:
    """The parts of a servicer context the edge uses. Once ``over``, a status is refused as gRPC refuses it then."""

    def __init__(self) -> None:
        self.over = False
        self.refused_statuses = 0

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def done(self) -> bool:
        return self.over

    def cancelled(self) -> bool:
        return self.over

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        if self.over:
            self.refused_statuses += 1
            raise RuntimeError("Failed grpc_call_start_batch: GRPC_CALL_ERROR_TOO_MANY_OPERATIONS")
        raise grpc.aio.AbortError(details)


def test_a_bad_message_read_by_the_handlers_own_task_as_the_call_ends_leaves_nothing_behind() -> None:
    problems: list[str] = []
    context = EndingContext()

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, info: problems.append(info["message"]))
        reading, bad_sent = asyncio.Event(), asyncio.Event()
        readers: list[asyncio.Task[None]] = []

        async def requests() -> AsyncIterator[dpb.ViewerMessage]:
            yield dpb.ViewerMessage(start=dpb.StartSession())
            await bad_sent.wait()
            yield dpb.ViewerMessage(input=dpb.InputEvent(move=dpb.PointerMove(x=float("nan"), y=1)))

        async def session(messages: AsyncIterator[dpb.ViewerMessage], _: Any) -> AsyncIterator[dpb.HostMessage]:
            async def read() -> None:
                async for _ in messages:
                    reading.set()

            readers.append(asyncio.ensure_future(read()))
            try:
                await asyncio.Event().wait()  # frames would go out here until the call ends
                yield dpb.HostMessage()
            finally:
                readers[0].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readers[0]

        call = asyncio.ensure_future(wrap_stream_in("Display.Session", session, True)(requests(), context))
        await reading.wait()
        context.over = True  # the caller's deadline passed: gRPC cancels the handler...
        call.cancel()
        bad_sent.set()  # ...just as a bad input message is read
        with contextlib.suppress(asyncio.CancelledError):
            await call
        with contextlib.suppress(BaseException):
            await readers[0]

    asyncio.run(main())
    gc.collect()
    assert (problems, context.refused_statuses) == ([], 0)

"""A tunnel's end of a local TCP connection (services/tunnel/local.py), on real loopback sockets: what it reads
becomes data frames that carry every byte in order; a full buffer stops reading the socket until a frame is taken;
end-of-file leaves the other direction open; writes wait while the socket does not take them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.services.tunnel import wire
from noizylab_desktop.services.tunnel.local import OVERFLOW, LocalSocket
from tests.conftest import within

T = TypeVar("T")
CHUNK = 64 * 1024


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def run(scenario: Callable[[LocalSocket, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[T]]) -> T:
    """``scenario(local, client_reader, client_writer)`` on a connection whose accepting end is a ``LocalSocket``."""

    async def main() -> T:
        accepted: asyncio.Future[LocalSocket] = asyncio.get_running_loop().create_future()
        server = await asyncio.get_running_loop().create_server(
            lambda: LocalSocket(CHUNK, accepted.set_result), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local = await within(accepted, 10, "the connection to be accepted")
        try:
            return await scenario(local, reader, writer)
        finally:
            writer.close()
            local.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_frames_carry_every_byte_in_order_as_protobuf_data_frames_then_end_at_eof() -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)

    async def scenario(local: LocalSocket, _: asyncio.StreamReader, client: asyncio.StreamWriter) -> list[int]:
        async def send() -> None:
            client.write(data)
            await client.drain()
            client.write_eof()

        sending = asyncio.ensure_future(send())
        got, sizes = bytearray(), []
        while (read := await within(local.read_frame(), 10, "a frame")) is not None:
            frame, size = read
            parsed = tpb.TunnelFrame.FromString(frame)
            assert len(parsed.data) == size and parsed == tpb.TunnelFrame(data=parsed.data)
            got += parsed.data
            sizes.append(size)
        await sending
        assert bytes(got) == data
        return sizes

    sizes = run(scenario)
    assert max(sizes) <= CHUNK + OVERFLOW  # a proactor transport (Windows) may hand over up to OVERFLOW more


def test_a_full_buffer_stops_reading_the_socket_until_a_frame_is_taken() -> None:
    async def scenario(local: LocalSocket, _: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        block = b"\x07" * (1 << 20)

        async def flood() -> None:
            while True:
                client.write(block)
                await client.drain()

        flooding = asyncio.ensure_future(flood())
        try:
            await within(until(lambda: local.buffered >= CHUNK), 10, "the buffer to fill")
            assert local.transport is not None and not local.transport.is_reading()
            # Nothing more is read while nobody takes a frame (a proactor transport hands over what it had read).
            held = local.buffered
            assert held <= CHUNK + OVERFLOW
            read = await local.read_frame()
            assert read is not None and read[1] == held
            assert local.transport.is_reading()
            await within(until(lambda: local.buffered > 0), 10, "reading to go on")
        finally:
            flooding.cancel()

    run(scenario)


def test_end_of_file_from_the_socket_leaves_the_other_direction_open() -> None:
    async def scenario(local: LocalSocket, reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> bytes:
        client.write(b"question")
        client.write_eof()
        read = await within(local.read_frame(), 10, "the question")
        assert read is not None and wire.decode(read[0]).data == b"question"
        assert await within(local.read_frame(), 10, "end-of-file") is None
        local.write(b"answer")
        await local.drain()
        local.write_eof()
        return await within(reader.read(), 10, "the answer and end-of-file")

    assert run(scenario) == b"answer"


def test_writes_wait_while_the_socket_does_not_take_them_and_then_arrive_whole() -> None:
    data = os.urandom(32 * 1024 * 1024)

    async def scenario(local: LocalSocket, reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        async def write_all() -> None:
            view = memoryview(data)
            for at in range(0, len(data), CHUNK):
                local.write(view[at : at + CHUNK])
                await local.drain()
            local.write_eof()

        writing = asyncio.ensure_future(write_all())
        await within(until(lambda: local.writing_paused), 10, "writes to wait for the socket")
        assert not writing.done()
        received = await within(reader.read(), 30, "everything written")
        await writing
        assert received == data

    run(scenario)

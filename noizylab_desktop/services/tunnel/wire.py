"""The ``Tunnel.Open`` stream's frames on the wire, without copying a connection's bytes more than needed.

A data frame is ``TunnelFrame{data}``: on the wire the tag 0x12 (field 2, length-delimited), a varint length and the
bytes. Built and parsed through protobuf, each chunk was copied four or five times in Python (constructing,
serialising, parsing, and once per read of ``frame.data``): the largest cost that was ours to avoid (docs/tunnels.md,
"Benchmark"). So data frames are built here: the local socket is read into a buffer with ``HEADER`` bytes of room in
front, ``put_header`` writes the tag and length just before the data, and the frame is one copy of that slice
(``local.py``); the stream's serialiser passes such ``bytes`` through as they are. Its deserialiser hands the bytes of
a data frame on as a view of the received message (no copy); every other frame goes through protobuf as before.
The encoding is protobuf's own, so either side may be a node that uses protobuf throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop._proto import noizylab_tunnel_pb2_grpc as tpb_grpc

DATA_TAG = 0x12
HEADER = 5  # the tag and a varint length of up to 4 bytes: data up to 256 MiB, far above gRPC's 4 MiB message limit
METHOD = "/noizylab.grid.v1.Tunnel/Open"


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A frame that carries only bytes, as ``TunnelFrame`` would show it."""

    data: memoryview
    eof: bool = False
    ping: bool = False
    pong: bool = False
    ready: bool = False


Frame: TypeAlias = "tpb.TunnelFrame | DataFrame"
Outgoing: TypeAlias = "tpb.TunnelFrame | bytes"  # bytes: a data frame already serialised (``data_frame``)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def put_header(buf: bytearray, size: int) -> int:
    """Write a data frame's header for ``size`` bytes at ``buf[HEADER:]`` just before them; where the frame starts."""
    head = bytes((DATA_TAG,)) + _varint(size)
    if len(head) > HEADER:
        raise ValueError(f"a data frame holds at most {2**28 - 1} bytes, not {size}")
    start = HEADER - len(head)
    buf[start:HEADER] = head
    return start


def data_frame(data: bytes) -> bytes:
    """A data frame carrying ``data``, serialised."""
    return b"".join((bytes((DATA_TAG,)), _varint(len(data)), data))


def encode(frame: Outgoing) -> bytes:
    """The serialised frame: ``bytes`` are one already (``data_frame``, ``put_header``), anything else is protobuf's."""
    if isinstance(frame, bytes):
        return frame
    return frame.SerializeToString()


def decode(raw: bytes) -> Frame:
    """A data frame's bytes as a view of ``raw``; any other frame parsed by protobuf."""
    if len(raw) > 1 and raw[0] == DATA_TAG:
        size = shift = 0
        at = 1
        while at < len(raw) and at < 11:
            byte = raw[at]
            size |= (byte & 0x7F) << shift
            at += 1
            if not byte & 0x80:
                if at + size == len(raw):  # the data field and nothing else
                    return DataFrame(memoryview(raw)[at:])
                break
            shift += 7
    return tpb.TunnelFrame.FromString(raw)


def open_stream(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    """``Tunnel.Open`` on ``channel``, with this module's frames."""
    return channel.stream_stream(METHOD, request_serializer=encode, response_deserializer=decode)


class _Handlers:
    """Receives what the generated ``add_TunnelServicer_to_server`` registers, with ``Open``'s frames swapped."""

    def __init__(self, server: grpc.aio.Server, servicer: Any) -> None:
        self.server = server
        self.servicer = servicer

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # registered below from the same table, with Open replaced

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        handlers = handlers | {
            "Open": grpc.stream_stream_rpc_method_handler(
                self.servicer.Open, request_deserializer=decode, response_serializer=encode
            )
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        self.server.add_registered_method_handlers(service, handlers)


def add_to_server(servicer: Any, server: grpc.aio.Server) -> None:
    """Register the Tunnel service, its ``Open`` with this module's frames."""
    tpb_grpc.add_TunnelServicer_to_server(servicer, _Handlers(server, servicer))

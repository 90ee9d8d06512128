"""The tunnel's frames on the wire: data frames written and read without protobuf, byte for byte as protobuf's."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from noizylab_desktop._proto import noizylab_tunnel_pb2 as tpb
from noizylab_desktop.services.tunnel import wire

SIZES = [1, 127, 128, 16_383, 16_384, 1 << 20, 3 * (1 << 20) + 7]


@pytest.mark.parametrize("size", SIZES)
def test_a_data_frame_is_encoded_exactly_as_protobuf_encodes_it(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert wire.encode(wire.data_frame(data)) == tpb.TunnelFrame(data=data).SerializeToString()


@pytest.mark.parametrize("size", SIZES)
def test_a_header_put_in_front_of_data_read_into_a_buffer_makes_protobuf_s_frame(size: int) -> None:
    data = b"\x5a" * size
    buf = bytearray(wire.HEADER) + data
    start = wire.put_header(buf, size)
    assert bytes(buf[start:]) == tpb.TunnelFrame(data=data).SerializeToString()


@pytest.mark.parametrize("size", SIZES)
def test_a_data_frame_from_a_protobuf_peer_is_read_as_its_bytes(size: int) -> None:
    data = b"\xff" * size
    frame = wire.decode(tpb.TunnelFrame(data=data).SerializeToString())
    assert isinstance(frame, wire.DataFrame) and bytes(frame.data) == data
    assert not (frame.eof or frame.ping or frame.pong or frame.ready)


@pytest.mark.parametrize(
    "frame",
    [
        tpb.TunnelFrame(open=tpb.TunnelOpen(port=8888)),
        tpb.TunnelFrame(ready=True),
        tpb.TunnelFrame(eof=True),
        tpb.TunnelFrame(ping=True),
        tpb.TunnelFrame(data=b"last bytes", eof=True),  # data and more: protobuf reads it whole
    ],
)
def test_every_other_frame_goes_through_protobuf_both_ways(frame: tpb.TunnelFrame) -> None:
    assert wire.encode(frame) == frame.SerializeToString()
    assert wire.decode(frame.SerializeToString()) == frame


def test_a_truncated_data_frame_is_left_to_protobuf_to_refuse() -> None:
    whole = wire.data_frame(b"x" * 300)
    with pytest.raises(DecodeError):
        wire.decode(whole[:-1])

"""Which failed heartbeats count as the peer refusing this node, as gRPC 1.85 words them."""

from __future__ import annotations

import grpc
import pytest

from noizylab_desktop.core.registry import refusal_of

Code = grpc.StatusCode
LAST = "failed to connect to all addresses; last error: "


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    ("code", "details", "refusal"),
    [
        # The peer's server ended the TLS handshake (it no longer trusts our certificate).
        (
            Code.UNAVAILABLE,
            LAST + "UNAVAILABLE: ipv4:1.2.3.4:5: Socket closed",
            "handshake",
        ),
        # Its Guard, over a connection opened before it unpaired us.
        (Code.UNAUTHENTICATED, "this node is not paired with you", "unpaired"),
        # Nobody listens: the peer is offline, not refusing.
        (
            Code.UNAVAILABLE,
            LAST + "UNKNOWN: ipv4:1.2.3.4:5: Failed to connect to remote host: Connection refused",
            "",
        ),
        # We refused its certificate (another node at its old address): not its refusal of us.
        (
            Code.UNAVAILABLE,
            LAST + "UNKNOWN: ipv4:1.2.3.4:5: Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: "
            "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate",
            "",
        ),
        (Code.DEADLINE_EXCEEDED, "Deadline Exceeded", ""),
    ],
)
def test_only_a_handshake_the_peer_ended_or_its_guards_answer_is_a_refusal(
    code: grpc.StatusCode, details: str, refusal: str
) -> None:
    assert refusal_of(_error(code, details)) == refusal

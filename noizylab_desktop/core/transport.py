"""gRPC over mutual TLS: server credentials that follow the trust store, pinned client channels, and the guard.

- The server asks every client for a certificate and accepts only chains to the trust store's anchors (own and
  paired: each the self-signed certificate of one pinned key, ``identity.py``), re-read on each handshake, so
  pairing and unpairing apply without a restart. An unpaired client fails the handshake and sees ``UNAVAILABLE``;
  no handler runs. TLS also checks each certificate's dates and signature: an expired leaf, or one of a pinned key
  that its anchor did not sign, fails the handshake.
- The server shows this node's current leaf: when it renews (``renewal.py``), the next handshake gets the new one
  and connections already open keep theirs until they end.
- ``Guard`` wraps every handler: it checks the caller's fingerprint again on each call (an HTTP/2 connection opened
  before an unpair stays up, its calls must not), counts calls, and opens a session (``sessions.py``) for each
  streaming call, so that unpairing the peer, or denying it a scope the stream relies on, ends the stream at once.
- This node's own clients (the command line) come in on a second, loopback-only port whose only trust root is
  this node's certificate: a peer whose certificate shares its subject (``trust.py``) cannot crowd them out.
- Clients pin the one anchor they expect; all peers' certificates name the same host (``noizylab``). The caller
  of a call is named by the key of its certificate (``caller_fingerprint``), whichever certificate of it it shows.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.identity import TLS_NAME, Identity
from noizylab_desktop.core.nodeid import fingerprint
from noizylab_desktop.core.sessions import Ending, Sessions, reset_current, set_current
from noizylab_desktop.core.trust import TrustStore

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_DEADLINE_S = 5.0
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.ssl_target_name_override", TLS_NAME),
    ("grpc.default_authority", TLS_NAME),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.enable_retries", 0),
]
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


def _dynamic(identity: Identity, roots: Callable[[], tuple[int, bytes]]) -> grpc.ServerCredentials:
    """mTLS credentials that show ``identity``'s current leaf and accept chains to ``roots()`` (a version and the
    PEM roots), both re-read before each handshake without a restart."""

    def state() -> tuple[int, int]:
        leaf = identity.leaf
        return roots()[0], leaf.serial if leaf else 0

    seen = state()

    def config() -> Any:
        pair = [(identity.key_pem, identity.tls_chain())]
        return grpc.ssl_server_certificate_configuration(pair, root_certificates=roots()[1])

    def fetch() -> Any:
        # Called by gRPC before each handshake, from its own thread; None keeps the current configuration.
        nonlocal seen
        now = state()
        if now == seen:
            return None
        seen = now
        return config()

    return grpc.dynamic_ssl_server_credentials(config(), fetch, require_client_authentication=True)


def server_credentials(identity: Identity, trust: TrustStore) -> grpc.ServerCredentials:
    """mTLS credentials whose accepted client certificates follow ``trust`` without a restart."""
    return _dynamic(identity, lambda: (trust.snapshot.version, trust.snapshot.roots_pem))


def local_credentials(identity: Identity) -> grpc.ServerCredentials:
    """mTLS credentials for the loopback-only port of this node's own clients: only its own key gets in."""
    return _dynamic(identity, lambda: (0, identity.cert_pem))


def pairing_credentials(identity: Identity) -> grpc.ServerCredentials:
    """Server-only TLS for the pairing port: it shows the anchor, which the joiner checks against the code and keeps
    as this node's trust root; the joiner proves itself in the message."""
    return grpc.ssl_server_credentials([(identity.key_pem, identity.cert_pem)], require_client_auth=False)


def secure_channel(
    identity: Identity | None,
    peer_cert_pem: bytes,
    address: str,
    *,
    pins_keys: bool = True,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A channel that trusts only chains to the anchor ``peer_cert_pem`` and shows our current certificate (none when
    ``identity`` is None; our old one to a peer that still pins certificates, ``pins_keys=False``).

    A channel keeps the certificate it was made with: after a renewal, make a new one for new calls and let the old
    one's calls finish (``Registry.channel``)."""
    if identity is None:
        creds = grpc.ssl_channel_credentials(root_certificates=peer_cert_pem)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=peer_cert_pem,
            private_key=identity.key_pem,
            certificate_chain=identity.client_chain(pins_keys),
        )
    return grpc.aio.secure_channel(address, creds, options=CHANNEL_OPTIONS, interceptors=list(interceptors) or None)


def caller_fingerprint(context: grpc.aio.ServicerContext) -> bytes | None:
    """The SHA-256 of the public key of the client's certificate on this call (its node ID), if it showed one."""
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    return _pem_fingerprint(pems[0])


@functools.lru_cache(maxsize=256)
def _pem_fingerprint(pem: bytes) -> bytes:
    # Parsing the PEM took ~25 us of every guarded call, and the same few peers' certificates come back on every call.
    # Only the parse is cached: whether that fingerprint is trusted is still asked on every call.
    return fingerprint(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))


def peer_host(peer: str) -> str | None:
    """The host in gRPC's peer string (``ipv4:1.2.3.4:5678`` or ``ipv6:[::1]:5678``), if it is an IP peer."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    return rest.rsplit(":", 1)[0].strip("[]")


def host_port(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) as its host and port; port 0 when it has none."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return address.strip("[]"), 0
    return host.strip("[]"), int(port)


Behavior = Callable[..., Any]

_HANDLER_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, True),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
)


def rewrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior]) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour replaced by ``wrap(behavior, streaming)``: the core of a server interceptor."""
    for kind, factory, streaming in _HANDLER_KINDS:
        behavior = getattr(handler, kind)
        if behavior is not None:
            return factory(
                wrap(behavior, streaming),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class Guard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks the caller on every call, counts calls, and ends a peer's open streams when ``sessions`` says so."""

    def __init__(self, trust: TrustStore, sessions: Sessions) -> None:
        self.trust = trust
        self.sessions = sessions
        self.handled: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        # Awaited before a trusted peer's call runs (``core/reconnect.py``: a node back from away reads the member
        # list first); the trust store is then asked again, so a device removed meanwhile is refused.
        self.hold: Callable[[bytes, str], Awaitable[None]] | None = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        return rewrap(handler, lambda behavior, streaming: self._wrap(details.method, behavior, streaming=streaming))

    async def _check(self, method: str, context: grpc.aio.ServicerContext) -> bytes:
        fp = caller_fingerprint(context)
        if fp is not None and self.hold is not None and self.trust.is_trusted(fp):
            await self.hold(fp, method)
        if fp is None or not self.trust.is_trusted(fp):
            self.refused[method] += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this node is not paired with you")
        assert fp is not None
        self.handled[method] += 1
        return fp

    def _wrap(self, method: str, behavior: Behavior, *, streaming: bool) -> Behavior:
        if not streaming:

            async def guarded_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                # Unary calls are short and bounded by their deadline; the check alone is enough.
                await self._check(method, context)
                return await behavior(request, context)

            return guarded_unary

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if inspect.isasyncgenfunction(behavior):
                async for item in behavior(request, context):
                    await context.write(item)
                return None
            return await behavior(request, context)

        async def guarded_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            fp = await self._check(method, context)
            ended: asyncio.Future[Ending] = asyncio.get_running_loop().create_future()

            def end(ending: Ending) -> None:
                if not ended.done():
                    ended.set_result(ending)

            session = self.sessions.open(fp, method, end)
            # The handler's task inherits the session as current, so require_permission can note its scope there.
            token = set_current(session)
            try:
                work = asyncio.ensure_future(run(request, context))
            finally:
                reset_current(token)
            try:
                await asyncio.wait({work, ended}, return_when=asyncio.FIRST_COMPLETED)
                if work.done():
                    return work.result()
                work.cancel()
                ending = ended.result()
                logger.info("closed %s: %s", method, ending.message)
                code = grpc.StatusCode.UNAUTHENTICATED if ending.unpaired else grpc.StatusCode.PERMISSION_DENIED
                await context.abort(code, ending.message)
            finally:
                work.cancel()
                self.sessions.close(session)

        return guarded_stream

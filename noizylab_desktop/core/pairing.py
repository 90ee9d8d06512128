"""Pairing: the inviter opens a short-lived pairing port; the joiner pins it by fingerprint and proves the secret.

Inviter: ``Pairing.create_invite`` makes a one-time code (10 minutes, single use) and opens the pairing port, a
server-authenticated TLS listener that serves only ``Pairing/Join`` and closes when no invite is open.
Joiner: ``join`` reads the inviter's certificate, checks it against the fingerprint in the code, then sends its own
certificate with an HMAC of the secret over both fingerprints and a signature made with its key. More than five
wrong codes a minute from one machine are refused, and an invite that took too many wrong guesses is closed
(``invite_book``). A joiner that finds the pairing port closed after the code's expiry (which the code carries)
says when the code expired, not that the machine is out of reach. Both sides derive the same six-digit
verification string. A peer's name is made unique on
each side (``pc`` → ``pc-2``), so naming a peer stays unambiguous.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.errors import PairingError, PairingRateLimited, TransportError
from noizylab_desktop.core.events import EventBus, InviteOpened, PeerPaired
from noizylab_desktop.core.identity import Identity, is_anchor, verify_signature
from noizylab_desktop.core.invite_book import (
    INVITE_TTL_S,
    InviteBook,
    accept_proof,
    join_proof,
    source_key,
    verification_string,
)
from noizylab_desktop.core.nodeid import fingerprint, format_id, legacy_fingerprint
from noizylab_desktop.core.transport import (
    SERVER_OPTIONS,
    host_port,
    pairing_credentials,
    peer_host,
    secure_channel,
)
from noizylab_desktop.core.trust import TrustStore

logger = logging.getLogger(__name__)

JOIN_DEADLINE_S = 10.0
REACH_TIMEOUT_S = 3.0
# The pairing port stays open while any code it gave out is within its lifetime, and this long after the last one
# expired, so a second join with a code always hears "already used" (or "expired"), never "cannot reach".
CLOSE_GRACE_S = 60.0
JANITOR_S = 5.0


@dataclass(frozen=True)
class Paired:
    """The outcome both sides print."""

    peer_id: str
    peer_name: str
    verification: str


class PairingServer(pb_grpc.PairingServicer):
    """The inviter's side: invites, the pairing port and the Join handler."""

    def __init__(
        self,
        identity: Identity,
        trust: TrustStore,
        bus: EventBus,
        name: str,
        grpc_port: Callable[[], int],
        host: str,
        port: int,
        ttl_s: float = INVITE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.trust = trust
        self.bus = bus
        self.name = name
        self.grpc_port = grpc_port
        self.host = host
        self.wanted_port = port
        self.clock = clock
        self.book = InviteBook(clock=clock, ttl_s=ttl_s)
        self.bound_port = 0
        self._server: grpc.aio.Server | None = None
        self._lock = asyncio.Lock()
        self._outcomes: dict[bytes, asyncio.Future[Paired]] = {}
        # Why a joiner is refused whatever code it holds ("" when it is not): the grid removed it (``members.py``).
        self.refuse: Callable[[bytes], str] = lambda fp: ""

    async def create_invite(self, hosts: list[str]) -> tuple[str, float]:
        """A fresh code for ``hosts``; opens the pairing port if it is closed."""
        async with self._lock:
            if self._server is None:
                server = grpc.aio.server(options=SERVER_OPTIONS)
                pb_grpc.add_PairingServicer_to_server(self, server)
                try:
                    self.bound_port = server.add_secure_port(
                        f"{self.host}:{self.wanted_port}", pairing_credentials(self.identity)
                    )
                except RuntimeError as exc:
                    raise PairingError(
                        f"cannot open the pairing port {self.wanted_port}: it is in use; "
                        "set ports.pairing in the config"
                    ) from exc
                await server.start()
                self._server = server
                logger.info("pairing port %d open", self.bound_port)
        code = codes.InviteCode.new(self.identity.fingerprint, self.bound_port, hosts)
        invite = self.book.create(code.secret)
        code = code.expiring(invite.expires_at)
        self._outcomes[code.secret] = asyncio.get_running_loop().create_future()
        text = codes.encode(code)
        self.bus.publish(InviteOpened(code=text, expires_at=invite.expires_at))
        return text, invite.expires_at

    async def wait(self, code_text: str, timeout_s: float) -> Paired:
        """The outcome of the invite ``code_text`` once someone joins with it."""
        secret = codes.decode(code_text).secret
        outcome = self._outcomes.get(secret)
        if outcome is None:
            raise PairingError("this node did not make that invite code")
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), timeout_s)
        except TimeoutError:
            raise PairingError("nobody joined with the invite code in time; it has expired") from None

    def close_invites(self) -> int:
        """Close every open invite code at once (a device that knew them was lost); how many were open."""
        now = self.clock()
        open_ones = [i for i in self.book.invites if i.open(now)]
        for invite in open_ones:
            invite.used = True
        return len(open_ones)

    async def close_if_idle(self) -> None:
        """Close the pairing port once every code it gave out has been expired for ``CLOSE_GRACE_S``."""
        async with self._lock:
            if self.book.open_count() == 0:
                known = {i.secret for i in self.book.invites}
                self._outcomes = {k: v for k, v in self._outcomes.items() if k in known}
            if self._server is not None and self.clock() > self.book.last_expiry() + CLOSE_GRACE_S:
                await self._server.stop(grace=1.0)
                self._server = None
                self.bound_port = 0
                logger.info("pairing port closed: every invite code has expired")

    async def run(self) -> None:
        """Janitor: close the pairing port once its codes are past their lifetime."""
        try:
            while True:
                await asyncio.sleep(JANITOR_S)
                await self.close_if_idle()
        finally:
            if self._server is not None:
                await self._server.stop(grace=None)
                self._server = None
                self.bound_port = 0

    async def Join(self, request: pb.JoinRequest, context: grpc.aio.ServicerContext) -> pb.JoinReply:  # noqa: N802
        """Check the joiner's proof and signature, then trust it."""
        if not is_anchor(request.joiner_cert_der):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the joining machine sent a damaged certificate")
        joiner_fp = fingerprint(request.joiner_cert_der)
        inviter_fp = self.identity.fingerprint
        host = peer_host(context.peer())
        try:
            invite = self.book.accept(request.proof, inviter_fp, joiner_fp, source_key(host))
        except PairingError as exc:
            logger.warning("refused a pairing attempt from %s: %s", host or context.peer(), exc.message)
            limited = isinstance(exc, PairingRateLimited)
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if limited else grpc.StatusCode.PERMISSION_DENIED
            await context.abort(code, exc.message)
        if not verify_signature(request.joiner_cert_der, b"noizylab-join-sig" + request.proof, request.signature):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the joining machine does not hold its key")
        refused = self.refuse(joiner_fp)
        if refused:
            logger.warning("refused a pairing from %s: %s", format_id(joiner_fp), refused)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
        addresses = _joiner_addresses(host, list(request.joiner_addresses))
        peer = self.trust.add(
            request.joiner_cert_der,
            request.joiner_name or "peer",
            request.joiner_ssh_key,
            addresses,
            reserved=self.name,
        )
        name = peer.name
        verification = verification_string(invite.secret, inviter_fp, joiner_fp)
        outcome = self._outcomes.get(invite.secret)
        if outcome is not None and not outcome.done():
            outcome.set_result(Paired(format_id(joiner_fp), name, verification))
        self.bus.publish(PeerPaired(peer_id=format_id(joiner_fp), name=name, verification=verification))
        logger.info("paired with %s (%s)", name, format_id(joiner_fp))
        return pb.JoinReply(
            proof=accept_proof(invite.secret, inviter_fp, joiner_fp),
            inviter_name=self.name,
            inviter_ssh_key=self.identity.ssh_public,
            inviter_grpc_port=self.grpc_port(),
        )


def _joiner_addresses(observed: str | None, listed: list[str]) -> list[str]:
    """Where to reach the joiner: the host it came from (on its gRPC port) first, then the ones it listed."""
    port = listed[0].rsplit(":", 1)[1] if listed else None
    seen = [host_port(observed, port)] if observed and port else []
    return list(dict.fromkeys(seen + listed))


async def fetch_certificate(address: str, timeout: float = REACH_TIMEOUT_S) -> bytes:
    """The DER certificate the server at ``address`` shows, unverified: the caller pins it by fingerprint."""
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host.strip("[]"), int(port), ssl=context, server_hostname="noizylab"), timeout
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        # Only the certificate was wanted: drop the connection now instead of waiting for a TLS close_notify the
        # pairing server may not send while its port stays open (the socket would outlive a short-lived loop).
        writer.transport.abort()
    if not der:
        raise TransportError(f"{address} showed no certificate")
    return bytes(der)


async def join(code_text: str, identity: Identity, trust: TrustStore, name: str, addresses: list[str]) -> Paired:
    """Pair with the machine that made ``code_text``; both sides trust each other afterwards."""
    code = codes.decode(code_text)
    tried: list[str] = []
    for address in code.addresses:
        try:
            der = await fetch_certificate(address)
        except (OSError, TimeoutError, ssl.SSLError, TransportError):
            tried.append(address)
            continue
        if is_anchor(der) and legacy_fingerprint(der)[: codes.FP_BYTES] == code.fp_prefix:
            raise PairingError(
                f"the machine at {address} runs an older NOIZYLAB that names machines by certificate: "
                "upgrade it, then make a new invite code there"
            )
        if not is_anchor(der) or fingerprint(der)[: codes.FP_BYTES] != code.fp_prefix:
            raise PairingError(f"the machine at {address} is not the one that made this code: pairing refused")
        return await _join_at(address, der, code, identity, trust, name, addresses)
    # The pairing port closes a minute after the inviter's last code expired: then the code's own expiry is the reason.
    if code.expires_at and time.time() > code.expires_at:
        raise PairingError(
            f"that invite code expired at {_clock(code.expires_at)}: make a new one with `noizylab pair invite`"
        )
    raise TransportError(
        f"cannot reach the inviting machine at {', '.join(tried)}: check that it is on and on the same network, "
        f"that its firewall allows TCP port {code.port}, and that the code has not expired"
    )


def _clock(at: float) -> str:
    """``14:05`` in local time, with the date when it is not today."""
    when = time.localtime(at)
    same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M" if same_day else "%H:%M on %Y-%m-%d", when)


async def _join_at(
    address: str, der: bytes, code: codes.InviteCode, identity: Identity, trust: TrustStore, name: str, own: list[str]
) -> Paired:
    inviter_fp, joiner_fp = fingerprint(der), identity.fingerprint
    proof = join_proof(code.secret, inviter_fp, joiner_fp)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    request = pb.JoinRequest(
        joiner_cert_der=identity.cert_der,
        proof=proof,
        signature=identity.sign(b"noizylab-join-sig" + proof),
        joiner_name=name,
        joiner_addresses=own,
        joiner_ssh_key=identity.ssh_public,
    )
    async with secure_channel(None, pem, address) as channel:
        try:
            reply = await pb_grpc.PairingStub(channel).Join(request, timeout=JOIN_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED):
                raise PairingError(exc.details() or "the inviting machine refused the code") from exc
            raise TransportError(f"pairing with {address} failed: {exc.details()}") from exc
    if not hmac.compare_digest(reply.proof, accept_proof(code.secret, inviter_fp, joiner_fp)):
        raise PairingError(f"the machine at {address} does not know this code's secret: pairing refused")
    host = address.rsplit(":", 1)[0]
    where = [f"{host}:{reply.inviter_grpc_port}"]
    peer = trust.add(der, reply.inviter_name or "peer", reply.inviter_ssh_key, where, reserved=name)
    return Paired(format_id(inviter_fp), peer.name, verification_string(code.secret, inviter_fp, joiner_fp))

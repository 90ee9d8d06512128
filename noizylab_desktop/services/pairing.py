"""Pairing: the inviter opens a short-lived pairing port; the joiner pins it by fingerprint and proves the secret.

Inviter: ``Pairing.create_invite`` makes a one-time code (10 minutes, single use) and opens the pairing port, a
server-authenticated TLS listener that serves only ``Pairing/Join`` and closes when no invite is open.
Joiner: ``join`` reads the inviter's certificate, checks it against the fingerprint in the code, then sends its own
certificate with an HMAC of the secret over both fingerprints and a signature made with its key. More than five
wrong codes a minute are refused. Both sides derive the same six-digit verification string.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.errors import PairingError, PairingRateLimited, TransportError
from noizylab_desktop.services import invite as codes
from noizylab_desktop.services.events import EventBus, InviteOpened, PeerPaired
from noizylab_desktop.services.identity import Identity, hmac_sha256, verify_signature
from noizylab_desktop.services.nodeid import fingerprint, format_id
from noizylab_desktop.services.transport import (
    SERVER_OPTIONS,
    host_port,
    pairing_credentials,
    peer_host,
    secure_channel,
)
from noizylab_desktop.services.trust import TrustStore

logger = logging.getLogger(__name__)

INVITE_TTL_S = 600.0
WRONG_LIMIT = 5
WRONG_WINDOW_S = 60.0
FORGET_AFTER_S = 3600.0
JOIN_DEADLINE_S = 10.0
REACH_TIMEOUT_S = 3.0


def join_proof(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> bytes:
    return hmac_sha256(secret, b"noizylab-join", inviter_fp, joiner_fp)


def accept_proof(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> bytes:
    return hmac_sha256(secret, b"noizylab-accept", inviter_fp, joiner_fp)


def verification_string(secret: bytes, inviter_fp: bytes, joiner_fp: bytes) -> str:
    """Six digits both people can compare, e.g. ``482 913``."""
    number = int.from_bytes(hmac_sha256(secret, b"noizylab-verify", inviter_fp, joiner_fp)[:8], "big") % 1_000_000
    return f"{number // 1000:03d} {number % 1000:03d}"


@dataclass
class Invite:
    """One code's secret and state."""

    secret: bytes
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class Paired:
    """The outcome both sides print."""

    peer_id: str
    peer_name: str
    verification: str


@dataclass
class InviteBook:
    """Open invites and recent wrong attempts; decides whether a join proof is accepted."""

    clock: Callable[[], float] = time.time
    ttl_s: float = INVITE_TTL_S
    invites: list[Invite] = field(default_factory=list)
    wrong: deque[float] = field(default_factory=deque)

    def create(self, secret: bytes) -> Invite:
        """Record a new invite for ``secret``."""
        invite = Invite(secret=secret, expires_at=self.clock() + self.ttl_s)
        self.invites.append(invite)
        return invite

    def open_count(self) -> int:
        now = self.clock()
        self.invites = [i for i in self.invites if i.expires_at + FORGET_AFTER_S > now]
        return sum(1 for i in self.invites if not i.used and i.expires_at > now)

    def accept(self, proof: bytes, inviter_fp: bytes, joiner_fp: bytes) -> Invite:
        """The invite ``proof`` answers, marked used; otherwise a one-line ``PairingError``."""
        now = self.clock()
        while self.wrong and self.wrong[0] < now - WRONG_WINDOW_S:
            self.wrong.popleft()
        if len(self.wrong) >= WRONG_LIMIT:
            raise PairingRateLimited("too many wrong invite codes in the last minute: wait a minute, then try again")
        for invite in self.invites:
            if hmac.compare_digest(join_proof(invite.secret, inviter_fp, joiner_fp), proof):
                if invite.used:
                    raise PairingError("that invite code was already used: make a new one with `noizylab pair invite`")
                if invite.expires_at <= now:
                    raise PairingError("that invite code has expired: make a new one with `noizylab pair invite`")
                invite.used = True
                return invite
        self.wrong.append(now)
        raise PairingError("wrong invite code: check it against the inviting machine, or make a new one")


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
    ) -> None:
        self.identity = identity
        self.trust = trust
        self.bus = bus
        self.name = name
        self.grpc_port = grpc_port
        self.host = host
        self.wanted_port = port
        self.book = InviteBook(ttl_s=ttl_s)
        self.bound_port = 0
        self._server: grpc.aio.Server | None = None
        self._lock = asyncio.Lock()
        self._outcomes: dict[bytes, asyncio.Future[Paired]] = {}

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

    async def close_if_idle(self) -> None:
        """Close the pairing port once no invite is open."""
        async with self._lock:
            if self.book.open_count() == 0:
                known = {i.secret for i in self.book.invites}
                self._outcomes = {k: v for k, v in self._outcomes.items() if k in known}
            if self._server is not None and self.book.open_count() == 0:
                await self._server.stop(grace=1.0)
                self._server = None
                self.bound_port = 0
                logger.info("pairing port closed: no invite is open")

    async def run(self) -> None:
        """Janitor: close the pairing port when its invites have expired or been used."""
        try:
            while True:
                await asyncio.sleep(5.0)
                await self.close_if_idle()
        finally:
            if self._server is not None:
                await self._server.stop(grace=None)
                self._server = None
                self.bound_port = 0

    async def Join(self, request: pb.JoinRequest, context: grpc.aio.ServicerContext) -> pb.JoinReply:  # noqa: N802
        """Check the joiner's proof and signature, then trust it."""
        joiner_fp = fingerprint(request.joiner_cert_der)
        inviter_fp = self.identity.fingerprint
        try:
            x509.load_der_x509_certificate(request.joiner_cert_der)
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the joining machine sent a damaged certificate")
        try:
            invite = self.book.accept(request.proof, inviter_fp, joiner_fp)
        except PairingError as exc:
            logger.warning("refused a pairing attempt: %s", exc.message)
            limited = isinstance(exc, PairingRateLimited)
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if limited else grpc.StatusCode.PERMISSION_DENIED
            await context.abort(code, exc.message)
        if not verify_signature(request.joiner_cert_der, b"noizylab-join-sig" + request.proof, request.signature):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the joining machine does not hold its key")
        name = request.joiner_name[:64] or "peer"
        addresses = _joiner_addresses(peer_host(context.peer()), list(request.joiner_addresses))
        self.trust.add(request.joiner_cert_der, name, request.joiner_ssh_key, addresses)
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
        if fingerprint(der)[: codes.FP_BYTES] != code.fp_prefix:
            raise PairingError(f"the machine at {address} is not the one that made this code: pairing refused")
        return await _join_at(address, der, code, identity, trust, name, addresses)
    raise TransportError(
        f"cannot reach the inviting machine at {', '.join(tried)}: check that it is on and on the same network, "
        f"and that its firewall allows TCP port {code.port}"
    )


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
    peer_name = reply.inviter_name[:64] or "peer"
    trust.add(der, peer_name, reply.inviter_ssh_key, [f"{host}:{reply.inviter_grpc_port}"])
    return Paired(format_id(inviter_fp), peer_name, verification_string(code.secret, inviter_fp, joiner_fp))

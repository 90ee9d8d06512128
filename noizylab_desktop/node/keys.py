"""``noizylab keys``: this node's keys, and rotating them so that peers follow without re-pairing.

Rotating (``Rotator.rotate``): the new key is made and kept aside (``rotation_log.py``); the current identity key
signs the statement (an identity rotation: "old ID -> this new anchor"; an SSH rotation: "my SSH key is now this");
every peer online is told at once over its mTLS channel and moves its pin, permissions and settings; then the
rotation is committed and the node restarts in place (same process, same ports) on the new key. A peer that was
offline is told on reconnect, before the first heartbeat (``present``, the registry's ``before_beat``), over a
channel that shows the key it still pins. It is done with a peer once it took every statement, or once its own
heartbeat reaches this node over the new key (which proves it pins it).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_keys_pb2 as kpb
from noizylab_desktop._proto import noizylab_keys_pb2_grpc as kpb_grpc
from noizylab_desktop.core import rotation
from noizylab_desktop.core.config import Paths
from noizylab_desktop.core.errors import ConfigError, NoizyLabError, PermissionRefusedError
from noizylab_desktop.core.feature import require_self
from noizylab_desktop.core.identity import Identity, make_certificate, make_ssh_key, verify_signature
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.registry import PeerState
from noizylab_desktop.core.rpc_errors import abort_with, error_from_rpc
from noizylab_desktop.core.transport import caller_fingerprint, secure_channel
from noizylab_desktop.node.rotation_log import NEXT, Link, RotationLog, commit, forget_retired, retired_key_name

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)

TELL_S = 5.0  # how long a rotation waits for each online peer to take it


def follow_moves(paths: Paths, moves: dict[bytes, bytes]) -> None:
    """Peers that rotated their identity keys: their sync shares and offers and their tunnels follow them to their
    new IDs (at start, before the features open those stores; each change can be repeated). Blocking (files)."""
    from noizylab_desktop.services.sync import store as sync_store
    from noizylab_desktop.services.tunnel import store as tunnel_store

    sync_store.migrate_ids(paths.state_dir / "sync" / "shares.sqlite", moves)
    tunnel_store.migrate_ids(paths.state_dir / "tunnels.json", moves)


def ssh_fingerprint(public: str) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` shows it."""
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class Rotator:
    """This node's side of key rotation: rotate, tell peers, list."""

    def __init__(self, node: Node, log: RotationLog) -> None:
        self.node = node
        self.log = log
        self._busy = asyncio.Lock()
        self._presenting: set[bytes] = set()  # peers being told now (a rotation and the registry may both try)

    # ------------------------------------------------------------------ telling peers

    async def _signer(self, link: Link) -> Identity:
        """The identity that signed ``link``: the current one, or a retired key kept for peers that still pin it."""
        current = self.node.identity
        if link.signer_fp == current.fingerprint:
            return current
        key = await asyncio.to_thread(self.node.vault.get, retired_key_name(link.signer_fp))
        if key is None:
            raise ConfigError(f"the keychain no longer holds the retired key {format_id(link.signer_fp)}")
        signer = Identity(link.signer_anchor, key, b"", "")
        signer.renew(self.node.settings.cert_lifetime_s)
        return signer

    async def present(self, state: PeerState) -> None:
        """Tell the peer of ``state`` the rotations it has not taken, before anything else is asked of it."""
        fp = state.peer.fingerprint
        if not self.log.owed(fp) or not state.address or fp in self._presenting:
            return
        self._presenting.add(fp)
        try:
            await self._present(state, fp)
        finally:
            self._presenting.discard(fp)

    async def _present(self, state: PeerState, fp: bytes) -> None:
        owed = self.log.owed(fp)
        try:
            signer = await self._signer(owed[0])
        except NoizyLabError as exc:
            logger.warning("cannot tell %s of this node's key rotation: %s", state.peer.name, exc.message)
            return
        own = signer is self.node.identity
        channel = (
            self.node.registry.channel(state) if own else secure_channel(signer, state.peer.cert_pem, state.address)
        )
        try:
            reply = await kpb_grpc.KeysStub(channel).Rotate(
                kpb.RotationChain(links=[link.signed for link in owed]), timeout=TELL_S
            )
        except grpc.aio.AioRpcError as exc:
            log = logger.warning if exc.code() == grpc.StatusCode.PERMISSION_DENIED else logger.debug
            log("could not tell %s of this node's key rotation: %s", state.peer.name, exc.details())
            return
        finally:
            if not own:
                await channel.close()
        self.log.caught_up(fp)
        if not own:
            # The peer answers now; the beats' channel may still be waiting out a reconnect backoff from while it
            # was away (gRPC answers with the last error meanwhile): the next call makes a fresh one.
            self.node.registry.drop_channel(state)
        logger.info("peer %s took this node's key rotations up to generation %d", state.peer.name, reply.generation)
        if not self.log.pending:
            await asyncio.to_thread(forget_retired, self.node.vault, self.log, self.node.identity.fingerprint)

    def heard(self, fp: bytes) -> None:
        """The peer ``fp`` reached this node over its current key: it took every identity rotation."""
        owed = self.log.owed(fp)
        if self.log.pending or not owed:
            return
        last = max((link.generation for link in owed if rotation.body_of(link.signed).kind == "identity"), default=0)
        if last == owed[-1].generation:
            self.log.caught_up(fp)
        elif last:
            self.log.behind[fp] = last
            self.log.save()

    # ------------------------------------------------------------------ rotating

    async def rotate(self, kind: str) -> kpb.RotateReply:
        """Rotate this node's ``kind`` key ("identity" or "ssh"), tell the peers online, then restart on it."""
        if kind not in rotation.KINDS:
            raise ConfigError(f"cannot rotate {kind!r}: rotate `identity` or `ssh`")
        if not self.node.can_restart:
            raise ConfigError(
                "what hosts this node cannot restart it on a new key: stop it, run `noizylab start`, then rotate"
            )
        if self._busy.locked():
            raise ConfigError("a key rotation is already under way on this node")
        async with self._busy:
            return await self._rotate(kind)

    async def _rotate(self, kind: str) -> kpb.RotateReply:
        node, log = self.node, self.log
        identity = node.identity
        generation = log.generation + 1
        anchor_pem = b""
        cosigned_by = ""
        if kind == "identity":
            anchor_pem, key_pem = await asyncio.to_thread(make_certificate, node.settings.name)
            anchor_der = x509.load_pem_x509_certificate(anchor_pem).public_bytes(serialization.Encoding.DER)
            signed = rotation.sign(identity, kind, generation, new_anchor_der=anchor_der)
            if node.membership.settings.rotation_cosign:
                cosigned_by = await self._cosign(signed)
            # The key being retired stays in the keychain while a peer still pins it.
            await asyncio.to_thread(node.vault.set, retired_key_name(identity.fingerprint), identity.key_pem)
            new_id, ssh_public = format_id(fingerprint(anchor_der)), identity.ssh_public
        else:
            key_pem, ssh_public = await asyncio.to_thread(make_ssh_key)
            signed = rotation.sign(identity, kind, generation, ssh_key=ssh_public)
            new_id = identity.node_id
        await asyncio.to_thread(node.vault.set, NEXT[kind], key_pem)
        peers = [s for s in node.registry.peers() if not s.removed]
        for state in peers:
            log.behind.setdefault(state.peer.fingerprint, generation - 1)
        log.links.append(Link(generation, signed, identity.fingerprint, identity.cert_pem))
        log.pending = {"kind": kind, "anchor": anchor_pem.decode()}
        await asyncio.to_thread(log.save)

        online = [s for s in peers if s.online]
        await asyncio.gather(*(self.present(s) for s in online))
        await asyncio.to_thread(commit, node.paths, node.vault, log)
        told = [s.peer.name for s in peers if s.peer.fingerprint not in log.behind]
        behind = [s.peer.name for s in peers if s.peer.fingerprint in log.behind]
        logger.info(
            "rotated this node's %s key (generation %d): %d peers moved at once, %d will be told when they are back",
            kind,
            generation,
            len(told),
            len(behind),
        )
        # After the reply has left: the node restarts on its new key.
        asyncio.get_running_loop().call_later(0.2, node.request_restart, f"its {kind} key was rotated")
        return kpb.RotateReply(
            old_id=identity.node_id,
            new_id=new_id,
            generation=generation,
            told=told,
            behind=behind,
            ssh_fingerprint=ssh_fingerprint(ssh_public),
            cosigned_by=cosigned_by,
        )

    async def _cosign(self, signed: kpb.SignedRotation) -> str:
        """Ask the members online, one after another, to co-sign ``signed``; add the first co-signature and name
        its member. Nothing has changed yet when none gives one: the rotation is refused with one line."""
        roster = self.node.membership.roster()
        online = [
            s for s in self.node.registry.peers() if s.online and not s.removed and s.peer.fingerprint in roster.members
        ]
        refusals = []
        for state in online:
            try:
                cosignature = await kpb_grpc.KeysStub(self.node.registry.channel(state)).Cosign(signed, timeout=TELL_S)
            except grpc.aio.AioRpcError as exc:
                why = error_from_rpc(exc, state.peer.name).message
                refusals.append(why if state.peer.name in why else f"{state.peer.name}: {why}")
                continue
            if bytes(cosignature.signer_id) == state.peer.fingerprint and verify_signature(
                state.peer.cert_der, rotation.cosigned_bytes(signed.body), cosignature.signature
            ):
                signed.cosignatures.append(cosignature)
                logger.info("%s co-signed this node's key rotation", state.peer.name)
                return state.peer.name
            refusals.append(f"{state.peer.name}: its co-signature does not verify")
        why = f" ({'; '.join(refusals)})" if refusals else ""
        raise ConfigError(
            "this grid asks for a second member's signature on a key rotation (grid.rotation_cosign), and no member "
            f"online gave one{why}: rotate again when another member is online"
        )

    # ------------------------------------------------------------------ listing

    def keys(self) -> kpb.KeysReply:
        """This node's identity key, its current certificate, its SSH key, and who still pins an older key."""
        identity = self.node.identity
        anchor = x509.load_pem_x509_certificate(identity.cert_pem)
        # Anchors are made valid from a day back (a peer's slow clock); older homes' certificates say when they were.
        created = anchor.not_valid_before_utc + (dt.timedelta(0) if identity.legacy else dt.timedelta(days=1))
        leaf = identity.leaf
        names = {s.peer.fingerprint: s.peer.name for s in self.node.registry.peers()}
        return kpb.KeysReply(
            id=identity.node_id,
            algorithm="ECDSA P-256",
            created_at=created.timestamp(),
            generation=self.log.generation,
            leaf_issued_at=leaf.issued_at if leaf else 0.0,
            leaf_expires_at=leaf.expires_at if leaf else anchor.not_valid_after_utc.timestamp(),
            ssh_key=identity.ssh_public,
            ssh_fingerprint=ssh_fingerprint(identity.ssh_public),
            peers_behind=[names[fp] for fp in self.log.behind if fp in names],
        )


class KeysApi(kpb_grpc.KeysServicer):
    """``Keys``: peers send their rotations; this node's own user lists and rotates its keys."""

    def __init__(self, node: Node, receiver: rotation.Receiver, rotator: Rotator) -> None:
        self.node = node
        self.receiver = receiver
        self.rotator = rotator

    async def Rotate(self, request: kpb.RotationChain, context: grpc.aio.ServicerContext) -> kpb.RotationReply:  # noqa: N802
        caller = caller_fingerprint(context)
        assert caller is not None  # the Guard let in only paired peers
        try:
            if caller == self.node.identity.fingerprint:
                raise PermissionRefusedError("a node does not rotate keys by calling itself")
            new, generation = self.receiver.accept(caller, list(request.links))
        except NoizyLabError as exc:
            logger.warning("refused a key rotation: %s", exc.message)
            await abort_with(context, exc)
        return kpb.RotationReply(id=format_id(new), generation=generation)

    async def Cosign(self, request: kpb.SignedRotation, context: grpc.aio.ServicerContext) -> kpb.Cosignature:  # noqa: N802
        caller = caller_fingerprint(context)
        assert caller is not None  # the Guard let in only paired peers
        node = self.node
        try:
            if caller == node.identity.fingerprint:
                raise PermissionRefusedError("a node does not co-sign its own key rotation")
            if node.member_anchor(caller) is None:
                raise PermissionRefusedError("this node co-signs key rotations only for members of its grid")
            body = self.receiver.cosign_check(caller, request)
        except NoizyLabError as exc:
            logger.warning("refused to co-sign a key rotation: %s", exc.message)
            await abort_with(context, exc)
        peer = node.trust.get(caller)
        name = peer.name if peer is not None else format_id(caller)
        logger.info("co-signed %s's key rotation (generation %d)", name, body.generation)
        return rotation.cosign(node.identity, request)

    async def List(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> kpb.KeysReply:  # noqa: N802
        await require_self(self.node.ctx, context)
        return self.rotator.keys()

    async def RotateKey(self, request: kpb.RotateRequest, context: grpc.aio.ServicerContext) -> kpb.RotateReply:  # noqa: N802
        await require_self(self.node.ctx, context)
        try:
            return await self.rotator.rotate(request.kind)
        except NoizyLabError as exc:
            await abort_with(context, exc)

"""The ``Control`` gRPC service: what this node's own command line and tray ask of it.

Only a caller holding this node's own certificate (whose key is in the keychain) gets in; peers get
``PERMISSION_DENIED``. Errors a person can act on travel as ``FAILED_PRECONDITION`` with a one-line message.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.feature import require_self
from noizylab_desktop.core.local_client import STOP_FOR_TRAY, STOP_REASON_KEY
from noizylab_desktop.core.permissions import SENSITIVE_SCOPES, check_scope
from noizylab_desktop.core.rpc_errors import abort_with
from noizylab_desktop.core.totp import require_step_up
from noizylab_desktop.core.trust import TrustedPeer

if TYPE_CHECKING:
    from noizylab_desktop.node.node import Node

logger = logging.getLogger(__name__)

# Scopes that hand a peer this machine's keyboard, screen or processes: granting one asks for a TOTP step-up.


class ControlApi(pb_grpc.ControlServicer):
    """Local administration of the node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def _only_self(self, context: grpc.aio.ServicerContext) -> None:
        await require_self(self.node.ctx, context)

    async def _fail(self, context: grpc.aio.ServicerContext, exc: NoizyLabError) -> None:
        await abort_with(context, exc)

    async def Status(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.StatusReply:  # noqa: N802
        await self._only_self(context)
        return self.node.status(pid=os.getpid())

    async def CreateInvite(  # noqa: N802
        self, request: pb.InviteRequest, context: grpc.aio.ServicerContext
    ) -> pb.InviteReply:
        await self._only_self(context)
        await require_step_up(self.node.totp, context, "pairing a device")
        try:
            code, expires_at = await self.node.create_invite(list(request.addresses))
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.InviteReply(code=code, expires_at=expires_at)

    async def WaitPairing(  # noqa: N802
        self, request: pb.WaitPairingRequest, context: grpc.aio.ServicerContext
    ) -> pb.PairingResult:
        await self._only_self(context)
        try:
            paired = await self.node.pairing.wait(request.code, request.timeout_s or 600.0)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.PairingResult(peer_id=paired.peer_id, peer_name=paired.peer_name, verification=paired.verification)

    async def JoinInvite(self, request: pb.JoinCode, context: grpc.aio.ServicerContext) -> pb.PairingResult:  # noqa: N802
        await self._only_self(context)
        await require_step_up(self.node.totp, context, "pairing a device")
        try:
            paired = await self.node.join(request.code)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.PairingResult(peer_id=paired.peer_id, peer_name=paired.peer_name, verification=paired.verification)

    async def Unpair(self, request: pb.PeerRef, context: grpc.aio.ServicerContext) -> pb.UnpairReply:  # noqa: N802
        await self._only_self(context)
        await require_step_up(self.node.totp, context, "removing a device")
        try:
            peer = await self.node.unpair(request.peer)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.UnpairReply(peer_id=peer.node_id, peer_name=peer.name)

    async def SetPermission(  # noqa: N802
        self, request: pb.PermissionRequest, context: grpc.aio.ServicerContext
    ) -> pb.PeerPermissions:
        await self._only_self(context)
        try:
            check_scope(request.scope)
            peer = self.node.trust.find(request.peer)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        if request.allowed and request.scope in SENSITIVE_SCOPES:
            await require_step_up(self.node.totp, context, f"granting {request.scope}")
        self.node.permissions.set(peer.fingerprint, request.scope, request.allowed, peer.node_id)
        return self._permissions(peer)

    async def ListPermissions(  # noqa: N802
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.PermissionList:
        await self._only_self(context)
        return pb.PermissionList(peers=[self._permissions(p) for p in self.node.trust.peers()])

    def _permissions(self, peer: TrustedPeer) -> pb.PeerPermissions:
        allowed = self.node.permissions.for_peer(peer.fingerprint)
        return pb.PeerPermissions(peer_id=peer.node_id, peer_name=peer.name, allowed=allowed)

    async def Rename(self, request: pb.RenameRequest, context: grpc.aio.ServicerContext) -> pb.RenameReply:  # noqa: N802
        await self._only_self(context)
        try:
            name = self.node.rename(request.name)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.RenameReply(name=name)

    async def ListDevices(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.DeviceList:  # noqa: N802
        await self._only_self(context)
        online = {s.peer.fingerprint for s in self.node.registry.peers() if s.online}
        devices = [
            pb.Device(
                id=d.node_id,
                name=d.name,
                state=d.state,
                introduced_by=d.introduced_by,
                since=d.since,
                online=d.fp in online,
            )
            for d in self.node.membership.devices()
        ]
        return pb.DeviceList(version=self.node.membership.version, devices=devices)

    async def RemoveDevice(  # noqa: N802
        self, request: pb.RemoveDeviceRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveDeviceReply:
        await self._only_self(context)
        await require_step_up(self.node.totp, context, "removing a device")
        try:
            removed, rotated = await self.node.remove_device(request.device, request.lost)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.RemoveDeviceReply(
            id=removed.node_id,
            name=removed.name,
            version=self.node.membership.version,
            tokens_revoked=rotated.tokens,
            invites_closed=rotated.invites,
        )

    async def ConfirmDevice(self, request: pb.PeerRef, context: grpc.aio.ServicerContext) -> pb.Device:  # noqa: N802
        await self._only_self(context)
        await require_step_up(self.node.totp, context, "adding a device")
        try:
            member = self.node.membership.confirm(request.peer)
        except NoizyLabError as exc:
            await self._fail(context, exc)
        return pb.Device(id=member.node_id, name=member.name, state="member")

    async def Shutdown(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.Empty:  # noqa: N802
        await self._only_self(context)
        asked = dict(context.invocation_metadata() or ()).get(STOP_REASON_KEY)
        why = (
            "a tray started for this home takes the node over" if asked == STOP_FOR_TRAY else "`noizylab stop` was run"
        )
        logger.info("stopping: %s", why)
        self.node.request_stop(why)
        return pb.Empty()

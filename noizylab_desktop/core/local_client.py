"""The command line's way into its own running node: gRPC over mTLS with the node's own certificate.

The key comes from the keychain, so only this user can control the node; no extra token or socket is needed, and
it works the same on every OS.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import identity as identity_mod
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import NoizyLabError, NotRunningError, PairingError, TransportError
from noizylab_desktop.core.rpc_errors import error_from_rpc
from noizylab_desktop.core.runtime import read_runtime_file
from noizylab_desktop.core.totp import METADATA_KEY
from noizylab_desktop.core.transport import DEFAULT_DEADLINE_S, secure_channel

INVITE_WAIT_S = 600.0
# Why a Shutdown was asked for, in its metadata, so that a tray can tell its person before it quits.
STOP_REASON_KEY = "noizylab-stop-reason"
STOP_BY_COMMAND = "command"  # `noizylab stop`
STOP_FOR_TRAY = "tray"  # a tray started for this home takes the node over


class LocalClient:
    """``async with LocalClient(paths, settings) as node: await node.status()``."""

    def __init__(self, paths: Paths, settings: Settings, totp: str | None = None) -> None:
        self.paths = paths
        self.settings = settings
        # A TOTP code for a sensitive action, sent with every call; the node checks it only where it asks for one.
        self._metadata = ((METADATA_KEY, totp),) if totp else ()
        self.where = str(paths.home or paths.config_dir)
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> LocalClient:
        runtime = read_runtime_file(self.paths.runtime_file)
        if runtime is None:
            raise NotRunningError(f"no node is running for {self.where}: start one with `noizylab start`")
        identity = await asyncio.to_thread(identity_mod.load_for_client, self.paths, self.settings)
        # The loopback port whose only root is this node's certificate (a node from before it had one: the gRPC port).
        port = runtime.get("local_port") or runtime["grpc_port"]
        self._channel = secure_channel(identity, identity.cert_pem, f"127.0.0.1:{port}")
        self.control = pb_grpc.ControlStub(self._channel)
        self.node = pb_grpc.NodeStub(self._channel)
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        if self._channel is not None:
            await self._channel.close()

    @property
    def channel(self) -> grpc.aio.Channel:
        """The mTLS channel to the node, for features' own stubs (use ``call`` to get one-line errors)."""
        assert self._channel is not None, "use LocalClient as `async with`"
        return self._channel

    def error(self, exc: grpc.aio.AioRpcError) -> NoizyLabError:
        """A failed call to this node as one line, with what to do about it (features' streams use it too)."""
        node = f"the node for {self.where}"
        return error_from_rpc(
            exc,
            node,
            unavailable=NotRunningError(f"{node} does not answer: start it with `noizylab start`"),
            deadline=TransportError(f"{node} did not answer in time: see `noizylab logs`"),
            refused=PairingError,
        )

    async def call(self, method: object, request: object, timeout: float = DEFAULT_DEADLINE_S) -> object:
        """``await method(request)`` with gRPC errors turned into our one-line errors."""
        return await self._call(method, request, timeout)

    async def _call(self, method: object, request: object, timeout: float = DEFAULT_DEADLINE_S) -> object:
        try:
            return await method(request, timeout=timeout, metadata=self._metadata)  # type: ignore[operator]
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc) from exc

    async def status(self) -> pb.StatusReply:
        reply = await self._call(self.control.Status, pb.Empty())
        assert isinstance(reply, pb.StatusReply)
        return reply

    async def create_invite(self, addresses: list[str]) -> pb.InviteReply:
        reply = await self._call(self.control.CreateInvite, pb.InviteRequest(addresses=addresses))
        assert isinstance(reply, pb.InviteReply)
        return reply

    async def wait_pairing(self, code: str, timeout_s: float = INVITE_WAIT_S) -> pb.PairingResult:
        request = pb.WaitPairingRequest(code=code, timeout_s=timeout_s)
        reply = await self._call(self.control.WaitPairing, request, timeout=timeout_s + 5)
        assert isinstance(reply, pb.PairingResult)
        return reply

    async def join(self, code: str) -> pb.PairingResult:
        reply = await self._call(self.control.JoinInvite, pb.JoinCode(code=code), timeout=30.0)
        assert isinstance(reply, pb.PairingResult)
        return reply

    async def unpair(self, peer: str) -> pb.UnpairReply:
        reply = await self._call(self.control.Unpair, pb.PeerRef(peer=peer))
        assert isinstance(reply, pb.UnpairReply)
        return reply

    async def set_permission(self, peer: str, scope: str, allowed: bool) -> pb.PeerPermissions:
        request = pb.PermissionRequest(peer=peer, scope=scope, allowed=allowed)
        reply = await self._call(self.control.SetPermission, request)
        assert isinstance(reply, pb.PeerPermissions)
        return reply

    async def permissions(self) -> pb.PermissionList:
        reply = await self._call(self.control.ListPermissions, pb.Empty())
        assert isinstance(reply, pb.PermissionList)
        return reply

    async def shutdown(self, reason: str = STOP_BY_COMMAND) -> None:
        """Ask the node to stop; ``reason`` (``STOP_BY_COMMAND`` or ``STOP_FOR_TRAY``) is what it tells its user."""
        try:
            await self.control.Shutdown(pb.Empty(), timeout=DEFAULT_DEADLINE_S, metadata=((STOP_REASON_KEY, reason),))
        except grpc.aio.AioRpcError as exc:
            raise self.error(exc) from exc

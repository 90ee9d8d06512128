"""The hostile peer: a real paired identity that calls a node's peer-facing wire directly, as an attacker would.

It holds a real node's certificate and keys (paired through the real invite code) but skips that node's own client
code: it builds raw stubs over the project's mTLS channel options and sends whatever it likes. ``stranger()`` is an
identity no node has paired.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncssh
import grpc

from noizylab_desktop.core.identity import Identity, make_certificate, make_ssh_key
from noizylab_desktop.core.transport import CHANNEL_OPTIONS
from tests.conftest import NodeProcess

Stub = TypeVar("Stub")


def stranger(name: str = "stranger") -> Identity:
    """An identity with a valid certificate and SSH key that no node trusts."""
    cert, key = make_certificate(name)
    ssh, public = make_ssh_key()
    return Identity(cert, key, ssh, public)


def channel(identity: Identity | None, target: NodeProcess) -> grpc.Channel:
    """A blocking mTLS channel to ``target`` that pins its certificate and shows ``identity``'s (or none)."""
    server_cert = target.identity().cert_pem
    if identity is None:
        creds = grpc.ssl_channel_credentials(root_certificates=server_cert)
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=server_cert, private_key=identity.key_pem, certificate_chain=identity.cert_pem
        )
    return grpc.secure_channel(target.grpc_address, creds, options=CHANNEL_OPTIONS)


@dataclass
class Hostile:
    """A paired peer of ``target`` (the node ``me``), calling ``target`` with raw stubs."""

    me: NodeProcess
    target: NodeProcess
    identity: Identity
    chan: grpc.Channel

    def stub(self, factory: Callable[[grpc.Channel], Stub]) -> Stub:
        return factory(self.chan)

    def code_of(self, call: Callable[[], Any]) -> grpc.StatusCode:
        """The status code a call ends with (``OK`` when it succeeds, streams read to the end)."""
        try:
            result = call()
            if hasattr(result, "__iter__") and not isinstance(result, (bytes, str)):
                for _ in result:
                    pass
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def sftp_port(self) -> int:
        """The port of ``target``'s embedded SFTP server."""
        return int(self.target.status()["ports"]["sftp"])

    async def ssh(self, port: int) -> asyncssh.SSHClientConnection:
        """An SSH connection to ``target``'s SFTP server on ``port``, logged in with this peer's own SSH key."""
        return await asyncssh.connect(
            "127.0.0.1",
            port,
            username=self.me.name,
            client_keys=[asyncssh.import_private_key(self.identity.ssh_private_pem)],
            known_hosts=None,
            agent_path=None,
        )

    def close(self) -> None:
        self.chan.close()


def hostile_peer(target: NodeProcess, me: NodeProcess, *scopes: str) -> Hostile:
    """Pair ``me`` with the running ``target`` and let ``me`` use ``scopes`` there; ``me`` keeps running."""
    me.join(target.invite())
    if scopes:
        target.cli("allow", me.name, *scopes)
    identity = me.identity()
    return Hostile(me, target, identity, channel(identity, target))


async def refusal(awaitable: Awaitable[object]) -> str:
    """The reason the server gives for refusing; fails the test when the operation succeeds."""
    try:
        await awaitable
    except asyncssh.SFTPPermissionDenied as exc:
        return exc.reason
    raise AssertionError("the operation was allowed")

"""Nothing unpaired gets in: unknown certificates, no certificate, bad codes, and peers after `unpair`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.identity import Identity, make_certificate, make_ssh_key
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NodeProcess, start_all, wait_for

INFO = "/noizylab.grid.v1.Node/GetInfo"


def _stranger() -> Identity:
    cert, key = make_certificate("stranger")
    ssh, public = make_ssh_key()
    return Identity(cert, key, ssh, public)


async def _get_info(identity: Identity | None, server_cert: bytes, address: str) -> pb.NodeInfo:
    async with secure_channel(identity, server_cert, address) as channel:
        return await pb_grpc.NodeStub(channel).GetInfo(pb.Empty(), timeout=5)


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One running node paired with nobody, shared by the tests that only knock on it and leave it as it was (a
    refused handshake, a mistyped code, unpairing nobody): a node start each fewer."""
    node = NodeProcess(tmp_path_factory.mktemp("lone") / "alpha", "alpha").start()
    yield node
    node.stop()


def _calls(node: NodeProcess) -> tuple[int, int]:
    calls = node.status()["calls"]
    return calls["handled"].get(INFO, 0), calls["refused"].get(INFO, 0)


@pytest.mark.parametrize("who", ["an unpaired node with its own certificate", "a client with no certificate"])
def test_strangers_fail_the_handshake_and_no_handler_runs(lone: NodeProcess, who: str) -> None:
    alpha = lone
    identity = _stranger() if "own certificate" in who else None
    before = _calls(alpha)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(_get_info(identity, alpha.identity().cert_pem, alpha.grpc_address))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _calls(alpha) == before


def test_a_node_that_is_not_the_pinned_one_is_not_trusted_by_the_client(lone: NodeProcess) -> None:
    alpha = lone
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(_get_info(alpha.identity(), _stranger().cert_pem, alpha.grpc_address))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def _refused(node: NodeProcess, code: str) -> str:
    result = node.cli("pair", "join", code, check=False)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_a_wrong_code_is_refused_and_nobody_is_paired(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta = start_all(make_node("alpha"), make_node("beta"))
    real = codes.decode(alpha.invite())
    wrong = codes.encode(codes.InviteCode(real.fp_prefix, b"\x00" * len(real.secret), real.port, real.hosts))
    assert "wrong invite code" in _refused(beta, wrong)
    assert alpha.json("peers") == [] and beta.json("peers") == []


def test_a_mistyped_code_is_caught_before_anything_is_sent(lone: NodeProcess) -> None:
    assert "mistyped" in _refused(lone, "AAAAA-BBBBB-CCCCC")
    assert lone.json("peers") == []


def test_a_reused_code_is_refused(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta, gamma = start_all(*(make_node(n) for n in ("alpha", "beta", "gamma")))
    code = alpha.invite()
    beta.join(code)
    assert "already used" in _refused(gamma, code)
    assert [p["name"] for p in alpha.json("peers")] == ["beta"]


def test_an_expired_code_is_refused(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    config = alpha.home / "config.toml"
    config.write_text("invite_ttl_s = 1\n" + config.read_text())
    alpha.start()
    beta = make_node("beta").start()
    invite = alpha.json("pair", "invite")
    wait_for(lambda: time.time() > invite["expires_at"] + 0.1, what="the invite to expire")
    assert "expired" in _refused(beta, invite["code"])


def test_a_used_code_past_its_expiry_says_when_it_expired_once_the_pairing_port_has_closed(
    make_node: Callable[[str], NodeProcess],
) -> None:
    alpha, beta, gamma = start_all(*(make_node(n) for n in ("alpha", "beta", "gamma")))
    code = alpha.invite()
    beta.join(code)
    alpha.stop()  # its pairing port closes as it does a minute after its last code expired
    # The code as it reads two minutes after its expiry: the same code, but no ten-minute wait in a test.
    expired = codes.decode(code).expiring(time.time() - 120)
    message = _refused(gamma, codes.encode(expired))
    clock = time.strftime("%H:%M", time.localtime(expired.expires_at))
    assert message.startswith(f"noizylab: error: that invite code expired at {clock}"), message
    assert message.endswith(": make a new one with `noizylab pair invite`"), message


def test_more_than_five_wrong_codes_a_minute_are_refused(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta = start_all(make_node("alpha"), make_node("beta"))
    code = alpha.invite()
    real = codes.decode(code)
    for n in range(5):
        guess = codes.encode(codes.InviteCode(real.fp_prefix, bytes([n]) * len(real.secret), real.port, real.hosts))
        assert "wrong invite code" in _refused(beta, guess)
    assert "too many wrong invite codes" in _refused(beta, code)


def test_an_unreachable_inviter_gets_a_one_line_error(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta = start_all(make_node("alpha"), make_node("beta"))
    code = alpha.invite()
    alpha.stop()
    message = _refused(beta, code)
    assert "cannot reach the inviting machine" in message and "firewall" in message


def test_after_unpair_the_peer_is_refused_and_its_open_stream_closes(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    beta_identity, alpha_cert = beta.identity(), alpha.identity().cert_pem

    async def scenario() -> tuple[grpc.StatusCode, float, grpc.StatusCode, grpc.StatusCode]:
        async with secure_channel(beta_identity, alpha_cert, alpha.grpc_address) as channel:
            stub = pb_grpc.NodeStub(channel)
            await stub.GetInfo(pb.Empty(), timeout=5)
            stream = stub.WatchEvents(pb.EventFilter(), timeout=60)
            await stream.wait_for_connection()
            await asyncio.to_thread(alpha.cli, "unpair", "beta")
            unpaired_at = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                async for _ in stream:
                    pass
            closed_after = time.monotonic() - unpaired_at
            with pytest.raises(grpc.aio.AioRpcError) as same_channel:
                await stub.GetInfo(pb.Empty(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as new_channel:
            await _get_info(beta_identity, alpha_cert, alpha.grpc_address)
        return ended.value.code(), closed_after, same_channel.value.code(), new_channel.value.code()

    stream_end, closed_after, same_channel, new_channel = asyncio.run(scenario())
    assert stream_end == grpc.StatusCode.UNAUTHENTICATED and closed_after < 5
    assert same_channel == grpc.StatusCode.UNAUTHENTICATED
    assert new_channel == grpc.StatusCode.UNAVAILABLE
    assert alpha.json("peers") == []
    wait_for(lambda: (beta.peer("alpha") or {}).get("online") is False, what="beta to see alpha refuse it")


def test_unpairing_an_unknown_peer_is_a_one_line_error(lone: NodeProcess) -> None:
    result = lone.cli("unpair", "nobody", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "noizylab: error: no paired peer matches 'nobody': see `noizylab peers`"


def test_peers_may_not_use_the_control_service(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired

    async def try_control() -> grpc.StatusCode:
        async with secure_channel(beta.identity(), alpha.identity().cert_pem, alpha.grpc_address) as channel:
            try:
                await pb_grpc.ControlStub(channel).Shutdown(pb.Empty(), timeout=5)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    assert asyncio.run(try_control()) == grpc.StatusCode.PERMISSION_DENIED
    assert alpha.status()["running"]

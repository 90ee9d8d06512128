"""Two real node processes pair with an invite code and then talk gRPC over mutual TLS."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable

from grpc_health.v1 import health_pb2, health_pb2_grpc

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NOIZYLAB, NodeProcess, start_all, wait_for


def test_paired_nodes_see_each_other_online_with_capabilities(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    # Online comes with the first heartbeat; what the peer is (its node info) is asked for right after.
    seen_by_alpha = wait_for(lambda: (alpha.peer("beta") or {}).get("os") and alpha.peer("beta"), what="beta's info")
    assert seen_by_alpha["id"] == beta.id
    assert seen_by_alpha["os"] == "linux" and seen_by_alpha["cpus"] >= 1 and seen_by_alpha["memory_bytes"] > 0
    status = beta.status()
    assert [p["name"] for p in status["peers"]] == ["alpha"]
    assert status["calls"]["handled"]["/noizylab.grid.v1.Node/Heartbeat"] > 0


def test_a_peer_can_call_node_info_health_and_the_standard_health_check(
    paired: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = paired
    beta_identity = beta.identity()
    alpha_cert = alpha.identity().cert_pem

    async def calls() -> tuple[pb.NodeInfo, pb.HealthReply, int]:
        async with secure_channel(beta_identity, alpha_cert, alpha.grpc_address) as channel:
            info = await pb_grpc.NodeStub(channel).GetInfo(pb.Empty(), timeout=5)
            health = await pb_grpc.NodeStub(channel).Health(pb.Empty(), timeout=5)
            check = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="noizylab.grid.v1.Node"), timeout=5
            )
            return info, health, check.status

    info, health, check = asyncio.run(calls())
    assert info.name == "alpha" and info.id == alpha.id and info.capabilities.cpu_count >= 1
    assert health.serving and "registry" in health.services
    assert check == health_pb2.HealthCheckResponse.SERVING


def test_both_machines_print_the_same_verification_string(make_node: Callable[[str], NodeProcess]) -> None:
    alpha, beta = start_all(make_node("alpha"), make_node("beta"))
    inviter = subprocess.Popen(
        [*NOIZYLAB, "--home", str(alpha.home), "pair", "invite"], stdout=subprocess.PIPE, text=True
    )
    assert inviter.stdout is not None
    code = ""
    for line in inviter.stdout:
        if re.fullmatch(r"\s*[A-Z2-7]{5}(-[A-Z2-7]{1,5})+\s*", line):
            code = line.strip()
            break
    joined = beta.cli("pair", "join", code).stdout
    rest, _ = inviter.communicate(timeout=30)
    assert inviter.returncode == 0
    shown_by_joiner = re.search(r"Verification: (\d{3} \d{3})", joined)
    shown_by_inviter = re.search(r"Verification: (\d{3} \d{3})", rest)
    assert shown_by_joiner and shown_by_inviter
    assert shown_by_joiner.group(1) == shown_by_inviter.group(1)
    assert "Paired with alpha" in joined and "Paired with beta" in rest


def test_events_stream_tells_a_peer_when_another_peer_comes_online(
    paired: tuple[NodeProcess, NodeProcess], make_node: Callable[[str], NodeProcess]
) -> None:
    alpha, beta = paired
    beta_identity, alpha_cert = beta.identity(), alpha.identity().cert_pem
    gamma = make_node("gamma").start()

    async def watch() -> pb.Event:
        async with secure_channel(beta_identity, alpha_cert, alpha.grpc_address) as channel:
            stream = pb_grpc.NodeStub(channel).WatchEvents(pb.EventFilter(kinds=["peer.online"]), timeout=30)
            await asyncio.to_thread(gamma.join, alpha.invite())
            async for event in stream:
                if event.fields["name"] == "gamma":
                    stream.cancel()
                    return event
        raise AssertionError("stream ended without gamma")

    event = asyncio.run(watch())
    assert event.kind == "peer.online" and event.fields["peer_id"] == gamma.id


def test_pairing_survives_restarts_with_the_same_ids(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    alpha_id = alpha.id
    alpha.stop()
    wait_for(lambda: (beta.peer("alpha") or {}).get("online") is False, what="beta to see alpha go down")
    alpha.start()
    assert alpha.id == alpha_id
    wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha back")
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta again")


def test_an_invite_code_carries_the_inviters_fingerprint(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    code = codes.decode(alpha.invite())
    assert alpha.identity().fingerprint.startswith(code.fp_prefix)
    assert code.hosts == ("127.0.0.1",)

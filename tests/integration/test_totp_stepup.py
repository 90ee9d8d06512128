"""TOTP step-up on real nodes: with TOTP on, grants of control, display and tasks, pairing, unpairing and tunnels
beyond loopback ask for a code; the code goes with the command, once, and holds for five minutes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from typing import Any

import grpc
import pyotp

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop._proto import noizylab_grid_pb2_grpc as pb_grpc
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.errors import StepUpNeeded
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.core.totp import METADATA_KEY
from noizylab_desktop.core.transport import secure_channel
from tests.conftest import NOIZYLAB, NodeProcess
from tests.slowness import scaled

NEEDS = "needs a TOTP code from your authenticator app: run it again with --totp CODE"


def set_up(node: NodeProcess) -> dict[str, Any]:
    """``totp setup`` as a person does it: read the secret it shows, answer with the app's code."""
    with subprocess.Popen(
        [*NOIZYLAB, "--home", str(node.home), "totp", "setup", "--json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as setup:
        assert setup.stdin is not None and setup.stdout is not None
        shown = json.loads(setup.stdout.readline())
        code = pyotp.TOTP(shown["secret"]).now()
        _, err = setup.communicate(f"{code}\n", timeout=scaled(60))
    assert setup.returncode == 0, err
    assert "TOTP is on" in err
    return {**shown, "code": code}


def refused(node: NodeProcess, *args: str) -> str:
    """The one-line error of a command that must fail."""
    result = node.cli(*args, check=False)
    assert result.returncode == 1, (args, result.stdout)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("noizylab: error: ")


def allowed(node: NodeProcess, peer: str) -> dict[str, bool]:
    return next(p["allowed"] for p in node.json("permissions") if p["name"] == peer)


def test_sensitive_commands_ask_for_a_code_accepted_once_that_holds_five_minutes(
    paired: tuple[NodeProcess, NodeProcess],
) -> None:
    alpha, beta = paired
    enrolment = set_up(alpha)
    assert enrolment["uri"].startswith("otpauth://totp/NOIZYLAB:alpha?secret=")
    status = alpha.json("totp", "status")
    assert status["enabled"] is True and status["stepped_up_until"] is None and status["recovery_codes_left"] == 10

    # The code that confirmed the setup is spent; so is a wrong one; both count as wrong tries.
    assert refused(alpha, "allow", "beta", "control", "--totp", enrolment["code"]).startswith(
        "this TOTP code was used already: wait for the next one (4 tries left in 5 minutes)"
    )
    wrong = "000000" if pyotp.TOTP(enrolment["secret"]).now() != "000000" else "111111"
    assert refused(alpha, "allow", "beta", "control", "--totp", wrong) == (
        "wrong TOTP code (3 tries left in 5 minutes)"
    )
    assert refused(alpha, "allow", "beta", "control") == f"granting control {NEEDS}"
    assert refused(alpha, "allow", "beta", "tasks", "display") == f"granting tasks {NEEDS}"
    assert refused(alpha, "pair", "invite", "--json") == f"pairing a device {NEEDS}"
    assert refused(alpha, "unpair", "beta") == f"removing a device {NEEDS}"
    assert refused(alpha, "forward", "beta", "8888", "--bind", "0.0.0.0") == (
        f"opening a tunnel on 0.0.0.0, beyond loopback, {NEEDS}"
    )
    assert "TOTP" not in refused(alpha, "forward", "beta", "8888"), "a loopback tunnel asks for no code"
    assert not any(allowed(alpha, "beta").values()), "nothing refused was granted"
    alpha.cli("allow", "beta", "clipboard")  # not sensitive: no code
    alpha.cli("deny", "beta", "clipboard")  # taking away never asks

    # A recovery code stands in for the app's code; the step-up it starts covers what follows.
    alpha.cli("allow", "beta", "control", "--totp", enrolment["recovery_codes"][0])
    alpha.cli("allow", "beta", "display", "tasks")
    assert {k for k, v in allowed(alpha, "beta").items() if v} == {"control", "display", "tasks"}
    assert alpha.json("totp", "status")["stepped_up_until"] is not None
    alpha.cli("unpair", "beta")
    assert alpha.peer("beta") is None

    assert refused(alpha, "totp", "disable") == f"turning TOTP off {NEEDS}"
    alpha.cli("totp", "disable", "--totp", enrolment["recovery_codes"][1])
    assert alpha.json("totp", "status")["enabled"] is False
    assert beta.json("totp", "status")["enabled"] is False, "each machine has its own TOTP"


def test_the_local_api_refuses_a_protected_action_without_a_step_up(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, beta = paired
    set_up(alpha)
    paths = Paths.resolve(alpha.home)
    settings = load_settings(paths)

    async def ask() -> tuple[grpc.StatusCode, str, str]:
        async with LocalClient(paths, settings) as node:
            request = pb.PermissionRequest(peer="beta", scope="tasks", allowed=True)
            try:
                await pb_grpc.ControlStub(node.channel).SetPermission(request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
            try:
                await node.set_permission("beta", "display", True)
            except StepUpNeeded as exc:
                decoded = exc.message
        return code, details, decoded

    code, details, decoded = asyncio.run(ask())
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == f"StepUpNeeded: granting tasks {NEEDS}"
    assert decoded == f"granting display {NEEDS}"
    assert not any(allowed(alpha, "beta").values())

    # A peer carrying a code is still not this node's own user: Control refuses it before any code is looked at.
    async def as_peer() -> grpc.StatusCode:
        async with secure_channel(beta.identity(), alpha.identity().cert_pem, alpha.grpc_address) as channel:
            request = pb.PermissionRequest(peer="beta", scope="control", allowed=True)
            try:
                await pb_grpc.ControlStub(channel).SetPermission(
                    request, timeout=10, metadata=((METADATA_KEY, "123456"),)
                )
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK

    assert asyncio.run(as_peer()) == grpc.StatusCode.PERMISSION_DENIED
    assert alpha.json("totp", "status")["wrong_tries"] == 0, "the peer's code was never tried"


def test_the_http_api_beyond_loopback_needs_a_code_at_start(make_node: Callable[..., NodeProcess]) -> None:
    node = make_node("alpha", http_host="0.0.0.0")
    enrolment = set_up(node)  # no node needs to run for TOTP's own commands
    assert refused(node, "start") == f"the node exited at start: the HTTP API on 0.0.0.0, beyond loopback, {NEEDS}"
    assert refused(node, "start", "--totp", "not-a-code") == "wrong TOTP code (4 tries left in 5 minutes)"
    node.cli("start", "--totp", enrolment["recovery_codes"][0])
    assert node.status()["ports"]["http"] > 0

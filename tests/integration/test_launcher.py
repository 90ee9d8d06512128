"""The launcher: foreground and background nodes, one per home, status, logs, and the demo."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable

from tests.conftest import NOIZYLAB, NodeProcess, wait_for


def test_start_runs_one_node_per_home_and_stop_ends_it(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    pid = alpha.pid
    again = alpha.cli("start", check=False)
    assert again.returncode == 1 and "already running" in again.stderr
    alpha.cli("stop")
    wait_for(lambda: not _alive(pid), what="the node process to exit")
    status = alpha.cli("status", "--json", check=False)
    assert status.returncode == 1 and json.loads(status.stdout)["running"] is False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_status_json_reports_id_name_bound_ports_and_peers(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    status = alpha.status()
    assert {"id", "name", "ports", "peers"} <= set(status)
    assert status["name"] == "alpha" and status["peers"] == []
    assert status["ports"]["grpc"] > 0 and set(status["ports"]) == {"grpc", "sftp", "http"}
    assert alpha.json("id")["id"] == status["id"]
    assert alpha.cli("id").stdout.strip() == status["id"]


def test_ports_given_on_the_command_line_are_remembered(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alpha.cli("start", "--port", str(port), "--sftp-port", "0", "--http-port", "0")
    assert alpha.status()["ports"]["grpc"] == port
    assert f"grpc = {port}" in (alpha.home / "config.toml").read_text()


def test_a_port_in_use_gets_a_one_line_error(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = alpha.cli("start", "--port", str(taken.getsockname()[1]), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("noizylab: error: the node exited at start: ")
    assert "--port" in result.stderr


def test_the_foreground_node_stops_cleanly_on_sigterm(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    process = subprocess.Popen(
        [*NOIZYLAB, "--home", str(alpha.home), "node"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "is running on gRPC port" in banner
        assert alpha.status()["pid"] == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.communicate()
    assert not (alpha.home / "state" / "runtime.json").exists()


def test_logs_show_what_the_node_did(paired: tuple[NodeProcess, NodeProcess]) -> None:
    alpha, _ = paired
    logs = alpha.cli("logs", "-n", "200").stdout
    assert "listening on gRPC port" in logs and "peer beta is up" in logs


def test_logs_follow_prints_new_lines_as_they_come(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha").start()
    follower = subprocess.Popen(
        [*NOIZYLAB, "--home", str(alpha.home), "logs", "-f", "-n", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        alpha.invite()
        assert follower.stdout is not None
        for line in follower.stdout:
            if "pairing port" in line:
                break
    finally:
        follower.kill()
        follower.communicate()


def test_commands_against_a_home_with_no_node_say_how_to_start_one(make_node: Callable[[str], NodeProcess]) -> None:
    alpha = make_node("alpha")
    for args in (("peers",), ("pair", "invite"), ("unpair", "x")):
        result = alpha.cli(*args, check=False)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and "noizylab start" in result.stderr


def test_usage_errors_exit_with_2(make_node: Callable[[str], NodeProcess]) -> None:
    assert make_node("alpha").cli("pair", check=False).returncode == 2


def test_demo_pairs_two_nodes_and_cleans_up() -> None:
    result = subprocess.run([*NOIZYLAB, "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo-alpha" in out and "demo-beta" in out
    assert out.count("● demo-") == 2
    assert "both nodes stopped" in out

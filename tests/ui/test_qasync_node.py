"""The node behaves the same on qasync (an offscreen QApplication) as on plain asyncio: pairing and gRPC both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import NodeProcess, write_config

SCRIPT = Path(__file__).with_name("qasync_node_script.py")


def test_a_node_on_qasync_pairs_with_a_node_process_and_both_call_each_other(
    tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    peer = make_node("laptop").start()
    home = tmp_path / "qasync-desk"
    write_config(home, "qasync-desk")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}

    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(home), str(peer.home)], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    seen = json.loads(result.stdout)
    assert seen["loop"] == "qasync" and seen["platform"] == "offscreen"
    assert seen["verification_here"] == seen["verification_there"]
    assert seen["peer_online_here"] and seen["peer_info"] == {"id": peer.id, "name": "laptop"}
    assert seen["seen_by_peer"] == {"id": seen["status_via_cli"]["id"], "name": "qasync-desk", "online": True}
    assert seen["get_info_served"] >= 1
    assert seen["status_via_cli"]["name"] == "qasync-desk"

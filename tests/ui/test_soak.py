"""qasync over PySide6 survives a long run of loop round trips and mTLS gRPC calls (6.12.0 did not: none_dealloc)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("soak_script.py")
ROUND_TRIPS = 50_000
GRPC_CALLS = 10_000


def test_the_qasync_loop_survives_50000_round_trips_and_10000_mtls_calls() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}

    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(ROUND_TRIPS), str(GRPC_CALLS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    crashed = f" (killed by {signal.Signals(-result.returncode).name})" if result.returncode < 0 else ""
    assert result.returncode == 0, f"the soak exited {result.returncode}{crashed}: {result.stderr[-2000:]}"
    counts = json.loads(result.stdout)
    assert counts["round_trips"] == ROUND_TRIPS
    assert set(counts["round_trips_by_kind"]) == {"call_soon", "sleep0", "qtimer", "signal_slot", "thread"}
    assert counts["grpc"] == {"ok": GRPC_CALLS, "errors": 0, "served": GRPC_CALLS, "refused": 0}

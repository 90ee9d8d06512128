"""The benches' ``--host`` (bench/hosting.py): ``tray`` really runs the node inside the tray app's process, ``node``
in a headless one, and each stops what it started."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from bench.hosting import Hosting, chosen, compare, read_pid
from tests.conftest import NOIZYLAB, NodeProcess


def loads_qt(pid: int) -> bool:
    """Whether the process has Qt's GUI library mapped (a QApplication's process does; a headless node never)."""
    return any("libQt6Gui" in m.path for m in psutil.Process(pid).memory_maps())


def test_the_tray_host_runs_the_node_inside_the_tray_app_process(tmp_path: Path) -> None:
    desk = NodeProcess(tmp_path / "desk", "desk")

    with Hosting("tray") as host:
        pid = host.start(desk.home)

        status = desk.status()
        assert status["pid"] == pid == read_pid(desk.home)
        process = psutil.Process(pid)
        # The tray app is `noizylab --home HOME` with no command, and it is this bench's own child.
        assert process.cmdline()[-len(NOIZYLAB) - 1 :] == [*NOIZYLAB[1:], "--home", str(desk.home)]
        assert process.ppid() == os.getpid()
        assert loads_qt(pid)
        assert process.environ()["QT_QPA_PLATFORM"] == "xcb"

    assert not psutil.pid_exists(pid)  # stopped and reaped
    assert read_pid(desk.home) is None


def test_the_node_host_runs_a_headless_node_that_loads_no_qt(tmp_path: Path) -> None:
    desk = NodeProcess(tmp_path / "desk", "desk")

    with Hosting("node") as host:
        pid = host.start(desk.home)

        assert desk.status()["pid"] == pid
        assert "node" in psutil.Process(pid).cmdline()
        assert not loads_qt(pid)

    assert read_pid(desk.home) is None


def test_both_runs_headless_first_and_the_tray_slowdown_reads_the_right_way_for_times_and_rates() -> None:
    from bench.hosting import Figure

    node = [Figure("p50", 10.0, "ms"), Figure("rate", 100.0, "/s", higher_is_better=True)]
    tray = [Figure("p50", 13.0, "ms"), Figure("rate", 90.0, "/s", higher_is_better=True)]

    rows = {r["figure"]: r for r in compare(node, tray)}

    assert chosen("both") == ["node", "tray"]
    assert rows["p50"]["slowdown"] == pytest.approx(1.3) and not rows["p50"]["within"]
    assert rows["rate"]["slowdown"] == pytest.approx(100 / 90) and rows["rate"]["within"]


def test_an_unknown_host_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="unknown host 'qt': one of node, tray"):
        Hosting("qt")

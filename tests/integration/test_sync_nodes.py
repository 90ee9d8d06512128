"""Folder sync between two real nodes over mTLS gRPC and the embedded SFTP server."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import NodeProcess, start_all, wait_for


def _pair(make_node: Callable[..., NodeProcess], tmp_path: Path, allow: bool = True) -> tuple[NodeProcess, NodeProcess]:
    alpha, beta = start_all(
        make_node("alpha", sync={"folder": str(tmp_path / "alpha-sync")}),
        make_node("beta", sync={"folder": str(tmp_path / "beta-sync")}),
    )
    beta.join(alpha.invite())
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
    if allow:
        alpha.cli("allow", "beta", "sync")
        beta.cli("allow", "alpha", "sync")
    return alpha, beta


@pytest.fixture
def shared(make_node: Callable[..., NodeProcess], tmp_path: Path) -> tuple[NodeProcess, NodeProcess, Path, Path]:
    """alpha's folder ``work`` shared with beta (as ``beta-sync/work``), already holding one file."""
    alpha, beta = _pair(make_node, tmp_path)
    local = tmp_path / "work"
    (local / "docs").mkdir(parents=True)
    (local / "docs" / "a.txt").write_text("hello from alpha\n")
    alpha.cli("share", "add", str(local), "--peer", "beta")
    alpha.cli("sync", "wait", "--timeout", "30")
    return alpha, beta, local, tmp_path / "beta-sync" / "work"


def test_a_shared_folder_appears_on_the_peer_and_edits_travel_both_ways(
    shared: tuple[NodeProcess, NodeProcess, Path, Path],
) -> None:
    alpha, beta, local, remote = shared
    assert (remote / "docs" / "a.txt").read_text() == "hello from alpha\n"
    assert alpha.status()["ports"]["sftp"] > 0

    (remote / "from-beta.md").write_text("written on beta\n")
    wait_for(lambda: (local / "from-beta.md").exists(), what="beta's new file on alpha")
    assert (local / "from-beta.md").read_text() == "written on beta\n"

    (local / "docs" / "a.txt").write_text("edited on alpha\n")
    wait_for(lambda: (remote / "docs" / "a.txt").read_text() == "edited on alpha\n", what="the edit on beta")
    kept = list((remote / ".nzversions" / "docs").iterdir())
    assert [p.read_text() for p in kept] == ["hello from alpha\n"], "the replaced version is kept on beta"

    (local / "docs" / "a.txt").rename(local / "docs" / "b.txt")
    wait_for(lambda: (remote / "docs" / "b.txt").exists() and not (remote / "docs" / "a.txt").exists(), what="rename")

    (local / "from-beta.md").unlink()
    wait_for(lambda: not (remote / "from-beta.md").exists(), what="the delete on beta")
    alpha.cli("sync", "wait", "--timeout", "30")
    assert not [p for p in remote.rglob(".nzsync-*")], "no temp file is left visible"
    status = alpha.json("sync", "status")
    assert status[0]["state"] == "idle" and status[0]["files"] == 1 and status[0]["peer"] == "beta"


def test_concurrent_edits_keep_both_versions_with_the_same_conflict_name_on_both_sides(
    shared: tuple[NodeProcess, NodeProcess, Path, Path],
) -> None:
    alpha, beta, local, remote = shared
    alpha.cli("share", "pause", str(local))
    (local / "docs" / "a.txt").write_text("alpha's edit\n")
    (remote / "docs" / "a.txt").write_text("beta's edit, made later\n")
    os.utime(local / "docs" / "a.txt", (1_700_000_000, 1_700_000_000))
    resumed = alpha.cli("share", "resume", str(local)).stdout
    assert "paused" not in resumed and "waiting for peer (resuming)" in resumed, "resume says what it did"
    # A conflict open is not "in sync": wait says so, in one line, and exits 1.
    waited = alpha.cli("sync", "wait", "--timeout", "30", check=False)
    assert waited.returncode == 1
    assert waited.stderr.strip().splitlines()[-1] == (
        f"noizylab: error: not in sync: {local} has 1 conflict to resolve: see `noizylab sync conflicts`"
    )
    for side in (local, remote):
        names = sorted(p.name for p in (side / "docs").iterdir())
        assert names == ["a.sync-conflict-20231114-221320-alpha.txt", "a.txt"], side
        assert (side / "docs" / "a.txt").read_text() == "beta's edit, made later\n"
        assert (side / "docs" / names[0]).read_text() == "alpha's edit\n"
    (status,) = alpha.json("sync", "status")
    assert (status["state"], status["conflicts"]) == ("conflicts", 1)
    assert "1 conflict to resolve" in alpha.cli("sync", "status").stdout

    # Resolved, it is counted no more, and wait succeeds.
    (conflict,) = alpha.json("sync", "conflicts")
    alpha.cli("sync", "merge", conflict["id"], "--keep", "theirs")
    alpha.cli("sync", "wait", "--timeout", "30")
    (status,) = alpha.json("sync", "status")
    assert (status["state"], status["conflicts"]) == ("idle", 0)


def test_both_sides_list_the_share_with_its_real_state_and_wait_fails_while_the_peer_cannot_sync(
    shared: tuple[NodeProcess, NodeProcess, Path, Path],
) -> None:
    alpha, beta, local, remote = shared
    (served,) = beta.json("share", "list")
    assert (served["served"], served["peer"], served["state"]) == (True, "alpha", "served")
    assert served["local"] == os.path.realpath(remote)
    assert "alpha's share, served here" in beta.cli("share", "list").stdout

    beta.cli("deny", "alpha", "sync")
    wait_for(lambda: alpha.json("sync", "status")[0]["state"] == "not allowed", what="alpha to see it is refused")
    wait_for(lambda: beta.json("share", "list")[0]["state"] == "not allowed", what="beta to say it refuses")
    waited = alpha.cli("sync", "wait", "--timeout", "30", check=False)
    lines = waited.stderr.strip().splitlines()
    assert waited.returncode == 1 and lines[-1].startswith(f"noizylab: error: not in sync: {local} ↔ beta: not allowed")

    beta.cli("allow", "alpha", "sync")
    alpha.cli("sync", "wait", "--timeout", "30")
    beta.stop()
    wait_for(lambda: not (alpha.peer("beta") or {}).get("online"), 30, what="alpha to see beta offline")
    (status,) = alpha.json("sync", "status")
    assert status["state"] == "peer offline", status
    waited = alpha.cli("sync", "wait", "--timeout", "30", check=False)
    lines = waited.stderr.strip().splitlines()
    assert waited.returncode == 1
    assert lines[-1].startswith(f"noizylab: error: not in sync: {local} ↔ beta: peer offline")


def test_a_peer_without_the_sync_permission_is_refused_with_one_line(
    make_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    alpha, beta = _pair(make_node, tmp_path, allow=False)
    (tmp_path / "work").mkdir()
    result = alpha.cli("share", "add", str(tmp_path / "work"), "--peer", "beta", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "noizylab: error: beta: beta does not allow sync for this peer: allow it there with "
        "`noizylab allow PEER sync` or from its tray"
    ]
    assert alpha.json("share", "list") == []


def test_bad_share_requests_get_one_line_errors_and_change_nothing(
    shared: tuple[NodeProcess, NodeProcess, Path, Path], tmp_path: Path
) -> None:
    alpha, _, local, _ = shared
    cases = {
        ("share", "add", str(tmp_path / "missing"), "--peer", "beta"): "is not a folder",
        ("share", "add", str(local / "docs"), "--peer", "beta"): "shares cannot nest",
        ("share", "add", str(tmp_path), "--peer", "beta"): "shares cannot nest",
        ("share", "add", str(tmp_path / "x"), "--peer", "nobody"): "nobody",
        ("share", "pause", "ffffff"): "no share match",
        ("share", "add", str(tmp_path / "other"), "--peer", "beta", "--remote", "../escape"): "refused a path",
        ("share", "add", str(tmp_path / "other"), "--peer", "ssh://u@127.0.0.1:1", "--remote", "rel"): "absolute",
    }
    (tmp_path / "other").mkdir()
    (tmp_path / "x").mkdir()
    for args, fragment in cases.items():
        result = alpha.cli(*args, check=False)
        assert result.returncode == 1, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("noizylab: error: ") and fragment in lines[0], (args, lines)
    assert [s["local"] for s in alpha.json("share", "list")] == [str(local)]

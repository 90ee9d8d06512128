"""Merging between two real nodes: concurrent edits of different lines merge on both sides; edits of the same
lines leave a conflict that ``noizylab sync conflicts`` lists and ``noizylab sync merge`` shows and resolves."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import NodeProcess, wait_for
from tests.integration.test_sync_nodes import shared  # noqa: F401  (the fixture)

BASE = "".join(f"line {i}\n" for i in range(1, 9))


def concurrent(alpha: NodeProcess, local: Path, remote: Path, mine: str, theirs: str) -> None:
    """Both sides edit docs/notes.txt while the share is paused; then it syncs."""
    (local / "docs" / "notes.txt").write_text(BASE)
    alpha.cli("sync", "wait", "--timeout", "30")
    alpha.cli("share", "pause", str(local))
    (local / "docs" / "notes.txt").write_text(mine)
    (remote / "docs" / "notes.txt").write_text(theirs)
    alpha.cli("share", "resume", str(local))
    alpha.cli("sync", "wait", "--timeout", "30")


def test_edits_of_different_lines_merge_and_the_same_lines_are_resolved_from_the_cli(
    shared: tuple[NodeProcess, NodeProcess, Path, Path],  # noqa: F811
) -> None:
    alpha, beta, local, remote = shared
    mine, theirs = BASE.replace("line 2\n", "line 2 alpha\n"), BASE.replace("line 7\n", "line 7 beta\n")
    concurrent(alpha, local, remote, mine, theirs)
    both = mine.replace("line 7\n", "line 7 beta\n")
    for side in (local, remote):
        assert sorted(p.name for p in (side / "docs").iterdir()) == ["a.txt", "notes.txt"], side
        assert (side / "docs" / "notes.txt").read_text() == both
    assert "merged docs/notes.txt" in alpha.json("sync", "status")[0]["recent"]
    assert alpha.json("sync", "conflicts") == []

    mine, theirs = both.replace("line 4\n", "line 4 alpha\n"), both.replace("line 4\n", "line 4 beta\n")
    alpha.cli("share", "pause", str(local))
    (local / "docs" / "notes.txt").write_text(mine)
    (remote / "docs" / "notes.txt").write_text(theirs)
    alpha.cli("share", "resume", str(local))
    waited = alpha.cli("sync", "wait", "--timeout", "30", check=False)
    assert waited.returncode == 1 and "has 1 conflict to resolve" in waited.stderr, "not in sync while it is open"
    [conflict] = alpha.json("sync", "conflicts")
    assert conflict["path"] == "docs/notes.txt" and conflict["peer"] == "beta" and conflict["has_ancestor"]
    assert (local / conflict["copy"]).exists() and (remote / conflict["copy"]).exists()

    shown = alpha.cli("sync", "merge", conflict["id"]).stdout
    assert "-line 4 " in shown and "+line 4 " in shown and "--keep mine|theirs" in shown
    for args, why in (
        (["nope"], "no unresolved conflict match 'nope': see `noizylab sync conflicts`"),
        ([conflict["id"], "--ai"], "the AI advisor is off: turn it on with `noizylab advisor on --model MODEL`"),
        ([conflict["id"], "--keep", "mine", "--ai"], "--keep resolves the conflict by itself"),
    ):
        result = alpha.cli("sync", "merge", *args, check=False)
        assert result.returncode == 1 and result.stderr.startswith(f"noizylab: error: {why}"), result.stderr
        assert result.stderr.count("\n") == 1
    assert len(alpha.json("sync", "conflicts")) == 1, "a refusal changes nothing"

    done = alpha.cli("sync", "merge", conflict["id"][:3], "--keep", "theirs").stdout
    assert done.startswith("resolved docs/notes.txt: kept the peer's version")
    alpha.cli("sync", "wait", "--timeout", "30")
    wait_for(lambda: not (remote / conflict["copy"]).exists(), what="the conflict copy to leave beta")
    for side in (local, remote):
        assert (side / "docs" / "notes.txt").read_text() == theirs
        assert not (side / conflict["copy"]).exists()
    assert alpha.json("sync", "conflicts") == []
    assert mine in [p.read_text() for p in (local / ".nzversions" / "docs").iterdir()], "mine is kept as a version"

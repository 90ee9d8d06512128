"""packaging/release.py's refusals: keys inside the source tree, a release not newer than the last, a folder that
is not a build. Each is one line, and nothing is signed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.update_support import RELEASE, SOURCE, Release, bundle


def release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RELEASE), *args], capture_output=True, text=True, timeout=60)


def test_keys_inside_the_source_tree_are_refused(tmp_path: Path) -> None:
    keys = SOURCE / "release-keys-test-never-created"
    result = release("init", "--keys", str(keys), "--repo", str(tmp_path / "repo"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"release.py: error: keep the keys out of the source tree, not in {keys}"]
    assert not keys.exists() and not (tmp_path / "repo").exists()


def test_a_release_must_be_newer_than_the_last_and_be_a_build(tmp_path: Path) -> None:
    made = Release(tmp_path)
    made.add("1.1.0")
    where = ["--keys", str(made.keys), "--repo", str(made.repo)]

    older = release("add", *where, "--version", "1.0.0", "--bundle", str(bundle(tmp_path / "older")))
    not_a_build = tmp_path / "empty"
    not_a_build.mkdir()
    empty = release("add", *where, "--version", "1.2.0", "--bundle", str(not_a_build))

    assert older.returncode == 1 and older.stderr.splitlines() == [
        "release.py: error: the repository already signs noizylab 1.1.0: a new release must be newer"
    ]
    assert empty.returncode == 1 and empty.stderr.splitlines() == [
        f"release.py: error: {not_a_build} is not an onedir build: it has no noizylab executable (run `make dist`)"
    ]
    assert sorted(p.name for p in (made.repo / "targets").iterdir()) == ["noizylab-1.1.0.tar.gz"]

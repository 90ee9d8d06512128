"""Self-update of an installed build from a real TUF repository served on loopback (update_support.py).

Every update here goes through the installed executable's own ``noizylab update`` commands: python-tuf checks the
signed metadata and the download, the install's folders are swapped, the new version's node must come up and say
so. What TUF refuses (a tampered archive, an expired timestamp, older metadata than the install has seen) is one
line, and the installed version stays as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.integration.update_support import Installed, Release, Served, served

pytestmark = pytest.mark.slow

OLD, NEW = "1.0.0", "1.1.0"


@pytest.fixture
def release(tmp_path: Path) -> Release:
    made = Release(tmp_path)
    made.add(OLD)
    return made


@pytest.fixture
def server(release: Release) -> Iterator[Served]:
    with served(release.repo) as running:
        yield running


@pytest.fixture
def installed(tmp_path: Path, release: Release, server: Served) -> Iterator[Installed]:
    """Version 1.0.0 installed from its signed archive, set to update from the served repository."""
    install = Installed(tmp_path, release.archive(OLD), server.url)
    yield install
    install.stop()


def one_error_line(stderr: str) -> str:
    """The one error line a refused update ends with (after any lines that said what it was doing)."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("noizylab: error: ")]
    assert errors == lines[-1:] and "Traceback" not in stderr, stderr
    return errors[0]


def untouched(install: Installed) -> None:
    """The installed version is the old one, whole, and nothing waits to be swapped in."""
    assert install.version == OLD
    assert install.status()["installed"] == OLD
    assert "noizylab.new" not in install.siblings() and "noizylab.previous" not in install.siblings()


def test_an_installed_build_updates_from_n_to_n_plus_1_keeps_n_and_rolls_back_to_it(
    release: Release, installed: Installed
) -> None:
    assert installed.cli("start").returncode == 0
    before = installed.node_pid()
    assert installed.cli("update", "check").stdout.strip() == f"noizylab {OLD} is up to date"
    release.add(NEW)
    check = installed.cli("update", "check")
    assert check.returncode == 0 and check.stdout.startswith(f"noizylab {NEW} is available"), check.stderr

    applied = installed.cli("update", "apply")

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == f"updated noizylab {OLD} to {NEW}; {OLD} is kept to roll back to"
    assert installed.version == NEW
    status = installed.status()
    assert (status["installed"], status["previous"], status["trial"]) == (NEW, OLD, None)
    assert installed.siblings() == ["noizylab", "noizylab.previous", "noizylab.update"]
    # The node runs again, now the new version's: a new process that answers.
    assert installed.node_pid() not in (None, before)
    assert installed.cli("status", "--json").returncode == 0
    assert installed.cli("update", "check").stdout.strip() == f"noizylab {NEW} is up to date"

    # The person prefers the old one after all: it comes back, and the new one is not offered again.
    back = installed.cli("update", "rollback")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"rolled back noizylab {NEW} to {OLD}; {NEW} is not offered again"
    assert installed.version == OLD and installed.siblings() == ["noizylab", "noizylab.update"]
    assert installed.cli("status", "--json").returncode == 0
    assert installed.cli("update", "check").stdout.strip() == f"noizylab {OLD} is up to date"
    again = installed.cli("update", "rollback")
    assert again.returncode == 1 and one_error_line(again.stderr).endswith("nothing to roll back to")


def test_an_update_handed_to_a_copy_of_the_app_is_swapped_in_once_the_command_has_exited(
    release: Release, installed: Installed
) -> None:
    """Windows' way (a running program's folder cannot be renamed there), forced here with ``--hand-off``: the
    command verifies and unpacks, then a copy of the running version outside the folder swaps and restarts."""
    assert installed.cli("start").returncode == 0
    before = installed.node_pid()
    release.add(NEW)

    applied = installed.cli("update", "apply", "--hand-off")

    assert applied.returncode == 0, applied.stderr
    log = installed.app.parent / "noizylab.update" / "apply.log"
    assert applied.stdout.strip() == (
        f"noizylab {NEW} is put in place once this command has exited, by a copy of {OLD} "
        f"(what it does: {log}; the outcome: `noizylab update status`)"
    )
    wait_for(lambda: installed.version == NEW and installed.status()["trial"] is None, what="the copy to swap 1.1.0 in")
    assert installed.status()["previous"] == OLD
    wait_for(lambda: installed.node_pid() not in (None, before), what="the new version's node")
    assert installed.cli("status", "--json").returncode == 0
    told = log.read_text()
    assert "waiting for process" in told and f"updated noizylab {OLD} to {NEW}" in told, told

    back = installed.cli("update", "rollback", "--hand-off")
    assert back.returncode == 0, back.stderr
    wait_for(lambda: installed.version == OLD, what="the copy to put 1.0.0 back")
    wait_for(lambda: f"rolled back noizylab {NEW} to {OLD}" in log.read_text(), what="the rollback's last line")
    assert installed.cli("status", "--json").returncode == 0
    assert installed.cli("update", "check").stdout.strip() == f"noizylab {OLD} is up to date"


def test_a_tampered_archive_is_refused_and_the_installed_version_stays(release: Release, installed: Installed) -> None:
    archive = release.add(NEW)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, one byte changed on the server
    archive.write_bytes(bytes(data))

    result = installed.cli("update", "apply")

    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert line == (
        f"noizylab: error: noizylab-{NEW}.tar.gz does not match its signed length and hash: refused; "
        "the installed version stays"
    )
    untouched(installed)


def test_an_expired_timestamp_is_refused_and_the_installed_version_stays(
    release: Release, installed: Installed
) -> None:
    release.add(NEW)
    release.expire_timestamp()

    for action in ("check", "apply"):
        result = installed.cli("update", action)
        assert result.returncode == 1
        line = one_error_line(result.stderr)
        assert line.startswith("noizylab: error: the update repository's signed metadata has expired (")
        assert line.endswith("refused; the installed version stays")
    untouched(installed)


def test_older_metadata_than_the_install_has_seen_is_refused_as_a_rollback(
    tmp_path: Path, release: Release, installed: Installed
) -> None:
    before = tmp_path / "metadata-with-only-1.0.0"
    shutil.copytree(release.repo / "metadata", before)
    release.add(NEW)
    assert installed.cli("update", "check").stdout.startswith(f"noizylab {NEW} is available")
    # A mirror (or an attacker) serves the repository as it was before 1.1.0: every file validly signed, but older.
    shutil.rmtree(release.repo / "metadata")
    shutil.copytree(before, release.repo / "metadata")

    for action in ("check", "apply"):
        result = installed.cli("update", action)
        assert result.returncode == 1
        line = one_error_line(result.stderr)
        assert line.startswith(
            "noizylab: error: the update repository offers older metadata than this install has seen, a rollback ("
        )
    untouched(installed)


def test_a_repository_signed_with_other_keys_is_refused(tmp_path: Path, installed: Installed) -> None:
    impostor = Release(tmp_path / "impostor")
    impostor.add(NEW)
    with served(impostor.repo) as other:
        installed.set_url(other.url)
        result = installed.cli("update", "apply")
    assert result.returncode == 1
    assert one_error_line(result.stderr).startswith("noizylab: error: the update repository's metadata is not")
    untouched(installed)


def test_the_update_waits_while_a_task_runs_here(tmp_path: Path, release: Release, installed: Installed) -> None:
    assert installed.cli("start").returncode == 0
    go = tmp_path / "go"
    task = installed.popen("run", "--", "sh", "-c", f"until [ -e {go} ]; do sleep 0.05; done")
    try:
        wait_for(lambda: '"running"' in installed.cli("tasks", "--json").stdout, 30, "the task to run")
        release.add(NEW)
        apply = installed.popen("update", "apply")
        assert apply.stderr is not None
        told = [apply.stderr.readline() for _ in range(3)]
        assert told[-1].startswith("waiting: 1 task running on this node; the update goes on when they end"), told
        # Downloaded and verified, but the installed version and its running node are left alone.
        assert installed.version == OLD and apply.poll() is None
        go.touch()
        out, err = apply.communicate(timeout=120)
    finally:
        go.touch()
        task.communicate(timeout=60)
    assert apply.returncode == 0, err
    assert installed.version == NEW


def test_a_new_version_that_fails_to_start_is_rolled_back_and_not_offered_again(
    release: Release, installed: Installed
) -> None:
    assert installed.cli("start").returncode == 0
    release.add(NEW, broken=True)

    result = installed.cli("update", "apply")

    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        f"noizylab: error: noizylab {NEW} failed to start here (this build cannot start (a missing library)): "
        f"rolled back to {OLD}"
    )
    assert installed.version == OLD
    status = installed.status()
    assert (status["installed"], status["failed"], status["previous"]) == (OLD, [NEW], None)
    assert installed.siblings() == ["noizylab", "noizylab.update"]
    assert installed.cli("status", "--json").returncode == 0  # the node that ran before runs again
    assert installed.cli("update", "check").stdout.strip() == f"noizylab {OLD} is up to date"


def test_updates_are_off_until_a_repository_is_set(installed: Installed) -> None:
    installed.set_url("")
    result = installed.cli("update", "check")
    assert result.returncode == 1
    assert one_error_line(result.stderr) == (
        "noizylab: error: updates are off: set [update] url in config.toml to the update repository's address"
    )

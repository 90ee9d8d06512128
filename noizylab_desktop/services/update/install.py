"""The installed app on disk as the updater sees and changes it: which version it is, and the folders beside it.

An installed build is the onedir folder that ``make dist`` and packaging/build.py produce (``noizylab/``: the
executable and ``_internal/``), as packaging/release.py signs it: its ``_update/build.json`` names the app and its
version, its ``_update/root.json`` is the TUF root it trusts first. The updater keeps everything else beside it:

    PARENT/noizylab/            the version that runs
    PARENT/noizylab.new/        a verified update, unpacked, waiting to be swapped in
    PARENT/noizylab.previous/   the version before, kept to roll back to
    PARENT/noizylab.update/     state.json, the TUF metadata this install trusts now, downloads

Swapping is two renames in one folder, so a crash leaves either version whole. A running process may be renamed
under on Linux and macOS; on Windows the folder of a running program cannot be, so a swap there runs from a copy of
the app after the app exits (``handoff.py``), and a rename is tried again for a moment while a process that has
just been stopped lets go of the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from noizylab_desktop.core.config import atomic_write
from noizylab_desktop.core.errors import UpdateError

APP_DIR_ENV = "NOIZYLAB_APP_DIR"  # set by a non-frozen install's launcher script: the folder it runs from
BUILD_FILE = Path("_update") / "build.json"
ROOT_FILE = Path("_update") / "root.json"
# Windows: how long a rename waits for a program that was just stopped to let go of the folder.
RELEASE_WAIT_S = 30.0


@dataclass(frozen=True)
class Build:
    """What an app folder says of itself."""

    app: str
    version: str


@dataclass
class State:
    """What the updater remembers of this install (``PARENT/noizylab.update/state.json``)."""

    staged: str = ""  # the version waiting in .new
    trial: str = ""  # the version swapped in and not yet seen to start
    previous: str = ""  # the version in .previous
    failed: list[str] = field(default_factory=list)  # versions that failed to start here: never offered again


def read_build(app_dir: Path) -> Build:
    """The app and version ``app_dir/_update/build.json`` names."""
    try:
        data = json.loads((app_dir / BUILD_FILE).read_text(encoding="utf-8"))
        return Build(str(data["app"]), str(data["version"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"{app_dir} is not a signed build: {BUILD_FILE} is missing or unreadable ({exc})") from exc


def app_dir_here() -> Path | None:
    """The installed app folder this process runs from, or None when it runs from source."""
    named = os.environ.get(APP_DIR_ENV)
    if named:
        return Path(named).resolve()
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return None


class InstalledApp:
    """One installed app folder and its siblings."""

    def __init__(self, app_dir: Path) -> None:
        self.dir = app_dir
        self.build = read_build(app_dir)
        self.parent = app_dir.parent
        name = app_dir.name
        self.new_dir = self.parent / f"{name}.new"
        self.previous_dir = self.parent / f"{name}.previous"
        self.update_dir = self.parent / f"{name}.update"
        self.state_file = self.update_dir / "state.json"
        self.metadata_dir = self.update_dir / "metadata"
        self.downloads_dir = self.update_dir / "downloads"

    @classmethod
    def here(cls) -> InstalledApp:
        """The install this process runs from; an ``UpdateError`` when it runs from source."""
        found = app_dir_here()
        if found is None:
            raise UpdateError("this noizylab runs from source, not from an installed build: update it with git or pip")
        return cls(found)

    @property
    def version(self) -> str:
        return self.build.version

    @property
    def executable(self) -> Path:
        """The command-line executable of the version that is in place now."""
        return self.dir / ("noizylab-cli.exe" if sys.platform == "win32" else "noizylab")

    def check_writable(self) -> None:
        """Refuse where this user cannot swap folders (an install owned by a package manager)."""
        if not os.access(self.parent, os.W_OK):
            raise UpdateError(f"{self.parent} is not writable by you: update noizylab the way it was installed")

    # ------------------------------------------------------------------ state

    def state(self) -> State:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return State()
        known = {k: v for k, v in data.items() if k in State.__dataclass_fields__}
        return State(**known)

    def save(self, state: State) -> None:
        atomic_write(self.state_file, json.dumps(asdict(state), indent=2).encode(), mode=0o644)

    # ------------------------------------------------------------------ changes

    def stage(self, archive: Path, version: str) -> None:
        """Unpack a verified ``archive`` of ``version`` into ``.new``, checking that it is that version of this app."""
        unpacking = self.parent / f"{self.dir.name}.unpacking"
        _remove(unpacking)
        unpacking.mkdir()
        try:
            with tarfile.open(archive, "r:gz") as tar:
                # "data": no absolute paths, no links leaving the folder, no device files (PEP 706).
                tar.extractall(unpacking, filter="data")
            build = read_build(unpacking)
            if build != Build(self.build.app, version):
                raise UpdateError(
                    f"the archive signed as {self.build.app} {version} holds {build.app} {build.version}: refused"
                )
            executable = unpacking / self.executable.name
            if not executable.is_file():
                raise UpdateError(f"the archive of {self.build.app} {version} has no {executable.name}: refused")
            _remove(self.new_dir)
            unpacking.rename(self.new_dir)
        except (OSError, tarfile.TarError) as exc:
            raise UpdateError(f"cannot unpack {archive.name}: {exc}") from exc
        finally:
            _remove(unpacking)
        state = self.state()
        state.staged = version
        self.save(state)

    def swap_in(self) -> tuple[str, str]:
        """Put the staged version in place and keep the running one as ``.previous``; (old, new) versions."""
        state = self.state()
        if not state.staged or not self.new_dir.is_dir():
            raise UpdateError("no update is staged: run `noizylab update apply`")
        old, new = self.version, state.staged
        _remove(self.previous_dir)
        try:
            _rename(self.dir, self.previous_dir)
        except OSError as exc:  # a program still running from it (Windows), or a folder another user owns
            raise UpdateError(f"cannot move {self.dir} aside to put {new} in place: {exc}") from exc
        try:
            _rename(self.new_dir, self.dir)
        except OSError as exc:
            _rename(self.previous_dir, self.dir)
            raise UpdateError(f"cannot put {new} in place of {self.dir}: {exc}") from exc
        self.build = read_build(self.dir)
        self.save(State(trial=new, previous=old, failed=state.failed))
        return old, new

    def roll_back(self) -> tuple[str, str]:
        """Put ``.previous`` back in place of a version that failed to start; (failed, restored) versions."""
        state = self.state()
        if not self.previous_dir.is_dir():
            raise UpdateError(f"no previous version is kept in {self.previous_dir}: nothing to roll back to")
        failed = self.version
        broken = self.parent / f"{self.dir.name}.failed"
        _remove(broken)
        try:
            _rename(self.dir, broken)
        except OSError as exc:
            raise UpdateError(
                f"cannot move {self.dir} aside to put {state.previous or 'the previous version'} back: {exc}"
            ) from exc
        _rename(self.previous_dir, self.dir)
        _remove(broken)
        self.build = read_build(self.dir)
        self.save(State(failed=sorted({*state.failed, failed})))
        return failed, self.version

    def confirm_started(self) -> bool:
        """Mark the version in place as started (its node came up); True when it was on trial."""
        state = self.state()
        if state.trial != self.version:
            return False
        state.trial = ""
        self.save(state)
        return True


def _rename(source: Path, target: Path) -> None:
    """``source.rename(target)``; on Windows tried again for a moment while a process that was just stopped still
    holds a file inside (its exit takes a moment after its node said it stopped)."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while True:
        try:
            source.rename(target)
            return
        except PermissionError:
            if sys.platform != "win32" or time.monotonic() >= deadline:
                raise
            time.sleep(0.25)  # the other process's exit offers nothing to wait on


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()

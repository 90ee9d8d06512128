"""A real update repository on loopback and an installed build of the app, for tests/integration/test_update.py.

- ``Release``: release keys and a repository folder, signed with packaging/release.py itself (run as a command).
- ``Served``: that folder over HTTP on 127.0.0.1 from an ``http.server`` thread, as a plain static server would.
- An installed build is what an installer leaves: the signed archive of a version unpacked into ``opt/noizylab``.
  Its executable is a launcher script of the same name as the frozen one, which runs this source tree's
  ``noizylab`` with ``NOIZYLAB_APP_DIR`` set to its folder (what ``sys.executable``'s folder is in a frozen build).
  The bundle a release signs is that script and nothing else, so N and N+1 differ only in what they say they are;
  a broken bundle's script exits at once, as a build that cannot start would.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from tests.slowness import scaled

SOURCE = Path(__file__).resolve().parents[2]
RELEASE = SOURCE / "packaging" / "release.py"

LAUNCHER = """#!/bin/sh
# An installed noizylab that is not frozen: this source tree's command line, told which folder it is installed in.
NOIZYLAB_APP_DIR="$(cd "$(dirname "$0")" && pwd)" PYTHONPATH={source} exec {python} -m noizylab_desktop "$@"
"""
BROKEN = """#!/bin/sh
echo "noizylab: error: this build cannot start (a missing library)" >&2
exit 1
"""


def bundle(folder: Path, *, broken: bool = False, payload: int = 0) -> Path:
    """An onedir-shaped build: a folder holding the ``noizylab`` executable (and ``payload`` bytes of data that do
    not compress, in ``_internal/``, for a download that takes a while)."""
    folder.mkdir(parents=True)
    script = folder / "noizylab"
    script.write_text(BROKEN if broken else LAUNCHER.format(source=SOURCE, python=sys.executable))
    script.chmod(0o755)
    if payload:
        (folder / "_internal").mkdir()
        (folder / "_internal" / "data.bin").write_bytes(os.urandom(payload))
    return folder


class Release:
    """The release person's keys and the repository folder they sign into, through packaging/release.py."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "release-keys"
        self.repo = root / "repository"
        self._run("init")

    def _run(self, action: str, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(RELEASE), action, "--keys", str(self.keys), "--repo", str(self.repo), *args],
            capture_output=True,
            text=True,
            timeout=scaled(60),
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def add(self, version: str, *, broken: bool = False, payload: int = 0) -> Path:
        """Sign a build of ``version``; the archive's path in the repository."""
        build = bundle(self.root / "builds" / version, broken=broken, payload=payload)
        self._run("add", "--version", version, "--bundle", str(build))
        return self.repo / "targets" / f"noizylab-{version}.tar.gz"

    def archive(self, version: str) -> Path:
        return self.repo / "targets" / f"noizylab-{version}.tar.gz"

    def expire_timestamp(self) -> None:
        """Re-sign the timestamp with an expiry date in the past, as a repository nobody refreshed would have."""
        from datetime import datetime

        repository = _release_module().open_repo(self.keys, self.repo)
        repository.roles.timestamp.signed.expires = datetime(2001, 1, 1)
        cwd = Path.cwd()
        os.chdir(self.keys)
        try:
            repository.publish_changes(private_key_dirs=[self.keys])
        finally:
            os.chdir(cwd)


class Served:
    """A folder served over HTTP on 127.0.0.1 by a thread of this process; ``rate`` (bytes a second) makes a slow
    link of it, for a download whose progress can be seen."""

    def __init__(self, folder: Path, rate: float = 0.0) -> None:
        base = type("PacedHandler", (_SlowHandler,), {"rate": rate}) if rate else _QuietHandler
        handler = partial(base, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="update-repo", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No access log on the test's stderr."""


class _SlowHandler(_QuietHandler):
    rate = 0.0
    CHUNK = 64 * 1024

    def copyfile(self, source: Any, outputfile: Any) -> None:
        """The file at ``rate`` bytes a second, a chunk at a time."""
        while chunk := source.read(self.CHUNK):
            outputfile.write(chunk)
            time.sleep(len(chunk) / self.rate)  # the link's pace, not a wait for anything


@contextmanager
def served(folder: Path, rate: float = 0.0) -> Iterator[Served]:
    server = Served(folder, rate)
    try:
        yield server
    finally:
        server.close()


class Installed:
    """An installed build in ``opt/noizylab`` and a node home that uses it, driven through its own executable."""

    def __init__(self, root: Path, archive: Path, url: str) -> None:
        self.app = root / "opt" / "noizylab"
        self.app.mkdir(parents=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(self.app, filter="data")  # what an installer does with the download
        self.home = root / "home"
        self.set_url(url)

    def set_url(self, url: str) -> None:
        """This home's config, updating from ``url`` ("": updates off)."""
        from tests.conftest import write_config

        write_config(self.home, "updater", **({"update": {"url": url}} if url else {}))

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``opt/noizylab/noizylab --home HOME ARGS``: whichever version is in place now."""
        return subprocess.run(
            [str(self.app / "noizylab"), "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            stdin=subprocess.DEVNULL,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.app / "noizylab"), "--home", str(self.home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    @property
    def version(self) -> str:
        """The version in place, as the folder says."""
        return str(json.loads((self.app / "_update" / "build.json").read_text())["version"])

    def status(self) -> dict[str, Any]:
        result = self.cli("update", "status", "--json")
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def node_pid(self) -> int | None:
        runtime = self.home / "state" / "runtime.json"
        if not runtime.exists():
            return None
        return int(json.loads(runtime.read_text())["pid"])

    def stop(self) -> None:
        """Stop a node of this home with whichever executable is in place, else with the source tree's."""
        if self.node_pid() is None:
            return
        stopped = self.cli("stop") if (self.app / "noizylab").exists() else None
        if stopped is None or stopped.returncode != 0:
            subprocess.run([sys.executable, "-m", "noizylab_desktop", "--home", str(self.home), "stop"], check=False)

    def siblings(self) -> list[str]:
        """The folders beside the app folder."""
        return sorted(p.name for p in self.app.parent.iterdir())


def _release_module() -> Any:
    """packaging/release.py as a module (``packaging`` is also a library's name, so it is loaded by its path)."""
    spec = importlib.util.spec_from_file_location("noizylab_release", RELEASE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

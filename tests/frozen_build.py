"""One PyInstaller build of the app, and one .deb of it, for every test file that needs them (test_frozen.py,
test_deb.py).

A build takes one to four minutes on two busy cores and its .deb another half minute, so each is made once and kept
in a cache outside the repository (``~/.cache/noizylab-tests/frozen/<key>``, or under ``NOIZYLAB_TEST_CACHE``): CI
checks the project out afresh for every run, and a cache in the checkout's build/ was rebuilt every time. The key is
a hash of exactly what goes into the build: the spec, the package's source, pyproject.toml (the entry points the
build carries), the resources, the interpreter (its real path and version, not the virtual environment's, which
differs between checkouts), every installed distribution's version, and this machine's installed system packages
(the shared libraries PyInstaller collects, and the .deb's Depends, come from them). The .deb's key adds the
packaging scripts that make it. A changed input gives a new key and a real build (builds of other keys are removed
once unused for three hours); test files in other xdist workers, and other runs, wait on a lock for the build rather
than make their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.slowness import scaled

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "packaging" / "noizylab.spec"
CACHE = Path(os.environ.get("NOIZYLAB_TEST_CACHE") or Path.home() / ".cache" / "noizylab-tests") / "frozen"
# The installed system packages' list: any package installed, removed or upgraded changes it.
DPKG_STATUS = Path("/var/lib/dpkg/status")
# Generous where waiting costs nothing: a build that fails says so at once, and one on a busy machine has taken over
# 240 s.
BUILD_TIMEOUT_S = 900
STALE_AFTER_S = 3 * 3600  # a build of other inputs unused for this long is removed (each is about 400 MB)
DEB_SOURCES = [REPO / "packaging" / "deb.py", REPO / "packaging" / "build.py"]


def _files_digest(paths: list[Path]) -> bytes:
    """A hash of these files' names (in the repository) and contents."""
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.digest()


def _distributions() -> str:
    """Every distribution the build's own interpreter sees, with its version: asked of a fresh interpreter started as
    the build is, not of this test process, whose import path earlier tests in the same worker may have changed."""
    script = (
        "import importlib.metadata as m; "
        "print('\\n'.join(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout


def build_key() -> str:
    """A hash of everything the build is made from."""
    digest = hashlib.sha256()
    package = sorted(path for path in (REPO / "noizylab_desktop").rglob("*") if path.suffix != ".pyc")
    digest.update(_files_digest([SPEC, REPO / "pyproject.toml", *package, *sorted((REPO / "resources").iterdir())]))
    digest.update(f"{os.path.realpath(sys.executable)}\0{sys.version}\0{sys.base_prefix}\0".encode())
    digest.update(_distributions().encode())
    if DPKG_STATUS.exists():
        digest.update(DPKG_STATUS.read_bytes())
    return digest.hexdigest()[:16]


def frozen_app() -> Path:
    """The onedir build's folder (``.../dist/noizylab``), built now unless a build of the same inputs is kept."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = build_key()
    folder = CACHE / key
    app = folder / "dist" / "noizylab"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker building the same app: wait for it
        if (folder / "complete").exists():
            os.utime(folder)  # in use: not stale for another three hours
            return app
        for old in CACHE.iterdir():  # builds of older inputs, unless a test run may still be using one
            if old.is_dir() and time.time() - old.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(old, ignore_errors=True)
        started = time.monotonic()
        # No --clean: the work folder is new anyway, and --clean would also empty PyInstaller's cache shared with
        # any build running beside this one.
        result = subprocess.run(
            [sys.executable, "-m", "PyInstaller", "--noconfirm"]
            + ["--distpath", str(folder / "dist"), "--workpath", str(folder / "work"), str(SPEC)],
            capture_output=True,
            text=True,
            timeout=scaled(BUILD_TIMEOUT_S),
        )
        assert result.returncode == 0, result.stderr[-4000:]
        shutil.rmtree(folder / "work", ignore_errors=True)
        (folder / "complete").write_text(f"built in {time.monotonic() - started:.1f} s\n")
        print(f"PyInstaller build took {time.monotonic() - started:.1f} s")
    return app


def frozen_deb() -> tuple[Path, str]:
    """The .deb packaging/deb.py makes of that build, and what it printed, made now unless one of the same build and
    packaging scripts is kept."""
    app = frozen_app()
    folder = app.parent.parent / f"deb-{hashlib.sha256(_files_digest(DEB_SOURCES)).hexdigest()[:16]}"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "printed.txt").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result = subprocess.run(
                [sys.executable, str(REPO / "packaging" / "deb.py"), "--app", str(app), "--out", str(folder)],
                capture_output=True,
                text=True,
                timeout=scaled(900),
            )
            assert result.returncode == 0, result.stderr[-4000:]
            (folder / "printed.txt").write_text(result.stdout)  # written last: its presence says the .deb is whole
    (package,) = folder.glob("noizylab_*.deb")
    return package, (folder / "printed.txt").read_text()

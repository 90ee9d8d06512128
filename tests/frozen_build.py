"""One PyInstaller build of the app for every test file that needs it (test_frozen.py, test_deb.py).

A build takes one to four minutes on two busy cores, so it is made once and kept in ``build/test-frozen/<key>``,
where the key is a hash of what goes into it: the spec, the package's source, the resources, the interpreter and
every installed distribution's version. A changed input gives a new key and a new build (builds of other keys are
removed once they are three hours old);
test files in other xdist workers wait on a lock for the build rather than make their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.slowness import scaled

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "packaging" / "noizylab.spec"
CACHE = REPO / "build" / "test-frozen"
# Generous where waiting costs nothing: a build that fails says so at once, and one on a busy machine has taken over
# 240 s.
BUILD_TIMEOUT_S = 900
STALE_AFTER_S = 3 * 3600  # a build of other inputs older than this is removed (each is about 400 MB)


def build_key() -> str:
    """A hash of everything the build is made from."""
    digest = hashlib.sha256()
    sources = [SPEC, *sorted((REPO / "noizylab_desktop").rglob("*.py")), *sorted((REPO / "resources").iterdir())]
    for path in sources:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(sys.executable.encode())
    distributions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest.update("\n".join(distributions).encode())
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

"""The Windows installer's script compiles here: makensis (Debian's nsis) on packaging/windows/noizylab.nsi.

What the installer does when it runs is tested under Wine (tests/windows/test_installer.py, in the Windows tier);
this checks, in `make test`, that the script and packaging/nsis.py still build an installer from an app folder of
the frozen Windows layout, with warnings treated as errors, and that a wrong folder is refused in one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NSIS = [sys.executable, str(REPO / "packaging" / "nsis.py")]

pytestmark = pytest.mark.skipif(shutil.which("makensis") is None, reason="makensis is missing: apt-get install nsis")


def stub_app(folder: Path) -> Path:
    """A folder of the frozen Windows app's layout (the files' contents do not matter to makensis)."""
    (folder / "_internal").mkdir(parents=True)
    for name in ("noizylab.exe", "noizylab-cli.exe", "_internal/python312.dll"):
        (folder / name).write_bytes(b"MZ" + bytes(1000))
    return folder


def test_the_script_builds_a_windows_installer_and_prints_its_size(tmp_path: Path) -> None:
    app = stub_app(tmp_path / "noizylab")

    result = subprocess.run(
        [*NSIS, "--app", str(app), "--out", str(tmp_path / "out"), "--version", "1.2.3", "--compressor", "zlib"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    setup = tmp_path / "out" / "NOIZYLAB-1.2.3-setup.exe"
    assert setup.read_bytes()[:2] == b"MZ"  # a Windows executable
    assert re.fullmatch(r"built .*NOIZYLAB-1\.2\.3-setup\.exe: [\d.]+ MB \(budget \d+ MB\)\n", result.stdout)


def test_a_folder_without_the_frozen_app_is_refused_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*NSIS, "--app", str(tmp_path), "--out", str(tmp_path / "out")], capture_output=True, text=True
    )

    assert result.returncode == 1
    assert (
        result.stderr
        == f"nsis: error: {tmp_path} holds no noizylab.exe: build the Windows app first (packaging/build.py)\n"
    )

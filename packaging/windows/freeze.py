"""Freeze the app with PyInstaller on the Windows tier's CPython under Wine (windows-tier.sh, WINDOWS_INSTALLER=1).

    wine python.exe Z:\\pyi-src\\packaging\\windows\\freeze.py TOOLS DIST WORK

That CPython is python.org's embeddable build: its ._pth file fixes sys.path and ignores PYTHONPATH, so PyInstaller
(win_amd64 wheels installed into TOOLS by the tier) is put on sys.path here; PyInstaller hands this sys.path on to
the helper processes it starts. PyInstaller 5.13 and later read the standard library from python312.zip.

numpy cannot be imported under Wine 10 (its core calls ucrtbase.dll's crealf, which Wine does not implement, and the
process aborts), and PyInstaller imports every installed package's `pyinstaller40` hook entry point, numpy's
included, in a helper process. So this build, and only this one, leaves numpy out: its hook entry point is skipped
and NOIZYLAB_FREEZE_EXCLUDE tells the spec to exclude numpy and pyqtgraph (the dashboard's charts, the one part that
needs numpy). What the Wine test checks (install, upgrade, start, status, uninstall) does not touch either.
"""

import os
import sys
import time
from pathlib import Path

tools, dist, work = sys.argv[1:4]
source = str(Path(__file__).resolve().parents[2])
sys.path[:0] = [tools, source]
LEFT_OUT = ("numpy", "pyqtgraph")
os.environ["NOIZYLAB_FREEZE_EXCLUDE"] = ",".join(LEFT_OUT)

import PyInstaller.__main__  # noqa: E402 - needs the path above
from PyInstaller.building import build_main  # noqa: E402
from PyInstaller.compat import importlib_metadata  # noqa: E402


def hook_directories_without_numpy() -> list[tuple[str, int]]:
    """build_main.discover_hook_directories, in this process, without the left-out packages' entry points."""
    from PyInstaller.depend.analysis import HOOK_PRIORITY_CONTRIBUTED_HOOKS, HOOK_PRIORITY_UPSTREAM_HOOKS

    found = []
    entries = importlib_metadata.entry_points(group="pyinstaller40", name="hook-dirs")
    # pyinstaller-hooks-contrib last: a package's own hooks win over the contributed ones.
    for entry in sorted(entries, key=lambda entry: entry.module.startswith("_pyinstaller_hooks_contrib")):
        if entry.module.split(".")[0] in LEFT_OUT:
            continue
        contributed = entry.module.startswith("_pyinstaller_hooks_contrib")
        priority = HOOK_PRIORITY_CONTRIBUTED_HOOKS if contributed else HOOK_PRIORITY_UPSTREAM_HOOKS
        found += [(str(path), priority) for path in entry.load()()]
    return found


build_main.discover_hook_directories = hook_directories_without_numpy
started = time.monotonic()
spec = str(Path(source) / "packaging" / "noizylab.spec")
PyInstaller.__main__.run(["--noconfirm", "--distpath", dist, "--workpath", work, spec])
print(f"froze the Windows app in {time.monotonic() - started:.0f} s")

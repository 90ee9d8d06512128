"""Build the double-click app: render the icon, run PyInstaller on packaging/noizylab.spec, archive the result.

    python packaging/build.py [--dist DIR] [--work DIR] [--no-archive]

``make dist`` runs the spec alone (no icon, no archive); CI runs this script. The icon is drawn from
resources/noizylab.svg with Qt's SVG renderer and handed to PyInstaller as a PNG, which it turns into .icns or .ico
with Pillow. The archive is what a person downloads: a zip of NOIZYLAB.app on macOS (made with ``ditto`` so links and
signatures survive), a zip of the ``noizylab`` folder on Windows, a .tar.gz on Linux.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "noizylab.spec"
SVG = ROOT / "resources" / "noizylab.svg"
ICON_PNG = ROOT / "build" / "icon" / "noizylab.png"  # where the spec looks for it
ICON_SIZE = 1024


def version() -> str:
    """The package's version, read without importing it."""
    text = (ROOT / "noizylab_desktop" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'__version__ = "([^"]+)"', text)
    if found is None:
        raise SystemExit("build: error: no __version__ in noizylab_desktop/__init__.py")
    return found.group(1)


def render_icon(svg: Path = SVG, png: Path = ICON_PNG, size: int = ICON_SIZE) -> Path:
    """Draw ``svg`` into a square ``png`` of ``size`` pixels."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed on a build machine
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])  # Qt paints only with an application alive
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"build: error: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    png.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(png)):
        raise SystemExit(f"build: error: cannot write {png}")
    return png


def freeze(dist: Path, work: Path) -> None:
    """Run PyInstaller on the spec."""
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean"]
    command += ["--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    subprocess.run(command, check=True, cwd=ROOT)


def archive(dist: Path) -> Path:
    """The download for this platform, next to the build."""
    system = {"darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    stem = dist / f"NOIZYLAB-{version()}-{system}-{platform.machine().lower()}"
    if sys.platform == "darwin":
        target = stem.with_suffix(".zip")
        subprocess.run(["ditto", "-c", "-k", "--keepParent", str(dist / "NOIZYLAB.app"), str(target)], check=True)
        return target
    kind = "zip" if sys.platform == "win32" else "gztar"
    return Path(shutil.make_archive(str(stem), kind, root_dir=dist, base_dir="noizylab"))


def main(argv: list[str] | None = None) -> int:
    """Render the icon, freeze, archive; print where the result is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder")
    parser.add_argument("--no-archive", action="store_true", help="leave the app unpacked only")
    args = parser.parse_args(argv)
    render_icon()
    freeze(args.dist, args.work)
    if not args.no_archive:
        print(f"built {archive(args.dist)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

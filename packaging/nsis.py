"""Build the Windows installer from the frozen Windows app: ``NOIZYLAB-<version>-setup.exe`` (NSIS).

    python packaging/nsis.py [--app dist/noizylab] [--out dist] [--version X.Y.Z] [--budget-mb N]

``makensis`` runs on Linux (Debian's ``nsis`` package) as on Windows, on packaging/windows/noizylab.nsi; ``--app``
is the PyInstaller folder made on Windows (``noizylab.exe``, ``noizylab-cli.exe``, ``_internal``). ``--version``
overrides the package's (the Wine test builds an "older" installer to upgrade from); ``--compressor zlib`` packs
faster and larger (that older installer). The installer's size is printed
against its budget, and the build fails above it (docs/install.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
from build import version  # noqa: E402 - packaging/ is not a package

SCRIPT = ROOT / "packaging" / "windows" / "noizylab.nsi"
BUDGET_MB = 150


def build(app: Path, out: Path, release: str, budget_mb: float = BUDGET_MB, compressor: str = "lzma") -> Path:
    """Compile the installer for ``app`` into ``out``; print its size against the budget; fail above it."""
    for name in ("noizylab.exe", "noizylab-cli.exe"):
        if not (app / name).is_file():
            raise SystemExit(f"nsis: error: {app} holds no {name}: build the Windows app first (packaging/build.py)")
    makensis = shutil.which("makensis")
    if makensis is None:
        raise SystemExit("nsis: error: makensis is missing: apt-get install nsis (or install NSIS on Windows)")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"NOIZYLAB-{release}-setup.exe"
    defines = [f"-DVERSION={release}", f"-DAPPDIR={app.resolve()}", f"-DOUTFILE={target.resolve()}"]
    defines.append(f"-DCOMPRESSOR={compressor}")
    result = subprocess.run([makensis, "-V2", "-WX", *defines, str(SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"nsis: error: makensis failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    size_mb = target.stat().st_size / 1e6
    print(f"built {target}: {size_mb:.1f} MB (budget {budget_mb:.0f} MB)")
    if size_mb > budget_mb:
        raise SystemExit(f"nsis: error: {target.name} is {size_mb:.1f} MB, over its {budget_mb:.0f} MB budget")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / "noizylab", help="the frozen Windows app")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the installer goes (dist/)")
    parser.add_argument("--version", default=version(), help="the version it installs (default: the package's)")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB, help=f"size limit (default {BUDGET_MB})")
    parser.add_argument(
        "--compressor", choices=("lzma", "zlib"), default="lzma", help="lzma (release, default) or zlib (fast)"
    )
    args = parser.parse_args(argv)
    build(args.app, args.out, args.version, args.budget_mb, args.compressor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

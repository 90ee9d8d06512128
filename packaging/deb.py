"""Wrap the PyInstaller onedir build in a Debian package: ``noizylab_<version>_<arch>.deb``.

    python packaging/deb.py [--app dist/noizylab] [--out dist] [--budget-mb N]

What the package holds:

    /opt/noizylab/                                  the onedir build as it is (the frozen app finds its libraries
                                                    next to itself)
    /usr/bin/noizylab -> /opt/noizylab/noizylab     the command line, on PATH
    /usr/share/applications/noizylab.desktop        the menu entry (resources/noizylab.desktop)
    /usr/share/icons/hicolor/scalable/apps/noizylab.svg

Depends is worked out from the build itself: every shared library some file of the build needs (ELF ``NEEDED``)
that the build does not carry is looked up with ``dpkg -S`` on this machine, so the package names fit the release
the build was made on (PyInstaller carries most of Qt's X libraries; libc, libGL, libEGL, libxcb, libdrm and
Wayland's client libraries it leaves to the system). libc's version is the newest ``GLIBC_x.y`` any file asks for.
Two data packages no ``NEEDED`` line shows are added by name: the carried libfontconfig reads /etc/fonts
(fontconfig-config, which brings a font) and the carried libxkbcommon reads the keymaps (xkb-data).

No maintainer scripts: dpkg's file triggers (desktop-file-utils, hicolor-icon-theme) refresh the menu and icon
caches, and removing the package leaves each user's config, state and keychain entries alone (docs/install.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
from build import version  # noqa: E402 - packaging/ is not a package

PACKAGE = "noizylab"
PREFIX = Path("opt") / PACKAGE
# The compressed .deb's size limit (docs/install.md); the build fails above it rather than let it grow unseen.
BUDGET_MB = 120
# Read at run time by libraries the build carries, so no NEEDED line names them.
DATA_DEPENDS = ("fontconfig-config", "xkb-data")
# The keychain: any Secret Service will do; gnome-keyring is the one most desktops have.
RECOMMENDS = ("gnome-keyring | kwalletmanager | keepassxc",)
ELF_MAGIC = b"\x7fELF"


def elf_files(app: Path) -> list[Path]:
    """Every ELF file (executables and shared libraries) in the build."""
    found = []
    for path in sorted(app.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(4) == ELF_MAGIC:
                    found.append(path)
    return found


def dynamic_section(path: Path) -> str:
    """``objdump -p`` (the dynamic section and version references) of one file."""
    return subprocess.run(["objdump", "-p", str(path)], capture_output=True, text=True, check=True).stdout


def system_libraries(app: Path) -> tuple[set[str], str]:
    """The sonames the build needs but does not carry, and the newest glibc symbol version it asks for."""
    carried = {path.name for path in app.rglob("*.so*")}
    needed: set[str] = set()
    glibc = "2.2.5"
    for path in elf_files(app):
        text = dynamic_section(path)
        needed.update(re.findall(r"^\s+NEEDED\s+(\S+)$", text, re.MULTILINE))
        for found in re.findall(r"\bGLIBC_(\d+(?:\.\d+)+)\b", text):
            glibc = max(glibc, found, key=lambda v: tuple(int(part) for part in v.split(".")))
    return needed - carried, glibc


def package_of(soname: str) -> str:
    """The installed package holding ``soname`` (``dpkg -S``), without its architecture."""
    result = subprocess.run(["dpkg", "-S", f"*/{soname}"], capture_output=True, text=True)
    owners = [line.split(":", 1)[0] for line in result.stdout.splitlines() if ":" in line]
    if result.returncode != 0 or not owners:
        raise SystemExit(f"deb: error: no installed package holds {soname}, which the build needs: install it")
    return owners[0]


def depends(app: Path) -> list[str]:
    """The Depends field's entries for this build, on this machine's release."""
    sonames, glibc = system_libraries(app)
    packages = {package_of(soname) for soname in sonames}
    packages.discard("libc6")
    return [f"libc6 (>= {glibc})", *sorted(packages | set(DATA_DEPENDS))]


def architecture() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def control(app: Path, installed_kib: int) -> str:
    """DEBIAN/control for the build in ``app``."""
    fields = {
        "Package": PACKAGE,
        "Version": version(),
        "Architecture": architecture(),
        "Maintainer": "NOIZYLAB <desktop@noizylab.invalid>",
        "Installed-Size": str(installed_kib),
        "Depends": ", ".join(depends(app)),
        "Recommends": ", ".join(RECOMMENDS),
        "Section": "net",
        "Priority": "optional",
        "Homepage": "https://noizylab.invalid/desktop",
        "Description": "NOIZYLAB Desktop: your computers as one private grid\n"
        " A tray app that pairs a person's computers (mutual TLS, nothing else can talk to it) and runs tasks,\n"
        " syncs folders, shares the clipboard, shows remote desktops and carries tunnels between them.\n"
        " The `noizylab` command is the same program for a terminal.",
    }
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def stage(app: Path, root: Path) -> None:
    """Lay the package's files out under ``root``."""
    shutil.copytree(app, root / PREFIX, symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / PACKAGE).symlink_to(Path("/") / PREFIX / PACKAGE)
    applications = root / "usr" / "share" / "applications"
    applications.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "noizylab.desktop", applications / "noizylab.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor" / "scalable" / "apps"
    icons.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "noizylab.svg", icons / "noizylab.svg")
    for path in [root, *root.rglob("*")]:  # dpkg-deb refuses group- or world-writable control folders
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o022)


def du_kib(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file() and not path.is_symlink()) // 1024


def build(app: Path, out: Path, budget_mb: float = BUDGET_MB) -> Path:
    """Build the .deb from ``app`` into ``out``; print its size against the budget; fail above it."""
    if not (app / PACKAGE).is_file():
        raise SystemExit(f"deb: error: {app} holds no {PACKAGE} executable: build it first (make dist)")
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{PACKAGE}_{version()}_{architecture()}.deb"
    with tempfile.TemporaryDirectory(prefix="noizylab-deb-") as scratch:
        root = Path(scratch) / "root"
        stage(app, root)
        (root / "DEBIAN").mkdir(mode=0o755)
        (root / "DEBIAN" / "control").write_text(control(app, du_kib(root)), encoding="utf-8")
        # zstd -10: 390 MB packed in a minute on a busy 2-core machine, where xz -6 had not finished in ten; dpkg and
        # apt read zstd since Debian 12 and Ubuntu 21.10. --root-owner-group: every file owned by root.
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zzstd", "-z10", "--threads-max=0", "--build", str(root), str(target)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    size_mb = target.stat().st_size / 1e6
    print(f"built {target}: {size_mb:.1f} MB (budget {budget_mb:.0f} MB)")
    if size_mb > budget_mb:
        raise SystemExit(f"deb: error: {target.name} is {size_mb:.1f} MB, over its {budget_mb:.0f} MB budget")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / PACKAGE, help="the onedir build (dist/noizylab)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .deb goes (dist/)")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB, help=f"size limit (default {BUDGET_MB})")
    args = parser.parse_args(argv)
    build(args.app, args.out, args.budget_mb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

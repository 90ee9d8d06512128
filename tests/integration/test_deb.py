"""The Linux installer: packaging/deb.py wraps the frozen app in a .deb that installs on a fresh machine.

The package is built from the same onedir build test_frozen.py drives (tests/frozen_build.py), then read with
dpkg-deb, then installed with `apt-get install ./noizylab_*.deb` in a minimal chroot of this machine's release
(scripts/deb-check.sh, which keeps its base chroot between runs), where an ordinary user runs the installed app
(`--version`, `start`, `status --json`, `stop`); the package is removed and what is left is looked at. The chroot
part needs root and the package archive: without them it is skipped in one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from noizylab_desktop import __version__
from tests.frozen_build import BUILD_TIMEOUT_S, CACHE, REPO, frozen_deb
from tests.slowness import scaled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 1800)]

# The base chroot (minbase plus the keychain's tools) and the packages apt downloaded are kept here between runs, and
# between checkouts (CI's fresh clone built a new chroot for every run: a minute and a half).
CHECK_DIR = Path(os.environ.get("DEB_CHECK_DIR") or CACHE.parent / "deb-check")
INSTALLED = [
    "/opt/noizylab",
    "/usr/bin/noizylab -> /opt/noizylab/noizylab",
    "/usr/share/applications/noizylab.desktop",
    "/usr/share/icons/hicolor/scalable/apps/noizylab.svg",
]


@pytest.fixture(scope="module")
def deb() -> tuple[Path, str]:
    """The .deb built from the frozen app, and what its build printed (kept for later runs: tests/frozen_build.py)."""
    package, printed = frozen_deb()
    print(printed.strip())  # the size against its budget, in the test log
    return package, printed


def field(package: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(package), name], capture_output=True, text=True, check=True).stdout


def test_the_build_prints_the_package_size_within_its_budget(deb: tuple[Path, str]) -> None:
    package, printed = deb
    found = re.search(r"built .*noizylab_.*\.deb: ([\d.]+) MB \(budget (\d+) MB\)", printed)

    assert found, printed
    assert abs(float(found.group(1)) - package.stat().st_size / 1e6) < 0.1
    assert float(found.group(1)) <= float(found.group(2))


def test_the_package_names_this_version_and_the_system_libraries_the_frozen_qt_loads(deb: tuple[Path, str]) -> None:
    package, _ = deb
    depends = [entry.strip() for entry in field(package, "Depends").split(",")]

    assert field(package, "Package").strip() == "noizylab"
    assert field(package, "Version").strip() == __version__
    # What PyInstaller leaves to the system: libc, the GL/EGL dispatch libraries and libxcb itself (Qt's xcb plugin),
    # and the data the carried fontconfig and xkbcommon read.
    assert any(re.fullmatch(r"libc6 \(>= 2\.\d+\)", entry) for entry in depends), depends
    assert {"libgl1", "libegl1", "libxcb1", "fontconfig-config", "xkb-data"} <= set(depends), depends
    assert "gnome-keyring" in field(package, "Recommends")


def test_the_package_holds_the_app_under_opt_a_command_a_menu_entry_and_an_icon(deb: tuple[Path, str]) -> None:
    package, _ = deb
    listing = subprocess.run(["dpkg-deb", "-c", str(package)], capture_output=True, text=True, check=True).stdout
    paths = {line.split(None, 5)[5].removeprefix(".") for line in listing.splitlines()}

    assert "/opt/noizylab/noizylab" in paths
    assert "/usr/bin/noizylab -> /opt/noizylab/noizylab" in paths
    assert "/usr/share/applications/noizylab.desktop" in paths
    assert "/usr/share/icons/hicolor/scalable/apps/noizylab.svg" in paths
    outside = [path for path in paths if path not in ("/", "/opt/") and not path.startswith(("/opt/noizylab/", "/usr"))]
    assert outside == []
    entry = subprocess.run(
        f"dpkg-deb --fsys-tarfile '{package}' | tar -xO ./usr/share/applications/noizylab.desktop",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The menu entry runs the command the package puts on PATH, with the icon it installs.
    assert "Exec=noizylab\n" in entry and "Icon=noizylab\n" in entry


def test_the_package_has_no_maintainer_scripts(deb: tuple[Path, str]) -> None:
    package, _ = deb
    control = subprocess.run(["dpkg-deb", "-I", str(package)], capture_output=True, text=True, check=True).stdout

    for script in ("preinst", "postinst", "prerm", "postrm"):
        assert f" {script} " not in control


@pytest.fixture(scope="module")
def fresh_install(deb: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/deb-check.sh's report on installing, running and removing the package in a fresh chroot."""
    package, _ = deb
    report = tmp_path_factory.mktemp("deb-check")
    result = subprocess.run(
        [str(REPO / "scripts" / "deb-check.sh"), str(package), str(report)],
        capture_output=True,
        text=True,
        timeout=scaled(1800),
        env={**os.environ, "DEB_CHECK_DIR": str(CHECK_DIR)},
    )
    skipped = [line for line in result.stdout.splitlines() if line.startswith("deb-check: skipped:")]
    if skipped:
        pytest.skip(skipped[0])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return report


def test_apt_installs_the_package_on_a_fresh_machine_with_its_files_in_place(fresh_install: Path) -> None:
    assert (fresh_install / "installed.txt").read_text().splitlines() == INSTALLED


def test_the_installed_app_runs_for_an_ordinary_user_with_the_keychain(fresh_install: Path) -> None:
    status = json.loads((fresh_install / "status.json").read_text())

    assert (fresh_install / "version.txt").read_text().strip() == f"noizylab {__version__}"
    assert status["running"] is True and status["name"] == "deb-check"
    assert status["ports"]["grpc"] > 0


def test_removing_the_package_leaves_nothing_of_it_and_keeps_the_users_data(fresh_install: Path) -> None:
    user_data = (fresh_install / "user-data.txt").read_text().splitlines()

    assert (fresh_install / "left.txt").read_text() == ""
    assert "/home/alice/.config/noizylab/config.toml" in user_data
    assert any(path.startswith("/home/alice/.local/state/noizylab/") for path in user_data), user_data

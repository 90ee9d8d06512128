"""Every dependency resolves as binary wheels for the person's two other machines: an M2 Ultra Mac
(``macosx_14_0_arm64``, the app's Python 3.11) and a Windows PC (``win_amd64``), at the versions ``constraints.txt``
pins. pip's ``--dry-run --report`` asks PyPI for metadata only (about 30 s a platform; skipped in one line without
PyPI). Pin the real macOS tag: with ``macosx_11_0_arm64`` pip silently falls back to old PySide6 and av wheels.

pip judges environment markers by this machine, so the project's own platform-only dependencies (pyobjc on macOS)
are chosen here with the target's markers and named outright; markers inside dependencies stay pip's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {
    "macosx_14_0_arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                          "platform_machine": "arm64"},
    "win_amd64": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
}  # fmt: skip


def requirements_for(tag: str) -> list[str]:
    """The project's dependencies that apply on ``tag``'s OS, markers removed."""
    environment = {**default_environment(), **TARGETS[tag], "python_version": "3.11", "python_full_version": "3.11.9"}
    out = []
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            out.append(str(requirement))
    return out


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            found[canonicalize_name(name)] = version.strip()
    return found


@pytest.mark.parametrize("tag", sorted(TARGETS))
def test_every_dependency_resolves_as_wheels_for_the_target_at_the_pinned_versions(tag: str, tmp_path: Path) -> None:
    wanted = requirements_for(tag)
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--only-binary=:all:",
         "--platform", tag, "--python-version", "3.11", "--implementation", "cp", "--target", str(tmp_path / "t"),
         "-c", str(ROOT / "constraints.txt"), "--report", str(report), *wanted],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    errors = [line for line in resolved.stderr.splitlines() if not line.startswith("WARNING")]
    if resolved.returncode != 0 and any("Could not fetch" in e or "connection" in e.lower() for e in errors):
        pytest.skip(f"PyPI cannot be reached: {errors[-1]}")
    assert resolved.returncode == 0, "\n".join(errors[-15:])
    installs: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    got = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    pinned = pins()
    assert {n: v for n, v in got.items() if n in pinned and pinned[n] != v} == {}
    for requirement in map(Requirement, wanted):
        assert canonicalize_name(requirement.name) in got, f"{requirement.name} did not resolve for {tag}"
    machine = "arm64" if tag.startswith("macosx") else "amd64"
    for install in installs:
        wheel = install["download_info"]["url"].rsplit("/", 1)[-1]
        platform = wheel.removesuffix(".whl").rsplit("-", 1)[-1]
        assert platform == "any" or machine in platform or "universal2" in platform, f"{wheel} is not for {tag}"

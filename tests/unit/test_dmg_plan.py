"""The macOS .dmg, checked statically on Linux: dmgbuild's settings, the entitlements, and the signing plan.

Nothing here runs on a Mac (no hdiutil, codesign or notarytool on Linux): packaging/ci/build-macos.yml runs
packaging/dmg.py there. What can be checked here is that the settings file gives dmgbuild a drag-to-Applications
layout for the app it is handed, that the entitlements are a valid property list, and that the commands
packaging/dmg.py runs sign, notarize and staple only when their credentials are given, and in the order Apple
requires (app signed before it is packed, the .dmg signed before it is submitted, stapled after).
"""

from __future__ import annotations

import importlib.util
import plistlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = Path("/tmp/dist/NOIZYLAB.app")
DMG = Path("/tmp/dist/NOIZYLAB-1.0-macos-arm64.dmg")
IDENTITY = "Developer ID Application: Example (TEAM123456)"
NOTARY = {"NOIZYLAB_NOTARY_APPLE_ID": "ci@example.com", "NOIZYLAB_NOTARY_TEAM_ID": "TEAM123456"}
NOTARY["NOIZYLAB_NOTARY_PASSWORD"] = "abcd-efgh-ijkl-mnop"


@pytest.fixture(scope="module")
def dmg() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noizylab_dmg", REPO / "packaging" / "dmg.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings(**defines: str) -> dict[str, Any]:
    """What dmgbuild reads from the settings file: the names it assigns, with ``defines`` from -D."""
    namespace: dict[str, Any] = {"defines": defines}
    path = REPO / "packaging" / "macos" / "dmg_settings.py"
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def tools(steps: list[list[str]]) -> list[str]:
    """Each step named by its program (and subcommand), e.g. "codesign --sign", "notarytool submit"."""
    named = []
    for step in steps:
        if step[0] == sys.executable:
            named.append("dmgbuild")
        elif step[0] == "xcrun":
            named.append(f"{step[1]} {step[2]}")
        elif step[0] == "codesign":
            named.append("codesign --verify" if "--verify" in step else f"codesign --sign {step[-1]}")
        else:
            named.append(step[0])
    return named


def test_the_dmg_shows_the_app_beside_a_link_to_applications() -> None:
    layout = settings(app=str(APP))

    assert layout["files"] == [str(APP)]
    assert layout["symlinks"] == {"Applications": "/Applications"}
    assert set(layout["icon_locations"]) == {"NOIZYLAB.app", "Applications"}
    assert layout["format"] in {"UDZO", "UDBZ", "ULFO", "ULMO"}  # compressed, read-only formats


def test_the_hardened_runtime_entitlements_are_a_valid_property_list() -> None:
    entitlements = plistlib.loads((REPO / "packaging" / "macos" / "entitlements.plist").read_bytes())

    assert entitlements == {
        "com.apple.security.cs.allow-unsigned-executable-memory": True,
        "com.apple.security.cs.disable-library-validation": True,
    }


def test_without_an_identity_the_app_keeps_its_ad_hoc_signature_and_nothing_is_notarized(dmg: ModuleType) -> None:
    steps = dmg.plan(APP, DMG, NOTARY)  # notary credentials alone sign nothing

    assert tools(steps) == ["codesign --verify", "dmgbuild"]


def test_with_an_identity_the_app_is_signed_for_the_hardened_runtime_before_it_is_packed(dmg: ModuleType) -> None:
    steps = dmg.plan(APP, DMG, {"NOIZYLAB_CODESIGN_IDENTITY": IDENTITY})

    assert tools(steps) == [f"codesign --sign {APP}", "codesign --verify", "dmgbuild", f"codesign --sign {DMG}"]
    sign_app = steps[0]
    assert sign_app[sign_app.index("--sign") + 1] == IDENTITY
    assert {"--timestamp", "--options", "runtime", "--entitlements"} <= set(sign_app)


def test_with_notary_credentials_the_signed_dmg_is_notarized_then_stapled(dmg: ModuleType) -> None:
    steps = dmg.plan(APP, DMG, {"NOIZYLAB_CODESIGN_IDENTITY": IDENTITY, **NOTARY})

    assert tools(steps)[3:] == [f"codesign --sign {DMG}", "notarytool submit", "stapler staple", "spctl"]
    submit = steps[4]
    assert submit[3] == str(DMG) and "--wait" in submit


def test_a_missing_notary_credential_skips_notarization_rather_than_failing_half_way(dmg: ModuleType) -> None:
    partial = {"NOIZYLAB_CODESIGN_IDENTITY": IDENTITY, **NOTARY, "NOIZYLAB_NOTARY_PASSWORD": ""}

    assert "notarytool submit" not in tools(dmg.plan(APP, DMG, partial))


def test_the_macos_workflow_builds_the_dmg_after_the_bundle_checks_and_uploads_it() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((REPO / "packaging" / "ci" / "build-macos.yml").read_text())
    steps = workflow["jobs"]["app"]["steps"]
    runs = [str(step.get("run", "")) for step in steps]
    builds_dmg = next(i for i, run in enumerate(runs) if "packaging/dmg.py" in run)

    assert any("codesign --verify" in run for run in runs[:builds_dmg])
    assert steps[builds_dmg]["env"]["NOIZYLAB_CODESIGN_IDENTITY"] == "${{ secrets.MACOS_CODESIGN_IDENTITY }}"
    assert "dmgbuild==" in next(run for run in runs if "pip install" in run and "-e" in run)
    assert "dist/NOIZYLAB-*.dmg" in steps[-1]["with"]["path"]

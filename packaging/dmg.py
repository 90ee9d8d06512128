"""The macOS download: NOIZYLAB.app signed, in a .dmg (dmgbuild), the .dmg signed, notarized and stapled.

    python packaging/dmg.py [--app dist/NOIZYLAB.app] [--out dist] [--dry-run]

Each step runs only when what it needs is there, so the same script serves a fork without secrets and a release:

    NOIZYLAB_CODESIGN_IDENTITY    a "Developer ID Application: ..." identity in the keychain: the app is re-signed
                                  with it (hardened runtime, secure timestamp, packaging/macos/entitlements.plist),
                                  nested libraries included (--deep), and so is the .dmg. Without it the app keeps
                                  PyInstaller's ad-hoc signature and Gatekeeper asks once.
    NOIZYLAB_NOTARY_APPLE_ID, NOIZYLAB_NOTARY_TEAM_ID, NOIZYLAB_NOTARY_PASSWORD (an app-specific password)
                                  with an identity: `xcrun notarytool submit --wait` sends the signed .dmg to Apple,
                                  then `xcrun stapler staple` attaches the ticket so it opens offline.

``--dry-run`` prints the commands instead of running them (what tests/unit/test_dmg_plan.py checks on Linux).
The .dmg's size is printed against its budget, and the script fails above it (docs/install.md).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
from build import version  # noqa: E402 - packaging/ is not a package

SETTINGS = ROOT / "packaging" / "macos" / "dmg_settings.py"
ENTITLEMENTS = ROOT / "packaging" / "macos" / "entitlements.plist"
VOLUME = "NOIZYLAB"
BUDGET_MB = 150
NOTARY = ("NOIZYLAB_NOTARY_APPLE_ID", "NOIZYLAB_NOTARY_TEAM_ID", "NOIZYLAB_NOTARY_PASSWORD")


def plan(app: Path, dmg: Path, env: Mapping[str, str]) -> list[list[str]]:
    """The commands that make ``dmg`` from ``app``, given the signing and notary settings in ``env``."""
    identity = env.get("NOIZYLAB_CODESIGN_IDENTITY", "")
    steps: list[list[str]] = []
    if identity:
        # --deep re-signs every nested library and framework first; --options runtime is the hardened runtime
        # notarization requires; --timestamp a secure timestamp, also required.
        steps.append(
            ["codesign", "--force", "--deep", "--options", "runtime", "--timestamp"]
            + ["--entitlements", str(ENTITLEMENTS), "--sign", identity, str(app)]
        )
    steps.append(["codesign", "--verify", "--deep", "--strict", str(app)])
    steps.append([sys.executable, "-m", "dmgbuild", "-s", str(SETTINGS), "-D", f"app={app}", VOLUME, str(dmg)])
    if identity:
        steps.append(["codesign", "--force", "--timestamp", "--sign", identity, str(dmg)])
        if all(env.get(name) for name in NOTARY):
            apple_id, team, password = (env[name] for name in NOTARY)
            steps.append(
                ["xcrun", "notarytool", "submit", str(dmg), "--apple-id", apple_id, "--team-id", team]
                + ["--password", password, "--wait"]
            )
            steps.append(["xcrun", "stapler", "staple", str(dmg)])
            steps.append(["spctl", "--assess", "--type", "open", "--context", "context:primary-signature", str(dmg)])
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / "NOIZYLAB.app", help="the app bundle")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .dmg goes (dist/)")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB, help=f"size limit (default {BUDGET_MB})")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    dmg = args.out / f"NOIZYLAB-{version()}-macos-arm64.dmg"
    secret = os.environ.get("NOIZYLAB_NOTARY_PASSWORD", "")
    for step in plan(args.app, dmg, os.environ):
        shown = shlex.join(step).replace(secret, "***") if secret else shlex.join(step)
        print(f"+ {shown}", flush=True)
        if not args.dry_run:
            subprocess.run(step, check=True)
    if args.dry_run:
        return 0
    size_mb = dmg.stat().st_size / 1e6
    print(f"built {dmg}: {size_mb:.1f} MB (budget {args.budget_mb:.0f} MB)")
    if size_mb > args.budget_mb:
        raise SystemExit(f"dmg: error: {dmg.name} is {size_mb:.1f} MB, over its {args.budget_mb:.0f} MB budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

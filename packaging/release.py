"""Sign a release of the app into an update repository (TUF metadata, made with tufup).

    python packaging/release.py init    --keys KEYS --repo REPO
    python packaging/release.py add     --keys KEYS --repo REPO --version 0.2.0 [--bundle dist/noizylab]
    python packaging/release.py refresh --keys KEYS --repo REPO

KEYS is a folder that the release person holds and that never goes into the git repository: ``init`` makes one
Ed25519 key pair per TUF role there (root, targets, snapshot, timestamp; private keys readable by their owner only)
and keeps tufup's settings file beside them. REPO is what the update server serves as it is: ``metadata/`` (signed
JSON) and ``targets/`` (one ``noizylab-VERSION.tar.gz`` per release); the app's ``[update] url`` points at it.

``add`` copies the onedir build (``make dist`` leaves it in ``dist/noizylab``), writes into the copy
``_update/build.json`` (the app and this version: what the installed app says it is) and ``_update/root.json`` (the
root metadata that an install of this build trusts first), archives it, adds it to ``targets`` and signs the
changed roles. ``refresh`` re-signs the short-lived ``timestamp`` (one day) and ``snapshot`` (a week): run it, or
``add``, before they expire, or every install refuses the repository (docs/update.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

APP = "noizylab"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = ROOT / "dist" / APP


class ReleaseError(Exception):
    """One line for the release person."""


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    """tufup keeps its settings file in the working folder: keep it beside the keys, never in the served repo."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def open_repo(keys: Path, repo: Path, *, create: bool = False) -> Any:
    """tufup's ``Repository`` for ``repo`` signed with the keys in ``keys``; ``create`` makes missing keys and root."""
    from tufup.repo import Repository

    keys, repo = keys.resolve(), repo.resolve()
    if not create:
        if not (repo / "metadata" / "root.json").is_file():
            raise ReleaseError(f"{repo} is not an update repository yet: run `release.py init` first")
        if not (keys / "root.pub").is_file():
            raise ReleaseError(f"{keys} holds no release keys: give the folder `release.py init` made")
    keys.mkdir(parents=True, exist_ok=True)
    with _in(keys):
        repository = Repository(app_name=APP, repo_dir=repo, keys_dir=keys)
        if not (keys / "root.pub").is_file():
            repository.initialize()  # new keys, and the first signed metadata
        else:
            # tufup's initialize() asks on the terminal before it overwrites a key: existing keys are only loaded.
            repository._load_keys_and_roles(create_keys=False)
            if not (repo / "metadata" / "root.json").is_file():
                for folder in (repository.metadata_dir, repository.targets_dir):
                    folder.mkdir(parents=True, exist_ok=True)
                repository.publish_changes(private_key_dirs=[keys])
    for private in (keys / role for role in ("root", "targets", "snapshot", "timestamp")):
        if private.is_file():
            private.chmod(0o600)
    return repository


def init(keys: Path, repo: Path) -> str:
    """Make the keys (where missing) and the repository's first signed metadata."""
    open_repo(keys, repo, create=True)
    return f"update repository {repo} signed with the keys in {keys}: keep that folder safe and out of git"


def add(keys: Path, repo: Path, bundle: Path, version: str) -> str:
    """Sign ``bundle`` (an onedir build) as ``version`` into ``repo``."""
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ReleaseError(f"{version!r} is not a version (PEP 440: 1.2.0, 1.3.0rc1)") from None
    if str(parsed) != version:
        raise ReleaseError(f"write the version as {parsed}, not {version!r}")
    if not (bundle / APP).is_file() and not (bundle / f"{APP}.exe").is_file():
        raise ReleaseError(f"{bundle} is not an onedir build: it has no {APP} executable (run `make dist`)")
    repository = open_repo(keys, repo)
    latest = repository.roles.get_latest_archive()
    if latest is not None and latest.version >= parsed:
        raise ReleaseError(f"the repository already signs {APP} {latest.version}: a new release must be newer")
    with tempfile.TemporaryDirectory(prefix="noizylab-release-") as tmp:
        copy = Path(tmp) / APP
        shutil.copytree(bundle, copy, symlinks=True)
        marks = copy / "_update"
        marks.mkdir(exist_ok=True)
        (marks / "build.json").write_text(json.dumps({"app": APP, "version": version}) + "\n", encoding="utf-8")
        shutil.copyfile(repo.resolve() / "metadata" / "root.json", marks / "root.json")
        with _in(keys.resolve()):
            repository.add_bundle(new_bundle_dir=copy, new_version=version, skip_patch=True)
            repository.publish_changes(private_key_dirs=[keys.resolve()])
    archive = repo.resolve() / "targets" / f"{APP}-{version}.tar.gz"
    return f"signed {archive} ({archive.stat().st_size / 1e6:.1f} MB) into {repo}"


def refresh(keys: Path, repo: Path) -> str:
    """Re-sign ``snapshot`` and ``timestamp`` with fresh expiry dates."""
    repository = open_repo(keys, repo)
    with _in(keys.resolve()):
        for role in ("snapshot", "timestamp"):
            repository.refresh_expiration_date(role)
        repository.publish_changes(private_key_dirs=[keys.resolve()])
    expires = repository.roles.timestamp.signed.expires
    return f"re-signed snapshot and timestamp of {repo}; the timestamp now expires {expires:%Y-%m-%d %H:%M} UTC"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("init", "make the release keys (where missing) and the repository's first metadata"),
        ("add", "sign a new version's onedir build into the repository"),
        ("refresh", "re-sign the short-lived timestamp and snapshot"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--keys", type=Path, required=True, help="the release keys' folder (never in git)")
        action.add_argument("--repo", type=Path, required=True, help="the repository folder the server serves")
        if name == "add":
            action.add_argument("--version", required=True, help="this release's version (PEP 440)")
            action.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="the onedir build (dist/noizylab)")
    args = parser.parse_args(argv)
    logging.getLogger("tufup").setLevel(logging.ERROR)  # its notes about its own settings file are not for people
    if (ROOT / ".git").exists() and args.keys.resolve().is_relative_to(ROOT):
        print(f"release.py: error: keep the keys out of the source tree, not in {args.keys}", file=sys.stderr)
        return 1
    try:
        if args.action == "init":
            print(init(args.keys, args.repo))
        elif args.action == "add":
            print(add(args.keys, args.repo, args.bundle, args.version))
        else:
            print(refresh(args.keys, args.repo))
    except ReleaseError as exc:
        print(f"release.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

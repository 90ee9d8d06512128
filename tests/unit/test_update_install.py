"""The install tree the updater changes (services/update/install.py): what it unpacks, swaps and puts back.

Archives here are made by hand, as a hostile or careless repository could sign them: the signature says nothing
about what is inside, so the unpacking step checks it again.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import UpdateError
from noizylab_desktop.services.update.install import InstalledApp


def build(folder: Path, version: str) -> Path:
    (folder / "_update").mkdir(parents=True)
    (folder / "_update" / "build.json").write_text(json.dumps({"app": "noizylab", "version": version}))
    (folder / "noizylab").write_text("#!/bin/sh\n")
    return folder


def archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def release_of(tmp_path: Path, version: str, claims: str | None = None) -> Path:
    said = json.dumps({"app": "noizylab", "version": claims or version}).encode()
    return archive(tmp_path / f"noizylab-{version}.tar.gz", {"./_update/build.json": said, "./noizylab": b"#!/bin/sh"})


@pytest.fixture
def app(tmp_path: Path) -> InstalledApp:
    return InstalledApp(build(tmp_path / "opt" / "noizylab", "1.0.0"))


def test_a_staged_version_swaps_in_keeps_the_old_one_and_rolls_back(tmp_path: Path, app: InstalledApp) -> None:
    app.stage(release_of(tmp_path, "1.1.0"), "1.1.0")
    assert app.state().staged == "1.1.0" and app.version == "1.0.0"

    assert app.swap_in() == ("1.0.0", "1.1.0")
    assert app.version == "1.1.0" and InstalledApp(app.dir).version == "1.1.0"
    assert InstalledApp(app.previous_dir).version == "1.0.0"
    assert (app.state().trial, app.state().previous) == ("1.1.0", "1.0.0")

    assert app.roll_back() == ("1.1.0", "1.0.0")
    assert InstalledApp(app.dir).version == "1.0.0"
    assert not app.previous_dir.exists()
    assert app.state().failed == ["1.1.0"]


def test_the_first_start_of_a_swapped_in_version_ends_its_trial(tmp_path: Path, app: InstalledApp) -> None:
    app.stage(release_of(tmp_path, "1.1.0"), "1.1.0")
    app.swap_in()
    assert InstalledApp(app.dir).confirm_started() is True
    assert app.state().trial == "" and app.state().previous == "1.0.0"
    assert InstalledApp(app.dir).confirm_started() is False  # only once


def test_an_archive_signed_as_one_version_that_holds_another_is_refused(tmp_path: Path, app: InstalledApp) -> None:
    older_inside = release_of(tmp_path, "1.1.0", claims="0.9.0")
    with pytest.raises(UpdateError) as refused:
        app.stage(older_inside, "1.1.0")
    assert refused.value.message == "the archive signed as noizylab 1.1.0 holds noizylab 0.9.0: refused"
    assert not app.new_dir.exists() and app.state().staged == ""


def test_an_archive_that_writes_outside_its_folder_is_refused(tmp_path: Path, app: InstalledApp) -> None:
    hostile = archive(tmp_path / "noizylab-1.1.0.tar.gz", {"../../escaped": b"x", "./noizylab": b"#!/bin/sh"})
    with pytest.raises(UpdateError) as refused:
        app.stage(hostile, "1.1.0")
    assert refused.value.message.startswith("cannot unpack noizylab-1.1.0.tar.gz: ")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "opt" / "escaped").exists()
    assert not app.new_dir.exists()


def test_a_folder_that_is_not_a_signed_build_says_so(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    with pytest.raises(UpdateError) as refused:
        InstalledApp(tmp_path / "bare")
    assert refused.value.message.startswith(f"{tmp_path / 'bare'} is not a signed build: _update/build.json is missing")


def test_the_tuf_client_loads_where_setuptools_is_left_out_as_in_the_frozen_app() -> None:
    # packaging/noizylab.spec excludes setuptools; tufup's package imports it for its release side only.
    script = (
        "import sys; sys.modules['setuptools'] = None\n"
        "from noizylab_desktop.services.update.repo import _without_setuptools\n"
        "_without_setuptools()\n"
        "from tufup.client import Client\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

"""Folder sync between a Linux node and a real Windows node: names Windows cannot hold are stored there encoded (the
Windows node's own Offer says it is Windows; nothing is injected) and come back decoded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from noizylab_desktop.services.sync.names import encode_path
from tests.conftest import NodeProcess, wait_for
from tests.sync_harness import tree
from tests.windows.conftest import LinuxNode, pair

NAMES = {"a:b.txt": "colon", "CON.txt": "reserved", "name.": "trailing dot", "why?/q*.md": "folder and star"}


@pytest.mark.windows_smoke
def test_unsafe_names_from_a_linux_node_are_encoded_on_the_windows_node_and_given_back(
    make_node: Callable[..., NodeProcess], make_linux_node: Callable[..., LinuxNode], tmp_path: Path
) -> None:
    omen = make_node("omen", sync={"folder": str(tmp_path / "omen-sync")}).start()
    linux = make_linux_node("penguin").start()
    pair(omen, linux)
    omen.cli("allow", "penguin", "sync")
    linux.cli("allow", "omen", "sync")
    work = f"{linux.linux_home}-work"
    for rel, text in NAMES.items():
        linux.agent.call("write", path=f"{work}/{rel}", data=text.encode().hex())
    linux.cli("share", "add", work, "--peer", "omen")

    remote = tmp_path / "omen-sync" / PurePosixPath(work).name
    stored = {encode_path(rel, "windows"): text.encode() for rel, text in NAMES.items()}
    try:
        wait_for(lambda: remote.is_dir() and tree(remote) == stored, timeout=60, what="the encoded names on Windows")
    except AssertionError as exc:
        held = sorted(tree(remote)) if remote.is_dir() else "no folder"
        raise AssertionError(
            f"{exc}; Windows holds {held}; Linux says {linux.cli('sync', 'status', '--json', check=False).stdout}; "
            f"Windows says {omen.cli('sync', 'status', '--json', check=False).stdout}"
        ) from None

    (remote / encode_path("a:b.txt", "windows")).write_text("edited on Windows")
    (remote / "made\uf03fthere.txt").write_text("made there")

    def on_linux(rel: str) -> bytes | None:
        data = linux.agent.call("read", path=f"{work}/{rel}")["data"]
        return None if data is None else bytes.fromhex(data)

    wait_for(lambda: on_linux("made?there.txt") == b"made there", timeout=60, what="the new file, decoded on Linux")
    wait_for(lambda: on_linux("a:b.txt") == b"edited on Windows", timeout=60, what="the edit, decoded on Linux")
    names = {n for n in linux.agent.call("list", path=work)["names"] if not n.startswith(".nz")}
    assert names == {*NAMES, "made?there.txt"}

"""Names between two real nodes when the serving one is a Windows node: its Offer reply says so, the driving node
stores Windows-unsafe names there encoded, reads them back decoded, and shows a per-file error for a name it cannot
encode. There is no Windows host here: the serving node's OS is injected (``NOIZYLAB_TEST_SYNC_OS``), the rest is
the real code on both nodes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from noizylab_desktop.services.sync.names import encode_path
from tests.conftest import NodeProcess, wait_for
from tests.sync_harness import tree

NAMES = {"a:b.txt": "colon", "CON.txt": "reserved", "name.": "trailing dot", "why?/q*.md": "folder and star"}


def test_a_windows_peer_holds_unsafe_names_encoded_and_gives_them_back_decoded(
    make_node: Callable[..., NodeProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha = make_node("alpha", sync={"folder": str(tmp_path / "alpha-sync")}).start()
    monkeypatch.setenv("NOIZYLAB_TEST_SYNC_OS", "windows")
    beta = make_node("beta", sync={"folder": str(tmp_path / "beta-sync")}).start()
    monkeypatch.delenv("NOIZYLAB_TEST_SYNC_OS")
    beta.join(alpha.invite())
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
    alpha.cli("allow", "beta", "sync")
    beta.cli("allow", "alpha", "sync")

    local, remote = tmp_path / "work", tmp_path / "beta-sync" / "work"
    for rel, text in NAMES.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_text(text)
    (local / "odd\uf03a.txt").write_text("a private-use character: no Windows encoding for it")
    alpha.cli("share", "add", str(local), "--peer", "beta")
    stored = {encode_path(rel, "windows"): text.encode() for rel, text in NAMES.items()}
    wait_for(lambda: remote.is_dir() and tree(remote) == stored, what="the encoded names on the Windows peer")

    def shown() -> str:
        (status,) = alpha.json("sync", "status")
        return str(status["message"]) if status["state"] == "error" else ""

    message = wait_for(lambda: "odd\uf03a.txt" in (m := shown()) and m, what="the per-file error in sync status")
    assert "private-use" in message and "1 file not synced" in message
    waited = alpha.cli("sync", "wait", "--timeout", "3", check=False)
    assert waited.returncode == 1
    assert "waiting for work ↔ beta: error (1 file not synced; odd\uf03a.txt" in waited.stderr, "progress as it waits"

    (remote / encode_path("a:b.txt", "windows")).write_text("edited on the Windows peer")
    (remote / "made\uf03fthere.txt").write_text("made there")
    wait_for(lambda: (local / "made?there.txt").exists(), what="the Windows peer's new file, decoded")
    wait_for(lambda: (local / "a:b.txt").read_text() == "edited on the Windows peer", what="the edit, decoded")
    (local / "odd\uf03a.txt").rename(local / "odd.txt")  # the user follows the message
    alpha.cli("sync", "wait", "--timeout", "30")
    assert {p for p in tree(local)} == {*NAMES, "made?there.txt", "odd.txt"}
    assert set(tree(remote)) == {encode_path(p, "windows") for p in tree(local)}, "nothing unencoded there"

"""The tray's conflict dialog: the ``Folder sync`` submenu lists unresolved conflicts; choosing one shows how the
versions differ (coloured, monospace), the AI advisor's proposal as diffs, and Apply resolves it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from PySide6.QtGui import QFontInfo
from PySide6.QtWidgets import QApplication, QMenu

from noizylab_desktop.core.config import save_settings
from noizylab_desktop.node.node import Node
from noizylab_desktop.services.sync.index import ShareIndex, Unresolved
from noizylab_desktop.services.sync.store import Share, ShareStore
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.sync_merge import ADDED, REMOVED, MergeDialog, diff_html
from noizylab_desktop.ui.sync_tray import SyncTray
from tests.ui.conftest import node_settings
from tests.ui.menus import action
from tests.ui.waiting import Run, eventually
from tests.unit.routing_llm_server import llm_server

SHARE_ID = "0123456789ab"
COPY = "notes.sync-conflict-20260101-120000-beta.txt"
BASE = "".join(f"line {i}\n" for i in range(1, 9))
MINE = BASE.replace("line 4\n", "line 4 as desk wrote it\n")
THEIRS = BASE.replace("line 4\n", "line 4 as beta wrote it\n")
MERGED = BASE.replace("line 4\n", "line 4 as desk and beta wrote it\n")


def test_diffs_are_coloured_by_line() -> None:
    shown = diff_html("--- a\n+++ b\n@@ -1 +1 @@\n-old <tag>\n+new & more\n same")
    assert f'<span style="color:{REMOVED}">-old &lt;tag&gt;</span>' in shown
    assert f'<span style="color:{ADDED}">+new &amp; more</span>' in shown
    assert "\n same" in shown and shown.startswith("<pre>")


def test_the_menu_lists_a_conflict_and_its_dialog_applies_the_ai_merge(
    run: Run, tray_app: QApplication, tmp_path: Path
) -> None:
    folder = tmp_path / "Notes"
    folder.mkdir()
    (folder / "notes.txt").write_text(MINE)
    (folder / COPY).write_text(THEIRS)
    with llm_server() as (base, script):
        paths, settings = node_settings(tmp_path / "desk", "desk")
        settings = settings.with_section("sync", {"folder": str(tmp_path / "sync")}).with_section(
            "tasks", {"advisor_enabled": True, "advisor_model": "openai/merge-advisor", "advisor_api_base": base}
        )
        save_settings(paths, settings)
        # A share to a NAS, paused so that no connection is tried, with one unresolved conflict in its index.
        store = ShareStore(paths.state_dir / "sync" / "shares.sqlite")
        store.put(Share(SHARE_ID, str(folder), "ssh://me@127.0.0.1:1", "nas", "/notes", "", True, "paused by you"))
        store.close()
        index = ShareIndex(paths.state_dir / "sync" / f"share-{SHARE_ID}.sqlite")
        digest = {t: hashlib.sha256(t.encode()).digest() for t in (MINE, THEIRS)}
        index.put_unresolved(
            Unresolved(
                "c0ffee01", "notes.txt", COPY, time.time(), "desk", "beta", digest[MINE], digest[THEIRS], BASE.encode()
            )
        )
        index.close()
        script.content = MERGED

        async def scenario() -> None:
            async with TrayApp(Node(paths, settings)) as app:
                assert app.tray is not None
                menu = action(app.tray, "Folder sync").menu()
                assert isinstance(menu, QMenu)
                texts = [a.text() for a in menu.actions()]
                assert "Conflicts to resolve" in texts
                row = next(a for a in menu.actions() if a.text() == "  Notes/notes.txt (desk ↔ beta)…")
                row.trigger()
                sync_tray = next(e for e in app.tray.extensions if isinstance(e, SyncTray))
                dialog = sync_tray.dialogs["c0ffee01"]
                assert isinstance(dialog, MergeDialog)
                await eventually(dialog.isVisible, 5, "the conflict dialog to show")
                await eventually(lambda: "line 4 as beta" in dialog.diff_view.toPlainText(), 10, "the diff")
                assert QFontInfo(dialog.diff_view.font()).fixedPitch(), "the diff is monospace"
                assert "-line 4 as desk wrote it" in dialog.diff_view.toPlainText()
                assert not dialog.ask_button.isHidden(), "the advisor is on, so it may be asked"
                assert not dialog.apply_button.isEnabled(), "nothing to apply before a proposal"

                dialog.ask_button.click()
                await eventually(dialog.apply_button.isEnabled, 30, "the AI's proposal")
                shown = dialog.diff_view.toPlainText()
                assert "+line 4 as desk and beta wrote it" in shown and "against the conflict copy" in shown
                assert (folder / "notes.txt").read_text() == MINE, "nothing applied before Apply"

                dialog.apply_button.click()
                await eventually(lambda: not dialog.isVisible(), 10, "the dialog to close once resolved")
                assert (folder / "notes.txt").read_text() == MERGED
                assert not (folder / COPY).exists()
                kept = [p.read_text() for p in (folder / ".nzversions").iterdir()]
                assert sorted(kept) == sorted([MINE, THEIRS]), "the replaced file and the copy are versions"
                assert app.node.features["sync"].resolver.conflicts() == []
                assert "Conflicts to resolve" not in [
                    a.text() for a in action(app.tray, "Folder sync").menu().actions()
                ]

        run(scenario())

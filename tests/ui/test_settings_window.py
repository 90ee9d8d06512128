"""``Settings…`` and ``About NOIZYLAB`` from the tray: the settings window shows config.toml's values, refuses a bad
one with the very line the command line gives (writing nothing), saves good ones to config.toml (the name applied at
once, the rest said to apply after a restart); the About box shows the version and node ID and opens the logs
folder."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w
from PySide6.QtWidgets import QCheckBox, QLineEdit

from noizylab_desktop import __version__
from noizylab_desktop.core.nodeid import short_id
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.settings_model import PAGES
from noizylab_desktop.ui.settings_window import SettingsWindow
from tests.conftest import NOIZYLAB
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.menus import action, open_menu
from tests.ui.waiting import Run, eventually


def text(window: SettingsWindow, table: str, key: str) -> QLineEdit:
    editor = window.editor(table, key)
    assert isinstance(editor, QLineEdit), (table, key)
    return editor


def cli_error(home: Path, config: Path, *args: str, edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """The line ``noizylab ARGS`` fails with in a copy of ``config`` at ``home`` (changed by ``edit`` first, by
    hand), its prefix left out and the copy's path shown as the original's."""
    home.mkdir(parents=True)
    data = tomllib.loads(config.read_text())
    if edit is not None:
        edit(data)
    (home / "config.toml").write_text(tomli_w.dumps(data))
    result = subprocess.run([*NOIZYLAB, "--home", str(home), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and result.stdout == "", result
    (line,) = result.stderr.strip().splitlines()
    return line.removeprefix("noizylab: error: ").replace(str(home / "config.toml"), str(config))


def test_the_settings_window_checks_with_the_cli_s_words_and_saves_to_config_toml(run: Run, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    config = paths.config_file

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            action(app.tray, "Settings…").trigger()
            window = app.tray.settings_window
            await eventually(window.isVisible, 5, "the settings window to show")
            # Every page is generated from its table's schema, and shows what config.toml holds now.
            assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [p.title for p in PAGES]
            assert [
                "This machine", "Ports", "Sync", "Metrics", "Clipboard", "Display", "Advisor"
            ] == [p.title for p in PAGES]  # fmt: skip
            assert text(window, "", "name").text() == "desk"
            assert text(window, "ports", "grpc").text() == str(settings.ports.grpc)
            assert text(window, "clipboard", "poll_s").text() == "0.25"
            assert "a number of seconds from 0.05 to 10" in window.editor("clipboard", "poll_s").toolTip()
            before = config.read_bytes()

            # A bad port: the window says what `noizylab` says of the same file, and writes nothing.
            text(window, "ports", "grpc").setText("abc")
            window.save_button.click()
            cli = cli_error(tmp_path / "copy1", config, "id", edit=lambda data: data["ports"].update(grpc="abc"))
            assert (
                window.message.text()
                == cli
                == (f"ports.grpc must be a whole number from 0 to 65535, not 'abc' (in {config})")
            )
            assert config.read_bytes() == before
            text(window, "ports", "grpc").setText(str(settings.ports.grpc))

            # The name is checked as `noizylab rename` checks it.
            text(window, "", "name").setText("   ")
            window.save_button.click()
            assert window.message.text() == cli_error(tmp_path / "copy2", config, "rename", "   ")
            assert config.read_bytes() == before
            text(window, "", "name").setText("desk")

            # A feature's table and a rule across its keys: the parser's own lines.
            text(window, "clipboard", "poll_s").setText("0")
            window.save_button.click()
            assert window.message.text() == "clipboard.poll_s must be a number of seconds from 0.05 to 10, not 0"
            text(window, "clipboard", "poll_s").setText("0.5")
            enabled = window.editor("tasks", "advisor_enabled")
            assert isinstance(enabled, QCheckBox)
            enabled.setChecked(True)
            window.save_button.click()
            assert window.message.text() == (
                "tasks.advisor_enabled is true but tasks.advisor_model is empty: name a model or turn it off"
            )
            assert config.read_bytes() == before
            window.tabs.setCurrentIndex([p.title for p in PAGES].index("Advisor"))
            keep(window, "settings-window-refused")

            # Good values: saved to config.toml, the name applied now, the rest said to apply after a restart.
            text(window, "tasks", "advisor_model").setText("ollama_chat/llama3.2")
            text(window, "", "name").setText("studio")
            text(window, "ports", "http").setText("0")
            text(window, "display", "fps").setText("30")
            text(window, "sync", "folder").setText(str(tmp_path / "Shared"))
            window.save_button.click()
            assert window.message.text() == (
                "Saved: the name applies now (studio); the other changes apply after NOIZYLAB restarts."
            )
            saved = tomllib.loads(config.read_text())
            assert saved["name"] == "studio" and saved["ports"]["http"] == 0 and saved["display"]["fps"] == 30
            assert saved["clipboard"]["poll_s"] == 0.5 and saved["sync"]["folder"] == str(tmp_path / "Shared")
            assert saved["tasks"] == {"advisor_enabled": True, "advisor_model": "ollama_chat/llama3.2"}
            assert saved["keychain_id"] == settings.keychain_id and saved["ports"]["grpc"] == settings.ports.grpc
            assert app.node.settings.name == "studio"
            rows = await open_menu(app.tray)
            assert rows[0].text == f"studio ({short_id(app.node.identity.node_id)})"
            window.tabs.setCurrentIndex(0)
            keep(window, "settings-window")
            window.reject()

    run(scenario())


def test_the_about_box_shows_the_version_and_node_id_and_opens_the_logs_folder(run: Run, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            about = app.tray.about
            opened: list[Path] = []
            about.open_folder = opened.append  # no file manager under Xvfb: the button's request is what counts
            action(app.tray, "About NOIZYLAB").trigger()
            await eventually(about.isVisible, 5, "the About box to show")
            assert about.lines() == [
                f"NOIZYLAB Desktop {__version__}",
                "This machine (desk) is node",
                app.node.identity.node_id,
                f"Logs: {paths.log_dir}",
            ]
            keep(about, "about-box")
            about.logs_button.click()
            assert opened == [paths.log_dir]
            about.reject()

    run(scenario())

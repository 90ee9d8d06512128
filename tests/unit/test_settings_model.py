"""The Settings window's model, without Qt: pages generated from the schema, typed text turned into table values by
kind only, and a save that writes only what changed, after the config loader's own checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Paths, load_settings, update_section
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.settings_schema import describe
from noizylab_desktop.services.clipboard.settings import ClipboardSettings
from noizylab_desktop.ui import settings_model as model
from tests.conftest import write_config


def test_a_page_lists_what_its_table_declares_with_the_parser_s_own_words() -> None:
    poll = next(d for d in describe(ClipboardSettings) if d.key == "poll_s")
    assert (poll.kind, poll.default, poll.expect) == ("float", 0.25, "a number of seconds from 0.05 to 10")
    backend = next(d for d in describe(ClipboardSettings) if d.key == "backend")
    assert backend.choices and backend.default == "auto"
    clipboard = next(p for p in model.PAGES if p.table == "clipboard")
    assert [d.key for d in clipboard.fields()] == [d.key for d in describe(ClipboardSettings)]
    advisor = next(p for p in model.PAGES if p.title == "Advisor")
    assert "advisor_mock_response" not in [d.key for d in advisor.fields()]


def test_typed_text_becomes_a_number_only_where_it_reads_as_one() -> None:
    assert model.from_text("int", " 8080 ") == 8080
    assert model.from_text("int", "80.5") == "80.5"  # the parser names it: "must be a whole number ..., not '80.5'"
    assert model.from_text("float", "600") == 600 and model.from_text("float", "0.5") == 0.5
    assert model.from_text("float", "soon") == "soon"
    assert model.from_text("list", "libx264, h264_nvenc,") == ["libx264", "h264_nvenc"]
    assert model.from_text("str", "  kept as typed ") == "  kept as typed "


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    write_config(tmp_path / "home", "desk")
    found = Paths.resolve(tmp_path / "home")
    load_settings(found)
    return found


def test_saving_what_was_read_changes_nothing(paths: Paths) -> None:
    before = paths.config_file.read_bytes()
    done = model.save(paths, model.current(model.read_file(paths)))
    assert done == model.Saved(None, ()) and done.summary() == "Nothing changed."
    assert paths.config_file.read_bytes() == before


def test_a_save_writes_only_the_keys_changed_and_says_when_they_apply(paths: Paths) -> None:
    edited = model.current(model.read_file(paths))
    edited["metrics"]["interval_s"] = 2.0
    done = model.save(paths, edited)
    assert done.summary() == "Saved: the changes apply after NOIZYLAB restarts."
    assert tomllib.loads(paths.config_file.read_text())["metrics"] == {"interval_s": 2.0}
    edited["display"]["min_fps"] = 90  # above fps (60): the bound that names another setting
    with pytest.raises(ConfigError) as refused:
        model.save(paths, edited)
    assert refused.value.message == "display.min_fps must be a whole number from 1 to 60 (display.fps), not 90"
    edited["display"]["min_fps"] = 10
    edited[""]["name"] = "studio"
    renamed = model.save(paths, edited)
    assert renamed.name == "studio" and renamed.summary() == "Saved: the name applies now (studio)."
    assert tomllib.loads(paths.config_file.read_text())["name"] == "desk"  # the node applies and saves the name


def test_the_tray_s_pause_switch_saved_later_keeps_what_the_settings_window_saved(paths: Paths) -> None:
    edited = model.current(model.read_file(paths))
    edited["clipboard"]["poll_s"] = 0.5
    model.save(paths, edited)
    update_section(paths, "clipboard", {"paused": True})  # what the clipboard feature saves on the tray's click
    assert tomllib.loads(paths.config_file.read_text())["clipboard"] == {"poll_s": 0.5, "paused": True}

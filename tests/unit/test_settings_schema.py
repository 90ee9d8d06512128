"""One settings parser for every feature's [table]: its rules, each shown on a real table of config.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from noizylab_desktop.core.config import Paths, Settings, load_settings
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.settings_schema import parse_section, section, setting, table_keys, to_table
from noizylab_desktop.services.clipboard.settings import ClipboardSettings
from noizylab_desktop.services.display.settings import DisplaySettings
from noizylab_desktop.services.metrics.settings import MetricsSettings
from noizylab_desktop.services.routing.settings import AdvisorSettings
from noizylab_desktop.services.sync.settings import SyncSettings
from noizylab_desktop.services.tasks.settings import TasksSettings


def table(text: str) -> dict[str, Any]:
    """The one table in ``text``, as config.toml would give it."""
    (only,) = tomllib.loads(text).values()
    assert isinstance(only, dict)
    return only


def error(cls: type, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_section(cls, table(text), env=env or {})
    assert "\n" not in caught.value.message
    return caught.value.message


# The parser's rules.


def test_an_unknown_key_is_named_with_its_table_and_the_keys_that_are_allowed() -> None:
    assert error(ClipboardSettings, "[clipboard]\nmaxbytes = 2048\n") == (
        "unknown setting clipboard.maxbytes: use one of backend, max_bytes, paused, poll_s"
    )


def test_a_value_of_the_wrong_type_names_the_key_what_it_takes_and_the_value() -> None:
    assert error(ClipboardSettings, '[clipboard]\npaused = "yes"\n') == (
        "clipboard.paused must be true or false, not 'yes'"
    )
    assert error(MetricsSettings, "[metrics]\ntop_processes = 2.5\n") == (
        "metrics.top_processes must be a whole number, 0 or more, not 2.5"
    )
    # TOML's true is not the number 1.
    assert error(ClipboardSettings, "[clipboard]\npoll_s = true\n") == (
        "clipboard.poll_s must be a number of seconds from 0.05 to 10, not True"
    )


def test_a_value_out_of_range_names_the_range_with_its_unit() -> None:
    assert error(ClipboardSettings, "[clipboard]\nmax_bytes = 10\n") == (
        "clipboard.max_bytes must be a whole number of bytes from 1024 to 1 GiB, not 10"
    )
    assert error(TasksSettings, "[tasks]\ngrace_s = 0\n") == (
        "tasks.grace_s must be a number of seconds above 0 and at most 10, not 0"
    )
    assert error(SyncSettings, "[sync]\nmerge_max_bytes = 67108865\n") == (
        "sync.merge_max_bytes must be a whole number of bytes from 0 to 64 MiB (0: no merging), not 67108865"
    )
    assert error(MetricsSettings, "[metrics]\nwatch_s = nan\n") == (
        "metrics.watch_s must be a number of seconds above 0, not nan"
    )


def test_bounds_are_inclusive_and_an_integer_is_a_number() -> None:
    parsed = parse_section(ClipboardSettings, table("[clipboard]\nmax_bytes = 1073741824\npoll_s = 10\n"))
    assert (parsed.max_bytes, parsed.poll_s) == (1024**3, 10.0)
    assert isinstance(parsed.poll_s, float)


def test_a_bound_may_name_another_setting_and_a_default_follows_it() -> None:
    assert error(DisplaySettings, "[display]\nfps = 30\nmin_fps = 40\n") == (
        "display.min_fps must be a whole number from 1 to 30 (display.fps), not 40"
    )
    low = parse_section(DisplaySettings, table("[display]\nfps = 5\nbitrate_kbps = 200\n"))
    assert (low.min_fps, low.min_bitrate_kbps) == (5, 200)


def test_a_converter_turns_the_written_unit_into_the_one_the_code_uses() -> None:
    assert parse_section(SyncSettings, table("[sync]\nquota_gb = 1.5\n")).quota_bytes == 3 * 1024**3 // 2
    assert error(SyncSettings, "[sync]\nquota_gb = inf\n") == (
        "sync.quota_gb must be a number of GiB, 0 or more (0: no quota), not inf"
    )


def test_an_environment_variable_overrides_the_table_and_is_named_when_wrong() -> None:
    text = '[display]\nencoders = ["libx264"]\n'
    forced = parse_section(DisplaySettings, table(text), env={"NOIZYLAB_DISPLAY_ENCODERS": "h264_nvenc, libx264"})
    assert forced.encoders == ("h264_nvenc", "libx264")
    assert parse_section(DisplaySettings, table(text), env={}).encoders == ("libx264",)
    assert error(DisplaySettings, text, env={"NOIZYLAB_DISPLAY_ENCODERS": ","}) == (
        "NOIZYLAB_DISPLAY_ENCODERS (for display.encoders) must be a non-empty list of encoder names, "
        "e.g. ['libx264'], not ','"
    )


def test_older_files_with_numbers_written_as_strings_still_load_where_declared() -> None:
    parsed = parse_section(SyncSettings, table('[sync]\nrescan_s = "600"\nquiet_ms = 100\n'))
    assert (parsed.rescan_s, parsed.quiet_ms) == (600.0, 100)
    assert error(SyncSettings, '[sync]\nrescan_s = "soon"\n') == (
        "sync.rescan_s must be a number of seconds above 0, not 'soon'"
    )


def test_a_shared_table_is_checked_against_the_keys_of_all_its_owners() -> None:
    text = '[tasks]\nmax_parallel = 3\nadvisor_enabled = true\nadvisor_model = "ollama_chat/llama3.2"\n'
    assert parse_section(TasksSettings, table(text)).max_parallel == 3
    assert parse_section(AdvisorSettings, table(text)).model == "ollama_chat/llama3.2"
    message = error(TasksSettings, '[tasks]\nadvisor_modle = "x"\n')
    assert message.startswith("unknown setting tasks.advisor_modle: use one of advisor_api_base, advisor_enabled")
    assert set(table_keys(TasksSettings)) | set(table_keys(AdvisorSettings)) == set(
        message.split("use one of ")[1].split(", ")
    )
    # The guest reads only its own keys: the owner's parse is where the whole table is checked.
    assert parse_section(AdvisorSettings, table("[tasks]\nmax_paralel = 2\n")) == AdvisorSettings()


def test_a_forbidden_key_gets_its_own_advice_from_every_owner_of_the_table() -> None:
    advice = (
        "tasks.advisor_api_key must not be in the config file: remove it and run `noizylab advisor key` to keep "
        "it in the keychain"
    )
    assert error(AdvisorSettings, '[tasks]\nadvisor_api_key = "sk-1"\n') == advice
    assert error(TasksSettings, '[tasks]\nadvisor_api_key = "sk-1"\n') == advice


def test_a_rule_across_settings_names_both() -> None:
    assert error(AdvisorSettings, "[tasks]\nadvisor_enabled = true\n") == (
        "tasks.advisor_enabled is true but tasks.advisor_model is empty: name a model or turn it off"
    )


def test_a_table_written_from_settings_parses_back_to_them() -> None:
    settings = ClipboardSettings(max_bytes=4096, paused=True, backend="x11", poll_s=1.0)
    assert parse_section(ClipboardSettings, to_table(settings)) == settings


def test_declaration_mistakes_fail_when_the_module_loads() -> None:
    with pytest.raises(TypeError, match="a bound names 'ceiling', not an earlier setting"):

        @section("broken")
        @dataclass(frozen=True)
        class Backwards:
            floor: int = setting(1, high="ceiling")
            ceiling: int = setting(5)

    with pytest.raises(TypeError, match="not declared its guest"):

        @section("tasks", shared_with=(ClipboardSettings,))
        @dataclass(frozen=True)
        class Greedy:
            anything: int = setting(1)

    with pytest.raises(TypeError, match="is not declared with @section"):
        parse_section(Path, {})


# Each feature's table: a known-good one parses, a bad one gives the one-line error.


def test_clipboard_table() -> None:
    good = parse_section(ClipboardSettings, table('[clipboard]\nmax_bytes = 2048\nbackend = "x11"\npoll_s = 0.5\n'))
    assert good == ClipboardSettings(max_bytes=2048, paused=False, backend="x11", poll_s=0.5)
    assert error(ClipboardSettings, '[clipboard]\nbackend = "wayland"\n') == (
        "clipboard.backend must be one of auto, x11, pyperclip, not 'wayland'"
    )


def test_metrics_table() -> None:
    good = parse_section(MetricsSettings, table("[metrics]\ninterval_s = 2\npublic_metrics = true\n"))
    assert good == MetricsSettings(interval_s=2.0, public_metrics=True)
    assert error(MetricsSettings, "[metrics]\ninterval_s = 0.01\n") == (
        "metrics.interval_s must be a number of seconds, 0.1 or more, not 0.01"
    )


def test_sync_table(tmp_path: Path) -> None:
    good = parse_section(SyncSettings, table(f'[sync]\nfolder = "{tmp_path}"\nquiet_ms = 100\nquota_gb = 2\n'))
    assert (good.folder, good.quiet_ms, good.quota_bytes) == (tmp_path, 100, 2 * 1024**3)
    assert parse_section(SyncSettings, {}).folder == Path.home() / "NOIZYLAB Sync"
    assert error(SyncSettings, "[sync]\nquiet_ms = 900\n") == (
        "sync.quiet_ms must be a whole number of milliseconds from 0 to 300, not 900"
    )


def test_display_table() -> None:
    good = parse_section(DisplaySettings, table('[display]\nfps = 30\nencoders = ["libx264"]\n'), env={})
    assert good == DisplaySettings(fps=30, encoders=("libx264",))
    assert error(DisplaySettings, "[display]\ncrf = 52\n") == "display.crf must be a whole number from 0 to 51, not 52"


def test_tasks_table() -> None:
    good = parse_section(TasksSettings, table("[tasks]\nmax_parallel = 4\ngrace_s = 1\nhistory_limit = 10\n"))
    assert (good.max_parallel, good.grace_s, good.history_limit) == (4, 1.0, 10)
    assert error(TasksSettings, "[tasks]\nhistory_limit = 9\n") == (
        "tasks.history_limit must be a whole number, 10 or more, not 9"
    )


def test_advisor_keys_of_the_tasks_table() -> None:
    text = '[tasks]\nadvisor_enabled = true\nadvisor_model = " openai/x "\nadvisor_api_base = "https://api.example/"\n'
    good = parse_section(AdvisorSettings, table(text))
    assert (good.enabled, good.model, good.api_base, good.timeout_s) == (True, "openai/x", "https://api.example", 1.5)
    assert error(AdvisorSettings, '[tasks]\nadvisor_api_base = "localhost:11434"\n') == (
        "tasks.advisor_api_base must be an http:// or https:// address, not 'localhost:11434'"
    )


def test_the_node_top_level_and_ports_tables(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    paths.config_file.write_text('name = " studio "\nlabels = ["gpu"]\n[ports]\nhttp = 0\n[tasks]\nmax_parallel = 2\n')
    good = load_settings(paths)
    assert (good.name, good.labels, good.ports.http, good.section("tasks")) == (
        "studio",
        ("gpu",),
        0,
        {"max_parallel": 2},
    )
    paths.config_file.write_text("[ports]\ngrpc = 70000\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(paths)
    assert caught.value.message == (
        f"ports.grpc must be a whole number from 0 to 65535, not 70000 (in {paths.config_file})"
    )
    assert error(Settings, "[top]\ninvite_ttl_s = 0\n") == (
        "invite_ttl_s must be a number of seconds above 0 and at most 3600, not 0"
    )

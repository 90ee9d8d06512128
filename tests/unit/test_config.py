"""Settings are TOML the person may edit; bad values get a one-line error naming the fix."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Paths, atomic_write, load_settings, save_settings
from noizylab_desktop.core.errors import ConfigError


def test_first_use_writes_defaults_and_the_keychain_id_stays_the_same(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path / "home")
    paths.ensure()
    first = load_settings(paths)
    assert paths.config_file.exists()
    assert load_settings(paths).keychain_id == first.keychain_id
    assert (first.ports.grpc, first.ports.sftp, first.ports.http) == (50051, 50022, 8080)
    assert first.http_host == "127.0.0.1"


def test_a_hand_written_config_gets_a_keychain_id_that_sticks(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    paths.config_file.write_text('name = "studio"\n[ports]\ngrpc = 0\n')
    first = load_settings(paths)
    assert first.name == "studio" and first.ports.grpc == 0
    assert load_settings(paths).keychain_id == first.keychain_id


def test_ports_are_remembered(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    save_settings(paths, load_settings(paths).with_ports(0, 2222, None))
    again = load_settings(paths)
    assert (again.ports.grpc, again.ports.sftp, again.ports.http) == (0, 2222, 8080)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[ports]\ngrpc = 70000\n", "ports.grpc"),
        ('[ports]\ngrpc = "x"\n', "ports.grpc"),
        ('name = ""\n', "name"),
        ("heartbeat_s = -1\n", "heartbeat_s"),
        ("this is = not toml [", "cannot read"),
    ],
)
def test_bad_settings_get_one_line_errors(tmp_path: Path, text: str, complaint: str) -> None:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    paths.config_file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(paths)
    assert complaint in caught.value.message and "\n" not in caught.value.message


def test_home_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOIZYLAB_HOME", str(tmp_path))
    assert Paths.resolve().config_file == tmp_path / "config.toml"


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def _load_keychain_id(home: str) -> str:
    return load_settings(Paths.resolve(home)).keychain_id


def test_processes_loading_a_fresh_home_at_once_agree_on_the_keychain_id(tmp_path: Path) -> None:
    for case, config in (("hand-written", 'name = "studio"\n'), ("absent", None)):
        home = tmp_path / case
        home.mkdir()
        if config is not None:
            (home / "config.toml").write_text(config)
        with multiprocessing.get_context("spawn").Pool(6) as pool:
            ids = pool.map(_load_keychain_id, [str(home)] * 12)
        assert len(set(ids)) == 1, ids
        assert load_settings(Paths.resolve(home)).keychain_id == ids[0]


def test_feature_tables_survive_a_save_and_other_unknown_keys_are_refused(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path)
    paths.ensure()
    paths.config_file.write_text('name = "studio"\n[tasks]\nadvisor_model = "ollama/llama3"\ntimeout_s = 30\n')
    settings = load_settings(paths)
    assert settings.section("tasks") == {"advisor_model": "ollama/llama3", "timeout_s": 30}
    assert settings.section("clipboard") == {}
    save_settings(paths, settings.with_section("clipboard", {"max_bytes": 1000}))
    again = load_settings(paths)
    assert again.section("tasks")["advisor_model"] == "ollama/llama3"
    assert again.section("clipboard") == {"max_bytes": 1000}
    paths.config_file.write_text('name = "studio"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown setting colour: use one of advertise"):
        load_settings(paths)

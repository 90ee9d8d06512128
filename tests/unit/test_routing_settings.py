"""The advisor's settings: the ``[tasks]`` table's ``advisor_*`` keys, and its API key from the keychain only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from noizylab_desktop.core.config import Settings
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.secrets import KeyringStore
from noizylab_desktop.core.settings_schema import parse_section
from noizylab_desktop.services.routing import (
    API_KEY_NAME,
    AdvisorSettings,
    load_advisor_settings,
)


def test_defaults_leave_the_advisor_off_with_a_one_and_a_half_second_budget() -> None:
    assert parse_section(AdvisorSettings, {}) == AdvisorSettings(enabled=False, model="", api_base="", timeout_s=1.5)


def test_a_local_ollama_advisor_is_read_from_the_table() -> None:
    parsed = parse_section(
        AdvisorSettings,
        {
            "advisor_enabled": True,
            "advisor_model": " ollama_chat/llama3.2 ",
            "advisor_api_base": "http://127.0.0.1:11434/",
            "advisor_timeout_s": 1,
            "other_tasks_key": "ignored here",
        },
    )
    assert parsed == AdvisorSettings(True, "ollama_chat/llama3.2", "http://127.0.0.1:11434", 1.0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"advisor_enabled": "yes"}, "tasks.advisor_enabled must be true or false, not 'yes'"),
        ({"advisor_model": 3}, "tasks.advisor_model must be a LiteLLM model name"),
        ({"advisor_api_base": "localhost:11434"}, "tasks.advisor_api_base must be an http:// or https:// address"),
        ({"advisor_timeout_s": 0}, "tasks.advisor_timeout_s must be a number of seconds above 0 and at most 60"),
        ({"advisor_timeout_s": True}, "tasks.advisor_timeout_s must be a number of seconds"),
        ({"advisor_timeout_s": 600}, "tasks.advisor_timeout_s must be a number of seconds"),
        ({"advisor_enabled": True}, "tasks.advisor_enabled is true but tasks.advisor_model is empty"),
        ({"advisor_mock_response": {"node": "a"}}, "tasks.advisor_mock_response must be a string"),
        ({"advisor_api_key": "sk-123"}, "tasks.advisor_api_key must not be in the config file"),
    ],
)
def test_bad_values_get_one_line_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_section(AdvisorSettings, table)
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message


def test_the_api_key_comes_from_the_keychain_and_never_shows_in_repr() -> None:
    keychain_id = f"routing-test-{uuid.uuid4().hex}"
    store = KeyringStore(keychain_id)
    table = {"advisor_enabled": True, "advisor_model": "openai/gpt-4o-mini"}
    settings = Settings(name="alpha", keychain_id=keychain_id).with_section("tasks", table)
    try:
        assert load_advisor_settings(settings).api_key is None  # none stored yet: fine for a local model
        store.set(API_KEY_NAME, b"sk-secret-value")
        loaded = load_advisor_settings(settings)
        assert loaded.api_key == "sk-secret-value"
        assert "sk-secret-value" not in repr(loaded)
    finally:
        store.delete(API_KEY_NAME)


def test_the_keychain_is_not_touched_while_the_advisor_is_off() -> None:
    class Refusing:
        def get(self, name: str) -> bytes | None:
            raise AssertionError(f"read {name} although the advisor is off")

        def set(self, name: str, value: bytes) -> None:
            raise AssertionError("write")

        def delete(self, name: str) -> None:
            raise AssertionError("delete")

    settings = Settings(name="alpha").with_section("tasks", {"advisor_model": "openai/x"})
    assert load_advisor_settings(settings, Refusing()).enabled is False

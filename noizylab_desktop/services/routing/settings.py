"""The AI advisor's settings: the ``advisor_*`` keys of the ``[tasks]`` table, and its API key from the keychain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from noizylab_desktop.core.config import Settings
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.secrets import KeyringStore, SecretStore

SECTION = "tasks"
# The keychain entry that holds the advisor's API key (``noizylab advisor key`` sets it); never the config file.
API_KEY_NAME = "routing.advisor-api-key"
DEFAULT_TIMEOUT_S = 1.5
_KEYS = ("advisor_enabled", "advisor_model", "advisor_api_base", "advisor_timeout_s", "advisor_mock_response")


@dataclass(frozen=True)
class AdvisorSettings:
    """Whether and how to ask the LLM advisor; ``model`` is a LiteLLM model name such as ``ollama_chat/llama3.2``."""

    enabled: bool = False
    model: str = ""
    api_base: str = ""  # e.g. http://127.0.0.1:11434 for a local Ollama; "" for the provider's default
    timeout_s: float = DEFAULT_TIMEOUT_S
    # A fixed answer instead of a real call (LiteLLM's ``mock_response``): for demos and tests without a model.
    mock_response: str | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        """Whether there is a model to ask."""
        return bool(self.model)


def parse_advisor_settings(table: Mapping[str, Any], api_key: str | None = None) -> AdvisorSettings:
    """The advisor settings in a ``[tasks]`` table; a one-line ``ConfigError`` for a value that cannot be used."""
    if "advisor_api_key" in table:
        raise ConfigError(
            "[tasks] advisor_api_key must not be in the config file: remove it and run `noizylab advisor key` "
            "to keep it in the keychain"
        )
    enabled = table.get("advisor_enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"[tasks] advisor_enabled must be true or false, not {enabled!r}")
    model = table.get("advisor_model", "")
    if not isinstance(model, str):
        raise ConfigError(
            f"[tasks] advisor_model must be a LiteLLM model name such as 'ollama_chat/llama3.2', not {model!r}"
        )
    api_base = table.get("advisor_api_base", "")
    if not isinstance(api_base, str) or (api_base and not api_base.startswith(("http://", "https://"))):
        raise ConfigError(f"[tasks] advisor_api_base must be an http:// or https:// address, not {api_base!r}")
    timeout = table.get("advisor_timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise ConfigError(
            f"[tasks] advisor_timeout_s must be a number of seconds above 0 and at most 60, not {timeout!r}"
        )
    mock = table.get("advisor_mock_response")
    if mock is not None and not isinstance(mock, str):
        raise ConfigError(f"[tasks] advisor_mock_response must be a string, not {mock!r}")
    if enabled and not model.strip():
        raise ConfigError("[tasks] advisor_enabled is true but advisor_model is empty: name a model or turn it off")
    return AdvisorSettings(
        enabled=enabled,
        model=model.strip(),
        api_base=api_base.rstrip("/"),
        timeout_s=float(timeout),
        mock_response=mock,
        api_key=api_key,
    )


def load_advisor_settings(settings: Settings, store: SecretStore | None = None) -> AdvisorSettings:
    """The node's advisor settings with the API key from the keychain; blocking (keyring), so call it in a thread.

    The keychain is read only when the advisor is enabled, so a node without one works while the advisor is off.
    """
    parsed = parse_advisor_settings(settings.section(SECTION))
    if not parsed.enabled or parsed.mock_response is not None:
        return parsed
    secret = (store if store is not None else KeyringStore(settings.keychain_id)).get(API_KEY_NAME)
    if secret is None:
        return parsed
    return parse_advisor_settings(settings.section(SECTION), api_key=secret.decode())


def advisor_keys() -> tuple[str, ...]:
    """The ``[tasks]`` keys this module reads (the tasks feature's own parser should let them through)."""
    return _KEYS

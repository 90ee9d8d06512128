"""The AI advisor's settings: the ``advisor_*`` keys of the ``[tasks]`` table, and its API key from the keychain."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from noizylab_desktop.core.config import Settings
from noizylab_desktop.core.secrets import KeyringStore, SecretStore
from noizylab_desktop.core.settings_schema import Check, parse_section, section, setting

SECTION = "tasks"
# The keychain entry that holds the advisor's API key (``noizylab advisor key`` sets it); never the config file.
API_KEY_NAME = "routing.advisor-api-key"
DEFAULT_TIMEOUT_S = 1.5


def _is_address(value: str) -> bool:
    return not value or value.startswith(("http://", "https://"))


# A guest in the tasks feature's table: this reads only its advisor_* keys, and the tasks feature's parse checks
# the table's other keys.
@section(
    SECTION,
    guest=True,
    forbidden={
        "advisor_api_key": "must not be in the config file: remove it and run `noizylab advisor key` to keep it in "
        "the keychain"
    },
    checks=(
        Check(
            "advisor_enabled",
            lambda advisor: not advisor.enabled or bool(advisor.model),
            f"is true but {SECTION}.advisor_model is empty: name a model or turn it off",
        ),
    ),
)
@dataclass(frozen=True)
class AdvisorSettings:
    """Whether and how to ask the LLM advisor; ``model`` is a LiteLLM model name such as ``ollama_chat/llama3.2``."""

    enabled: bool = setting(False, key="advisor_enabled")
    model: str = setting(
        "", key="advisor_model", expect="a LiteLLM model name such as 'ollama_chat/llama3.2'", convert=str.strip
    )
    # e.g. http://127.0.0.1:11434 for a local Ollama; "" for the provider's default
    api_base: str = setting(
        "",
        key="advisor_api_base",
        check=_is_address,
        expect="an http:// or https:// address",
        convert=lambda base: base.rstrip("/"),
    )
    timeout_s: float = setting(DEFAULT_TIMEOUT_S, key="advisor_timeout_s", above=0, high=60, unit="seconds")
    # A fixed answer instead of a real call (LiteLLM's ``mock_response``): for demos and tests without a model.
    mock_response: str | None = setting(None, key="advisor_mock_response")
    api_key: str | None = field(default=None, repr=False)  # from the keychain only

    @property
    def usable(self) -> bool:
        """Whether there is a model to ask."""
        return bool(self.model)


def load_advisor_settings(settings: Settings, store: SecretStore | None = None) -> AdvisorSettings:
    """The node's advisor settings with the API key from the keychain; blocking (keyring), so call it in a thread.

    The keychain is read only when the advisor is enabled, so a node without one works while the advisor is off.
    """
    parsed = parse_section(AdvisorSettings, settings.section(SECTION))
    if not parsed.enabled or parsed.mock_response is not None:
        return parsed
    secret = (store if store is not None else KeyringStore(settings.keychain_id)).get(API_KEY_NAME)
    if secret is None:
        return parsed
    return replace(parsed, api_key=secret.decode())

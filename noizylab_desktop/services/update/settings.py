"""The ``[update] url`` setting: where this install looks for signed updates (none: self-update is off)."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting

SECTION = "update"


def _is_http_url(value: str) -> bool:
    return value == "" or (value.startswith(("https://", "http://")) and " " not in value and len(value) > 8)


@section(SECTION)
@dataclass(frozen=True)
class UpdateSettings:
    """The update repository: its base URL holds ``metadata/`` and ``targets/`` as packaging/release.py writes them."""

    url: str = setting(
        "", check=_is_http_url, expect="an http:// or https:// URL, or empty (updates off)", env="NOIZYLAB_UPDATE_URL"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

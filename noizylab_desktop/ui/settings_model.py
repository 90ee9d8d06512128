"""What the Settings window edits, without Qt: the pages, each a table of config.toml described by its schema, and
saving an edit through the same parsers the node and the command line use (so a mistake reads the same line).

Each page is one table's settings class (``core/settings_schema.py``): its keys, their kinds, defaults and what they
accept come from the declaration, so a setting added there shows up here. Values are typed as text; the text is
turned into the table's value by kind only (a number where it reads as one), and the parser decides: its
``ConfigError`` is the one line the window shows. The machine's name is checked and applied as ``noizylab rename``
does (``machine_name``, then the node's own rename); everything else is saved to config.toml and applies when the
node next starts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noizylab_desktop.core.config import Paths, Ports, Settings, from_toml, save_settings
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.settings_schema import Described, describe, parse_section
from noizylab_desktop.core.trust import machine_name
from noizylab_desktop.services.clipboard.settings import ClipboardSettings
from noizylab_desktop.services.display.settings import DisplaySettings
from noizylab_desktop.services.metrics.settings import MetricsSettings
from noizylab_desktop.services.routing.settings import AdvisorSettings
from noizylab_desktop.services.sync.settings import SyncSettings
from noizylab_desktop.services.tasks.settings import TasksSettings

NAME = "name"


@dataclass(frozen=True)
class Page:
    """One page of the window: ``title``, the ``table`` it edits ("" for the file's top level), the settings class
    that declares it, the keys shown (all the class declares unless ``only`` names some), ``owner`` (the class that
    checks a shared table's keys) and keys left out (``hide``)."""

    title: str
    table: str
    cls: type
    only: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    owner: type | None = None

    def fields(self) -> tuple[Described, ...]:
        found = describe(self.cls)
        if self.only:
            found = tuple(d for d in found if d.key in self.only)
        return tuple(d for d in found if d.key not in self.hide)


PAGES = (
    Page("This machine", "", Settings, only=(NAME,)),
    Page("Ports", "ports", Ports),
    Page("Sync", "sync", SyncSettings),
    Page("Metrics", "metrics", MetricsSettings),
    Page("Clipboard", "clipboard", ClipboardSettings),
    Page("Display", "display", DisplaySettings),
    # A fixed answer instead of a model is for demos and tests: config.toml only.
    Page("Advisor", "tasks", AdvisorSettings, hide=("advisor_mock_response",), owner=TasksSettings),
)

Values = dict[str, dict[str, Any]]  # table -> key -> value, as config.toml holds them


def read_file(paths: Paths) -> dict[str, Any]:
    """The config file as it is now, parsed (empty when there is none yet)."""
    try:
        return tomllib.loads(paths.config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {paths.config_file}: {exc}; fix or delete the file") from exc


def current(data: Mapping[str, Any]) -> Values:
    """What each page's keys hold in ``data`` (the parsed file), defaults where the file leaves a key out."""
    values: Values = {}
    for page in PAGES:
        table = data if not page.table else data.get(page.table, {})
        found = table if isinstance(table, Mapping) else {}
        values[page.table] = {d.key: _plain(found.get(d.key, d.default)) for d in page.fields()}
    return values


def _plain(value: Any) -> Any:
    """A default as the file would hold it: text for a path, a list for a tuple."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def as_text(value: Any) -> str:
    """A value as the form's text shows it."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def from_text(kind: str, text: str) -> Any:
    """The table value for what was typed: a number where the kind wants one and the text reads as one, a list from
    commas; anything else stays text, for the parser to name in its message."""
    try:
        if kind == "int":
            return int(text.strip())
        if kind == "float":
            number = float(text.strip())
            return int(number) if text.strip().lstrip("+-").isdigit() else number
    except ValueError:
        return text
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


@dataclass(frozen=True)
class Saved:
    """What a save did: the name to apply now (None: unchanged), and the tables it changed in config.toml."""

    name: str | None
    changed: tuple[str, ...]

    def summary(self) -> str:
        """The line the window shows after saving."""
        parts = []
        if self.name is not None:
            parts.append(f"the name applies now ({self.name})")
        if self.changed:
            parts.append(f"{'the other changes apply' if parts else 'the changes apply'} after NOIZYLAB restarts")
        return f"Saved: {'; '.join(parts)}." if parts else "Nothing changed."


def save(paths: Paths, edited: Values) -> Saved:
    """Check ``edited`` with the parsers that read config.toml and, when all pass, write it; a one-line
    ``ConfigError`` (nothing written) otherwise. The name is checked here and left for the node to apply."""
    data = read_file(paths)
    before = current(data)
    name: str | None = None
    changed: list[str] = []
    for page in PAGES:
        for d in page.fields():
            value = edited.get(page.table, {}).get(d.key, before[page.table][d.key])
            if value == before[page.table][d.key]:
                continue
            if page.table == "" and d.key == NAME:
                name = machine_name(str(value))  # `noizylab rename`'s check and words
                continue
            table = data if not page.table else data.setdefault(page.table, {})
            table[d.key] = value
            if page.table not in changed:
                changed.append(page.table)
    settings = from_toml(data, paths.config_file)  # the top level and [ports], as the node and the CLI load them
    for page in PAGES:
        if page.table:
            for cls in (page.owner, page.cls) if page.owner is not None else (page.cls,):
                parse_section(cls, data.get(page.table, {}))
    if changed:
        save_settings(paths, settings)
    return Saved(name if name is not None and name != before[""][NAME] else None, tuple(changed))

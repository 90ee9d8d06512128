"""One parser for every ``[table]`` of config.toml: a feature declares its settings, ``parse_section`` checks them.

A feature's settings are a frozen dataclass decorated with ``@section("name")``; each field that a table may set
is declared with ``setting(default, ...)``: its bounds, unit and hint for messages, an optional converter (GiB to
bytes), the environment variable that overrides it. The kind of value (bool, int, float, str, path, list of
strings) comes from the field's type, or from ``kind=`` when a converter changes it.

    @section("clipboard")
    @dataclass(frozen=True)
    class ClipboardSettings:
        poll_s: float = setting(0.25, low=0.05, high=10, unit="seconds")

    parse_section(ClipboardSettings, settings.section("clipboard"))

Every mistake is one ``ConfigError`` line in one wording, naming ``table.key``, what is allowed and the bad value:

    unknown setting clipboard.pol_s: use one of backend, max_bytes, paused, poll_s
    clipboard.poll_s must be a number of seconds from 0.05 to 10, not 0

A table may be shared: ``[tasks]`` is the tasks feature's, and the routing advisor reads its ``advisor_*`` keys
from it. The owner declares ``shared_with=(AdvisorSettings,)``; the guest declares ``guest=True`` and reads only
its own keys. The owner's parse checks the table's keys against the union of both declarations, so a typo is
caught once, and neither parser lists the other's keys by hand.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from noizylab_desktop.core.errors import ConfigError

T = TypeVar("T")

_META = "noizylab_setting"
_KINDS: Mapping[object, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    Path: "path",
    list: "list",
    tuple[str, ...]: "list",
    str | None: "str",
}
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Spec:
    """What one table key accepts; bounds given as a string name an earlier setting whose value bounds this one."""

    key: str | None = None  # the table key, when it is not the field's name
    kind: type | None = None  # the table value's type, when a converter makes the field's type differ
    low: float | str | None = None  # at least this
    above: float | str | None = None  # more than this
    high: float | str | None = None  # at most this
    unit: str = ""  # "seconds", "bytes", "GiB": said after the kind ("a number of seconds")
    hint: str = ""  # said after the range, in brackets: "0: no quota"
    choices: tuple[str, ...] = ()
    non_empty: bool = False  # a list must have an item
    expect: str = ""  # what is allowed, in words, when the kind and bounds do not say it
    check: Callable[[Any], bool] | None = None  # a further test of the value; ``expect`` says what it wants
    convert: Callable[[Any], Any] | None = None  # from the table's value to the field's (GiB to bytes, strip)
    env: str | None = None  # an environment variable that overrides the table ("a,b" for a list)
    # Older parsers turned numbers and paths written as strings (rescan_s = "600") into values; files that rely
    # on it keep working where this is set.
    lenient: bool = False


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    repr: bool = True,  # noqa: A002 - the same name as dataclasses.field's
    **spec: Any,
) -> Any:
    """A dataclass field that a ``[table]`` key sets; ``spec`` takes ``Spec``'s fields."""
    metadata = {_META: Spec(**spec)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, repr=repr, metadata=metadata)
    return dataclasses.field(default=default, repr=repr, metadata=metadata)


@dataclass(frozen=True)
class Check:
    """A rule across settings: when ``holds`` is false, ``table.key`` is named with ``problem``."""

    key: str
    holds: Callable[[Any], bool]
    problem: str


@dataclass(frozen=True)
class _Field:
    name: str
    key: str
    kind: str
    spec: Spec
    default: Any
    factory: bool  # ``default`` is a function that makes it


@dataclass(frozen=True)
class _Table:
    name: str
    fields: tuple[_Field, ...]
    shared_with: tuple[type, ...]
    guest: bool
    forbidden: Mapping[str, str]
    checks: tuple[Check, ...]


_TABLES: dict[type, _Table] = {}


def section(
    name: str,
    *,
    shared_with: Sequence[type] = (),
    guest: bool = False,
    forbidden: Mapping[str, str] | None = None,
    checks: Sequence[Check] = (),
) -> Callable[[type[T]], type[T]]:
    """Declare a settings dataclass as what the ``[name]`` table holds (``""``: the file's top level).

    ``shared_with`` names the guests that read their own keys from this table; a ``guest`` reads only its keys
    and leaves the check of the table's other keys to its owner. ``forbidden`` keys get their own advice.
    """

    def declare(cls: type[T]) -> type[T]:
        hints = typing.get_type_hints(cls)
        found: list[_Field] = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            spec = f.metadata.get(_META)
            if not isinstance(spec, Spec):
                continue  # not set from the table (the advisor's API key comes from the keychain)
            kind = _KINDS.get(spec.kind if spec.kind is not None else hints[f.name])
            if kind is None:
                raise TypeError(f"{cls.__name__}.{f.name}: no setting kind for {hints[f.name]!r}")
            for bound in (spec.low, spec.above, spec.high):
                if isinstance(bound, str) and bound not in {done.name for done in found}:
                    raise TypeError(f"{cls.__name__}.{f.name}: a bound names {bound!r}, not an earlier setting")
            factory = f.default_factory is not dataclasses.MISSING
            if not factory and f.default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name}: a setting needs a default (a table may leave it out)")
            default = f.default_factory if factory else f.default
            found.append(_Field(f.name, spec.key or f.name, kind, spec, default, factory))
        for guest_cls in shared_with:
            guest_table = _TABLES.get(guest_cls)
            if guest_table is None or not guest_table.guest or guest_table.name != name:
                raise TypeError(f"{cls.__name__} shares [{name}] with {guest_cls.__name__}, not declared its guest")
            if {f.key for f in found} & {f.key for f in guest_table.fields}:
                raise TypeError(f"{cls.__name__} and {guest_cls.__name__} both declare a key of [{name}]")
        _TABLES[cls] = _Table(name, tuple(found), tuple(shared_with), guest, dict(forbidden or {}), tuple(checks))
        return cls

    return declare


def parse_section(cls: type[T], table: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> T:
    """``cls`` from its ``[table]``, or a one-line ``ConfigError``; ``env`` (default: os.environ) for overrides."""
    declared = _declared(cls)
    _check_keys(declared, table)
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}  # what the table (or the environment) sets, for the constructor
    seen: dict[str, Any] = {}  # every setting's value so far, defaults included, for bounds that name one
    for f in declared.fields:
        where = _where(declared.name, f.key)
        if f.spec.env and environ.get(f.spec.env):
            raw: Any = [item.strip() for item in environ[f.spec.env].split(",") if item.strip()]
            where, shown = f"{f.spec.env} (for {where})", environ[f.spec.env]
        elif f.key in table:
            raw = shown = table[f.key]
        else:
            default = f.default() if f.factory else f.default
            if any(isinstance(b, str) for b in (f.spec.low, f.spec.above, f.spec.high)):
                # A default bounded by another setting follows it: min_fps is 10, or fps when that is less.
                default = values[f.name] = _clamp(default, f.spec, seen)
            seen[f.name] = default
            continue
        values[f.name] = seen[f.name] = _value(declared.name, f, raw, where, shown, seen)
    settings = cls(**values)
    for check in declared.checks:
        if not check.holds(settings):
            raise ConfigError(f"{_where(declared.name, check.key)} {check.problem}")
    return settings


def table_keys(cls: type) -> tuple[str, ...]:
    """The keys ``cls`` reads from its table, in declaration order."""
    return tuple(f.key for f in _declared(cls).fields)


@dataclass(frozen=True)
class Described:
    """One key of a table as a form shows it: its kind, what it holds when the table leaves it out, its choices,
    and what it accepts in the words of the parser's messages."""

    key: str
    kind: str  # bool, int, float, str, path or list
    default: Any
    choices: tuple[str, ...]
    expect: str  # "a number of seconds from 0.05 to 10"


def describe(cls: type) -> tuple[Described, ...]:
    """Every key ``cls`` reads from its table, in declaration order; bounds that name another setting are shown
    at that setting's default."""
    declared = _declared(cls)
    seen: dict[str, Any] = {}
    found = []
    for f in declared.fields:
        default = f.default() if f.factory else f.default
        seen[f.name] = default
        bounds = [_bound(b, seen) for b in (f.spec.low, f.spec.above, f.spec.high)]
        expect = _expectation(declared.name, f, *bounds)
        found.append(Described(f.key, f.kind, default, f.spec.choices, expect))
    return tuple(found)


def to_table(settings: object) -> dict[str, Any]:
    """The table that parses back to ``settings`` (for settings without converters)."""
    declared = _declared(type(settings))
    table: dict[str, Any] = {}
    for f in declared.fields:
        if f.spec.convert is not None:
            raise TypeError(f"{declared.name}.{f.key} is converted: write its table by hand")
        value = getattr(settings, f.name)
        if value is not None:
            table[f.key] = str(value) if f.kind == "path" else list(value) if f.kind == "list" else value
    return table


def _declared(cls: type) -> _Table:
    try:
        return _TABLES[cls]
    except KeyError:
        raise TypeError(f"{cls.__name__} is not declared with @section") from None


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _check_keys(declared: _Table, table: Mapping[str, Any]) -> None:
    """The one place a table's keys are checked: against the union of its owner's and its guests' settings."""
    owners = [declared, *(_TABLES[guest] for guest in declared.shared_with)]
    forbidden = {key: why for owner in owners for key, why in owner.forbidden.items()}
    for key in sorted(set(table) & set(forbidden)):
        raise ConfigError(f"{_where(declared.name, key)} {forbidden[key]}")
    if declared.guest:
        return  # the table's owner checks the keys that are not this guest's
    allowed = sorted(f.key for owner in owners for f in owner.fields)
    for key in sorted(set(table) - set(allowed)):
        raise ConfigError(f"unknown setting {_where(declared.name, key)}: use one of {', '.join(allowed)}")


def _value(table: str, f: _Field, raw: Any, where: str, shown: Any, earlier: Mapping[str, Any]) -> Any:
    """The field's value from ``raw``, or a ConfigError naming ``where`` and showing ``shown`` as written."""
    spec = f.spec
    low, above, high = (_bound(b, earlier) for b in (spec.low, spec.above, spec.high))
    wrong = ConfigError(f"{where} must be {_expectation(table, f, low, above, high)}, not {shown!r}")
    value = _lenient(f.kind, raw) if spec.lenient else raw
    if not _fits(f.kind, spec, value, low, above, high) or (spec.check is not None and not spec.check(value)):
        raise wrong
    if f.kind == "float":
        value = float(value)
    elif f.kind == "path":
        value = Path(value).expanduser()
    elif f.kind == "list":
        value = tuple(value)
    if spec.convert is not None:
        try:
            value = spec.convert(value)
        except (ValueError, OverflowError):
            raise wrong from None
    return value


def _lenient(kind: str, raw: Any) -> Any:
    if isinstance(raw, bool):
        return raw
    try:
        if kind == "float" and isinstance(raw, str):
            return float(raw)
        if kind == "int" and isinstance(raw, str | float):
            return int(raw)
    except (ValueError, OverflowError):
        return raw
    if kind == "path" and isinstance(raw, int | float):
        return str(raw)
    return raw


def _fits(kind: str, spec: Spec, value: Any, low: float | None, above: float | None, high: float | None) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("str", "path"):
        return isinstance(value, str) and (not spec.choices or value in spec.choices)
    if kind == "list":
        return (
            isinstance(value, list | tuple)
            and all(isinstance(item, str) for item in value)
            and (bool(value) or not spec.non_empty)
        )
    number = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, number):
        return False
    # Written so that NaN fails every bound.
    return (low is None or value >= low) and (above is None or value > above) and (high is None or value <= high)


def _bound(bound: float | str | None, earlier: Mapping[str, Any]) -> float | None:
    return float(earlier[bound]) if isinstance(bound, str) else bound


def _clamp(default: Any, spec: Spec, earlier: Mapping[str, Any]) -> Any:
    high = _bound(spec.high, earlier)
    low = _bound(spec.low, earlier)
    if high is not None and default > high:
        default = type(default)(high)
    if low is not None and default < low:
        default = type(default)(low)
    return default


def _expectation(table: str, f: _Field, low: float | None, above: float | None, high: float | None) -> str:
    spec = f.spec
    if spec.expect:
        return spec.expect
    if f.kind == "bool":
        return "true or false"
    if spec.choices:
        return f"one of {', '.join(spec.choices)}"
    if f.kind == "str":
        return "a string"
    if f.kind == "path":
        return "a path"
    if f.kind == "list":
        return f"a {'non-empty ' if spec.non_empty else ''}list of strings"
    words = "a whole number" if f.kind == "int" else "a number"
    if spec.unit:
        words += f" of {spec.unit}"

    def shown(value: float, bound: float | str | None) -> str:
        text = _amount(value, spec.unit)
        return f"{text} ({_where(table, bound)})" if isinstance(bound, str) else text

    if low is not None and high is not None:
        words += f" from {shown(low, spec.low)} to {shown(high, spec.high)}"
    elif above is not None and high is not None:
        words += f" above {shown(above, spec.above)} and at most {shown(high, spec.high)}"
    elif above is not None:
        words += f" above {shown(above, spec.above)}"
    elif low is not None:
        words += f", {shown(low, spec.low)} or more"
    elif high is not None:
        words += f", {shown(high, spec.high)} or less"
    return f"{words} ({spec.hint})" if spec.hint else words


def _amount(value: float, unit: str) -> str:
    """A bound as a person reads it: 1 GiB rather than 1073741824 bytes; 10 rather than 10.0."""
    if unit == "bytes" and value >= _MIB and value % _MIB == 0:
        return f"{value / 1024**3:g} GiB" if value % 1024**3 == 0 else f"{value / _MIB:g} MiB"
    return str(int(value)) if float(value).is_integer() else repr(float(value))

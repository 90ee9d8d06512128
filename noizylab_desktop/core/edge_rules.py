"""What a request may hold, checked on every message that reaches the gRPC server, before any handler sees it.

The rules walk the message through its protobuf descriptor, so a new RPC or field is covered without an entry here:

- whole numbers (sizes, offsets, counts, generations, nanosecond times) lie within ±2**62, so ``offset + len``
  and ``size * 2`` stay inside a C ``off_t`` and SQLite's integers;
- floating-point numbers are finite; a field named ``timeout_s`` lies from 0 to 30 days;
- strings hold no NUL (they become paths, argv, environment and SQL text), except the clipboard's own text;
- a repeated field (a map included) holds at most 10,000 items.

``FIELDS`` adds bounds for single fields where the generic ones are not tight enough (a port, a monitor, pointer
coordinates, environment keys). A breach raises ``InvalidRequestError`` with one line naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from noizylab_desktop.core.errors import InvalidRequestError

WHOLE_LIMIT = 2**62
MAX_ITEMS = 10_000
MAX_TIMEOUT_S = 30 * 86400.0
MAX_POINTER = 65536.0  # pixels of a received frame: far past any screen, and a product with a width stays finite
PACKAGE = "noizylab.grid.v1."

_WHOLE = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_REAL = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}

# Text that is only ever shown or put on a clipboard, never used as a path, argument or key: NUL may be in it.
MAY_HOLD_NUL = {PACKAGE + "ClipHeader.text", PACKAGE + "ClipHeader.html"}

Check = Callable[[str, Any], None]


def within(low: float, high: float) -> Check:
    """A check that the value lies from ``low`` to ``high``."""

    def check(name: str, value: Any) -> None:
        if not low <= value <= high:
            raise InvalidRequestError(f"{name} must be from {low:g} to {high:g}, not {value!r}")

    return check


def env_key(name: str, key: Any) -> None:
    """An environment variable's name: not empty, no ``=`` (the OS would split it there)."""
    if not key or "=" in key:
        raise InvalidRequestError(f"{name} key {key!r} cannot name an environment variable: use one without '='")


# Extra checks for single fields (map fields: checked on each key).
FIELDS: dict[str, Check] = {
    PACKAGE + "HeartbeatRequest.grpc_port": within(0, 65535),
    PACKAGE + "TaskSpec.env": env_key,
    PACKAGE + "StartSession.monitor": within(0, 64),
    PACKAGE + "StartSession.max_fps": within(0, 240),
    PACKAGE + "SelectMonitor.monitor": within(0, 64),
    PACKAGE + "PointerMove.x": within(-MAX_POINTER, MAX_POINTER),
    PACKAGE + "PointerMove.y": within(-MAX_POINTER, MAX_POINTER),
    PACKAGE + "PointerButton.x": within(-MAX_POINTER, MAX_POINTER),
    PACKAGE + "PointerButton.y": within(-MAX_POINTER, MAX_POINTER),
    PACKAGE + "Key.scancode": within(0, 255 - 8),  # X11 keycodes are evdev codes plus 8, at most 255
    PACKAGE + "Key.keysym": within(0, 0x1FFFFFFF),  # X11 keysyms have 29 bits
    PACKAGE + "Feedback.decode_ms": within(0, 3.6e6),
    PACKAGE + "Feedback.paint_ms": within(0, 3.6e6),
    PACKAGE + "TunnelOpen.port": within(1, 65535),
    PACKAGE + "ForwardRequest.port": within(1, 65535),
    PACKAGE + "ForwardRequest.local_port": within(0, 65535),
    PACKAGE + "StopForwardRequest.port": within(0, 65535),
    PACKAGE + "TunnelRuleRequest.port": within(1, 65535),
}


def check_message(message: Message) -> None:
    """Raise ``InvalidRequestError`` for the first field of ``message`` (nested ones included) out of bounds."""
    if not isinstance(message, Message):
        # A method's own deserialiser handed on a view of a bytes-only message (the tunnel's data frames,
        # services/tunnel/wire.py): bytes have no bounds here, and anything else still arrives parsed.
        return
    _check(message)


def _check(message: Message) -> None:
    for field, value in message.ListFields():
        full = field.full_name
        name = full.removeprefix(PACKAGE)
        if field.is_repeated:
            if len(value) > MAX_ITEMS:
                raise InvalidRequestError(f"{name} holds {len(value)} items: at most {MAX_ITEMS} are allowed")
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _check_map(field, value)
            else:
                for item in value:
                    _check_value(field, item)
        else:
            _check_value(field, value)


def _check_map(field: FieldDescriptor, value: Any) -> None:
    entry = field.message_type
    assert entry is not None
    key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
    extra = FIELDS.get(field.full_name)
    for key, item in value.items():
        _check_value(key_field, key, field.full_name + " key")
        if extra is not None:
            extra(field.full_name.removeprefix(PACKAGE), key)
        _check_value(value_field, item, f"{field.full_name}[{key!r}]")


def _check_value(field: FieldDescriptor, value: Any, full: str | None = None) -> None:
    full = full or field.full_name
    name = full.removeprefix(PACKAGE)
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        _check(value)
        return
    if kind in _WHOLE:
        if not -WHOLE_LIMIT < value < WHOLE_LIMIT:
            raise InvalidRequestError(f"{name} must lie within ±2**62, not {value}")
    elif kind in _REAL:
        if not math.isfinite(value):
            raise InvalidRequestError(f"{name} must be a finite number, not {value!r}")
        if field.name == "timeout_s" and not 0 <= value <= MAX_TIMEOUT_S:
            raise InvalidRequestError(f"{name} must be from 0 (none) to {MAX_TIMEOUT_S:g} seconds, not {value:g}")
    elif kind == FieldDescriptor.TYPE_STRING and "\x00" in value and full not in MAY_HOLD_NUL:
        raise InvalidRequestError(f"{name} holds a NUL character: {value[:40]!r}")
    extra = FIELDS.get(full)
    if extra is not None and field.message_type is None:
        extra(name, value)

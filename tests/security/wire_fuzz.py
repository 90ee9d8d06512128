"""Hostile requests for any RPC, derived from its protobuf descriptors, and a generic caller for them.

``rpcs()`` lists every method of every service in the package's generated modules (and ``grpc.health.v1``), so a
new RPC or field is fuzzed without an entry here. ``requests(method)`` builds a Hypothesis strategy for the
method's request: each field may be absent or hold a value from the hostile set of its type mixed with ordinary
ones — path-like strings with ``..``, absolute paths, links, NUL, line breaks and very long text; whole numbers at
0, -1, 2**31, 2**62, 2**63-1, 2**64-1 where the type holds them; NaN, infinities and -0.0; repeated fields past the
edge's item cap. ``Hints`` lets a test steer single fields (a share ID the node knows, ``mostly``) and shape a
request so it cannot do harm (a task that runs only ``true``). ``Rpc.callable`` calls any of them on a channel.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from hypothesis import strategies as st

import noizylab_desktop._proto as proto_package

PACKAGE = "noizylab.grid.v1."
MAX_ITEMS = 10_000  # the edge's cap on a repeated field (services/edge_rules.py)
MAX_DEPTH = 3  # nested messages deeper than this are left empty

# Names that lead out of a share, loop in it, or name something odd; "link" and "outfile" are links inside the
# test's share that point out of the sync folder.
PATH_PARTS = ("..", ".", "", "a", "a.txt", "shared", "link", "outfile", ".nzversions", ".nzsync-x.tmp", "CON", "é")
HOSTILE_TEXT = (
    "",
    "..",
    "../..",
    "../../../../../../etc/passwd",
    "/etc/passwd",
    "/",
    "//",
    "~",
    "C:\\Windows\\system32",
    "C:/x",
    "\\\\server\\share\\x",
    "a\x00b",
    "\x00",
    "line\nbreak",
    "\r\n",
    "link/escape.txt",
    "outfile",
    "shared/../..",
    "-rf",
    "%s%n%x",
    "${HOME}",
    "' OR 1=1 --",
    "\u202etxt.exe",
    "e\u0301",
    "\ufeff",
    "\U0001f600",
    "x" * 255,
    "x" * 4096,
    "é" * 70_000,
    "\U0001f600" * 5000,
    "a/" * 3000,
)
WHOLE_EDGES = (0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**62 - 1, 2**62, 2**63 - 1, -(2**63), 2**64 - 1)
REAL_EDGES = (0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324, 2.0**63)

_INT_RANGE = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


@dataclass(frozen=True)
class Rpc:
    """One method of one service: ``Sync.PutStream`` and how to call it."""

    service: str  # full name, e.g. noizylab.grid.v1.Sync
    method: MethodDescriptor

    @property
    def name(self) -> str:
        return f"{self.service.rpartition('.')[2]}.{self.method.name}"

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def streams_in(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def streams_out(self) -> bool:
        return bool(self.method.server_streaming)

    def callable(self, chan: grpc.Channel) -> Any:
        """The blocking multi-callable for this method on ``chan``."""
        reply = GetMessageClass(self.method.output_type)
        kind = {
            (False, False): chan.unary_unary,
            (False, True): chan.unary_stream,
            (True, False): chan.stream_unary,
            (True, True): chan.stream_stream,
        }[(self.streams_in, self.streams_out)]
        return kind(self.path, request_serializer=type(self).serialize, response_deserializer=reply.FromString)

    @staticmethod
    def serialize(message: Message) -> bytes:
        return message.SerializeToString()


def rpcs() -> Iterator[Rpc]:
    """Every RPC of the package's generated modules, plus the standard health service."""
    modules = [health_pb2]
    for info in pkgutil.iter_modules(proto_package.__path__):
        if info.name.endswith("_pb2"):
            modules.append(importlib.import_module(f"{proto_package.__name__}.{info.name}"))
    for module in modules:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield Rpc(service.full_name, method)


@dataclass(frozen=True)
class Hints:
    """Steering for one test: strategies by field name (``share_id``, or ``StartSession.monitor`` for one message's)
    that replace the generic ones (for a repeated or map field, the strategy gives the whole list or dict)."""

    fields: Mapping[str, st.SearchStrategy[Any]] = field(default_factory=dict)
    present: frozenset[str] = frozenset()  # field names always set (where a message has them)


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else ``other`` (``st.one_of`` would weigh each of their branches alike)."""
    return st.sampled_from((True, True, True, False)).flatmap(lambda pick: usual if pick else other)


def path_like() -> st.SearchStrategy[str]:
    """Slash-joined names that climb, loop, name links or go absolute."""
    parts = st.lists(st.sampled_from(PATH_PARTS), min_size=1, max_size=6).map("/".join)
    return st.one_of(parts, parts.map(lambda p: "/" + p), parts.map(lambda p: p.replace("/", "\\")))


def hostile_text() -> st.SearchStrategy[str]:
    """Strings from ``HOSTILE_TEXT``, path-like ones, and any text."""
    return st.one_of(st.sampled_from(HOSTILE_TEXT), path_like(), st.text(max_size=40))


def wholes(kind: int = FieldDescriptor.TYPE_INT64) -> st.SearchStrategy[int]:
    """Whole numbers of the field type ``kind``: its edges, 2**62 and the like, and ordinary ones."""
    low, high = _INT_RANGE[kind]
    edges = [v for v in WHOLE_EDGES if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(-10, 300).filter(lambda v: low <= v))


def reals(kind: int = FieldDescriptor.TYPE_DOUBLE) -> st.SearchStrategy[float]:
    """Floating-point values: NaN, infinities, -0.0, extremes and ordinary ones."""
    width = 32 if kind == FieldDescriptor.TYPE_FLOAT else 64
    return st.one_of(st.sampled_from(REAL_EDGES), st.floats(width=width), st.floats(-2000, 2000, width=width))


def _scalar(f: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    kind = f.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        assert f.message_type is not None
        return messages(f.message_type, hints, depth + 1)
    if kind in _INT_RANGE:
        return wholes(kind)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return reals(kind)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return hostile_text()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from([b"\0" * 32, b"\xff" * 32, b"x" * 3_000_000]))
    if kind == FieldDescriptor.TYPE_ENUM:
        assert f.enum_type is not None
        return st.one_of(st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-(2**31), 2**31 - 1))
    raise AssertionError(f"no strategy for {f.full_name} (type {kind})")


def _filler(f: FieldDescriptor) -> Any:
    """A small value of ``f``'s type, repeated to make a long list cheaply."""
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        assert f.message_type is not None
        return GetMessageClass(f.message_type)()
    return {FieldDescriptor.TYPE_STRING: "..", FieldDescriptor.TYPE_BYTES: b"x", FieldDescriptor.TYPE_BOOL: True}.get(
        f.type, 1
    )


def _many(f: FieldDescriptor, item: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """A few items, or as many as the edge allows, or one more."""
    long = st.sampled_from([MAX_ITEMS, MAX_ITEMS + 1]).map(lambda n: [_filler(f)] * n)
    return st.one_of(st.lists(item, max_size=3), long)


def _field(f: FieldDescriptor, hints: Hints, depth: int) -> st.SearchStrategy[Any]:
    hint = hints.fields.get(f.full_name.removeprefix(PACKAGE), hints.fields.get(f.name))
    if hint is not None:
        return hint
    entry = f.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key = _scalar(entry.fields_by_name["key"], hints, depth)
        value = _scalar(entry.fields_by_name["value"], hints, depth)
        few = st.dictionaries(key, value, max_size=3)
        if entry.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
            return few
        filler = _filler(entry.fields_by_name["value"])
        return st.one_of(few, st.just({f"K{i}": filler for i in range(MAX_ITEMS + 1)}))
    if f.is_repeated:
        return _many(f, _scalar(f, hints, depth))
    return _scalar(f, hints, depth)


def messages(desc: Descriptor, hints: Hints = Hints(), depth: int = 0) -> st.SearchStrategy[Message]:
    """Instances of ``desc`` with any subset of fields set (at most one member of each oneof)."""
    cls = GetMessageClass(desc)
    if depth > MAX_DEPTH:
        return st.just(cls())
    plain = {f.name: _field(f, hints, depth) for f in desc.fields if f.containing_oneof is None}
    always = {name: plain.pop(name) for name in hints.present & plain.keys()}
    oneofs = [
        st.one_of(st.none(), *(_field(f, hints, depth).map(lambda v, n=f.name: (n, v)) for f in one.fields))
        for one in desc.oneofs
    ]
    return st.builds(_build, st.just(cls), st.fixed_dictionaries(always, optional=plain), st.tuples(*oneofs))


def _build(cls: Callable[..., Message], plain: dict[str, Any], chosen: tuple[tuple[str, Any] | None, ...]) -> Message:
    values = dict(plain)
    values.update(pair for pair in chosen if pair is not None)
    return cls(**values)


def requests(
    rpc: Rpc, hints: Hints = Hints(), lead: st.SearchStrategy[Message] | None = None
) -> st.SearchStrategy[Any]:
    """One request for a unary-request RPC; for a client stream a short list of messages, often starting with one
    from ``lead`` (a plausible first message, so that the handler reads on)."""
    one = messages(rpc.method.input_type, hints)
    if not rpc.streams_in:
        return one
    some = st.lists(one, max_size=3)
    if lead is None:
        return some
    return mostly(st.tuples(lead, some).map(lambda pair: [pair[0], *pair[1]]), some)

"""How every command prints: JSON for scripts, lists with a line for "none yet", one-line messages on stderr, times.

Commands print what a person reads on stdout and what is about the run itself (errors, warnings, notices) on stderr
with the ``noizylab:`` prefix, so that ``--json`` output and a remote command's own output stay parseable.
"""

from __future__ import annotations

import argparse
import codecs
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

JSON_HELP = "print JSON for scripts"


def add_json_flag(parser: argparse.ArgumentParser, help: str = JSON_HELP) -> None:
    """The ``--json`` option every listing and status command takes."""
    parser.add_argument("--json", action="store_true", help=help)


def tolerate_unencodable(stream: object) -> None:
    """Let ``stream`` write characters its encoding lacks as ``?`` instead of failing the command.

    On Windows a redirected or piped stdout uses the ANSI code page (cp1252 and the like, with Python's
    ``surrogateescape``, which only helps undecodable bytes), which has no ``↔``, ``✓`` or most of a peer's possible
    names: ``noizylab share add`` failed with a traceback after the share was added (the Windows tier found it).
    JSON output is ASCII (``json.dumps``' default), so scripts lose nothing. A UTF-8 stream is left as it is.
    """
    if isinstance(stream, io.TextIOWrapper) and not codecs.lookup(stream.encoding).name.startswith("utf"):
        stream.reconfigure(errors="replace")


def print_json(data: object, *, one_line: bool = False, flush: bool = False) -> None:
    """``data`` as JSON: indented for a listing, or ``one_line`` where a script reads it as a single line."""
    print(json.dumps(data) if one_line else json.dumps(data, indent=2), flush=flush)


def print_listing(
    items: Sequence[T],
    *,
    as_json: bool,
    row: Callable[[T], object],
    line: Callable[[T], str],
    empty: str,
    header: str = "",
) -> None:
    """A JSON array of ``row(item)``, or a line per item (under ``header``), or ``empty`` when there are none."""
    if as_json:
        print_json([row(item) for item in items])
    elif not items:
        print(empty)
    else:
        if header:
            print(header)
        for item in items:
            print(line(item))


def error(message: str) -> None:
    """A one-line error on stderr, as ``main`` prints every ``NoizyLabError``."""
    print(f"noizylab: error: {message}", file=sys.stderr, flush=True)


def warning(message: str) -> None:
    """A one-line warning on stderr."""
    print(f"noizylab: warning: {message}", file=sys.stderr, flush=True)


def notice(message: str) -> None:
    """A one-line note about the run on stderr (where a task runs, that it is being cancelled)."""
    print(f"noizylab: {message}", file=sys.stderr, flush=True)


def progress(message: str) -> None:
    """A line on stderr, unprefixed, that says what a long command is doing."""
    print(message, file=sys.stderr, flush=True)


def write_raw(stream: str, data: bytes) -> None:
    """A remote command's own output, byte for byte, to our ``stream`` ("stdout" or "stderr") as it arrives."""
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.buffer.write(data)
    out.flush()


def timestamp(at: float | None, *, seconds: bool = False, missing: str = "-") -> str:
    """``at`` (Unix time) as local ``YYYY-MM-DD HH:MM[:SS]``, or ``missing`` when it is unset (0 or None)."""
    if not at:
        return missing
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(at))


def clock(at: float) -> str:
    """``at`` (Unix time) as local ``HH:MM``, for something that happened recently."""
    return time.strftime("%H:%M", time.localtime(at))

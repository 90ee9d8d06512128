"""``noizylab view PEER``: a peer's screen in a window, or recorded to an MP4 file with no window."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.core.words import plural


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``view``."""
    parser = sub.add_parser("view", help="see (and control) a paired peer's screen")
    parser.add_argument("peer", help="its ID, the start of its ID, or its name")
    parser.add_argument("--monitor", type=int, default=0, metavar="N", help="which of its monitors (1, 2, ...)")
    parser.add_argument("--view-only", action="store_true", help="send no keyboard or mouse input")
    parser.add_argument("--record", type=Path, metavar="FILE", help="save the stream to FILE.mp4 with no window")
    parser.add_argument("--duration", type=float, metavar="S", help="with --record: stop after S seconds")
    add_json_flag(parser, help="with --record: print a summary as JSON")
    parser.set_defaults(handler=_view)


def _check(args: argparse.Namespace) -> None:
    if args.monitor < 0:
        raise ConfigError(f"--monitor must be 1 or more, not {args.monitor}")
    if args.duration is not None and args.record is None:
        raise ConfigError("--duration only applies to --record FILE.mp4")
    if args.duration is not None and not 0 < args.duration <= 24 * 3600:
        raise ConfigError(f"--duration must be more than 0 seconds (and at most a day), not {args.duration}")


def _view(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    _check(args)
    if args.record is None:
        from noizylab_desktop.ui.display_viewer import run_viewer

        return run_viewer(paths, settings, args.peer, args.monitor, control=not args.view_only)
    import asyncio

    from noizylab_desktop.services.display.recording import record

    done = asyncio.run(record(paths, settings, args.peer, args.record, args.monitor, args.duration))
    if args.json:
        print_json(dataclasses.asdict(done))
    else:
        size = f"{done.width}x{done.height}"
        print(f"recorded {plural(done.frames, 'frame')} ({size}, {done.encoder}) from {done.peer} to {done.file}")
    return 0

"""``noizylab view PEER``: a peer's screen in a window, or recorded to an MP4 file with no window."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import ConfigError, DisplayError, IdentityError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``view``."""
    parser = sub.add_parser("view", help="see (and control) a paired peer's screen")
    parser.add_argument("peer", help="its ID, the start of its ID, or its name")
    parser.add_argument("--monitor", type=int, default=0, metavar="N", help="which of its monitors (1, 2, ...)")
    parser.add_argument("--view-only", action="store_true", help="send no keyboard or mouse input")
    parser.add_argument("--record", type=Path, metavar="FILE", help="save the stream to FILE.mp4 with no window")
    parser.add_argument("--duration", type=float, metavar="S", help="with --record: stop after S seconds")
    parser.add_argument("--json", action="store_true", help="with --record: print a summary as JSON")
    parser.set_defaults(handler=_view)


def _check(args: argparse.Namespace) -> None:
    if args.monitor < 0:
        raise ConfigError(f"--monitor must be 1 or more, not {args.monitor}")
    if args.duration is not None and args.record is None:
        raise ConfigError("--duration only applies to --record FILE.mp4")
    if args.duration is not None and not 0 < args.duration <= 24 * 3600:
        raise ConfigError(f"--duration must be more than 0 seconds (and at most a day), not {args.duration}")


async def connect(paths: Paths, settings: Settings, peer: str) -> tuple[Any, str]:
    """A pinned mTLS channel straight to ``peer`` (its address and certificate come from our node) and its name."""
    from noizylab_desktop._proto import noizylab_display_pb2 as dpb
    from noizylab_desktop._proto import noizylab_display_pb2_grpc as dpb_grpc
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core import identity as identity_mod
    from noizylab_desktop.core.local_client import LocalClient
    from noizylab_desktop.core.secrets import KeyringStore, Vault
    from noizylab_desktop.core.transport import secure_channel

    async with LocalClient(paths, settings) as node:
        location = await node.call(dpb_grpc.DisplayStub(node.channel).Locate, pb.PeerRef(peer=peer))
    assert isinstance(location, dpb.PeerLocation)
    if not location.online or not location.address:
        raise DisplayError(f"{location.name} is offline: start its node, then view it again")

    def load() -> identity_mod.Identity:
        key = Vault(KeyringStore(settings.keychain_id), paths.vault_dir).get(identity_mod.TLS_KEY)
        if key is None:
            raise IdentityError(f"the keychain holds no key for the node in {paths.home or paths.config_dir}")
        return identity_mod.Identity(paths.cert_file.read_bytes(), key, b"", "")

    identity = await asyncio.to_thread(load)
    return secure_channel(identity, location.cert_pem, location.address), location.name


async def record(paths: Paths, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Record ``args.peer``'s screen to ``args.record`` for ``args.duration`` seconds (or until interrupted)."""
    from noizylab_desktop.services.display.client import ViewerSession
    from noizylab_desktop.services.display.recorder import Recorder

    path = Path(args.record).expanduser().resolve()
    if path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise DisplayError(f"cannot record to {path.name}: name the file .mp4 (or .mkv)")
    channel, name = await connect(paths, settings, args.peer)
    async with channel, ViewerSession(channel, name, monitor=args.monitor) as session:
        recorder = Recorder(path, session.info.width, session.info.height)
        started = time.monotonic()
        keepalives = 0
        try:

            async def pump() -> None:
                nonlocal keepalives
                async for frame in session.frames():
                    if frame.data:
                        recorder.write(frame)
                        session.last_seq = frame.seq
                    else:
                        keepalives += 1
                raise DisplayError(f"{name} ended the session")

            if args.duration is None:
                await pump()
            else:
                try:
                    await asyncio.wait_for(pump(), args.duration)
                except TimeoutError:
                    pass
        finally:
            recorder.close()
    return {
        "file": str(path),
        "peer": name,
        "encoder": session.info.encoder,
        "width": session.info.width,
        "height": session.info.height,
        "frames": recorder.frames,
        "keepalives": keepalives,
        "seconds": round(time.monotonic() - started, 3),
    }


def _view(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    _check(args)
    if args.record is not None:
        summary = asyncio.run(record(paths, settings, args))
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(
                f"recorded {summary['frames']} frames ({summary['width']}x{summary['height']}, {summary['encoder']}) "
                f"from {summary['peer']} to {summary['file']}"
            )
        return 0
    from noizylab_desktop.ui.display_viewer import run_viewer

    return run_viewer(paths, settings, args.peer, args.monitor, control=not args.view_only)

"""``noizylab view PEER --record FILE.mp4``: a peer's screen saved to a file for a while, with no window."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from noizylab_desktop.core.config import Paths, Settings
from noizylab_desktop.core.errors import DisplayError
from noizylab_desktop.services.display.client import ViewerSession
from noizylab_desktop.services.display.connect import connect
from noizylab_desktop.services.display.recorder import SUFFIXES, Recorder


@dataclass(frozen=True)
class Recording:
    """What a recording saved (the fields, in this order, are ``view --record --json``'s output)."""

    file: str
    peer: str
    encoder: str
    width: int
    height: int
    frames: int
    keepalives: int  # frames without a picture: the host's keep-alives
    seconds: float


async def record(
    paths: Paths, settings: Settings, peer: str, file: Path, monitor: int = 0, duration_s: float | None = None
) -> Recording:
    """Record ``peer``'s screen to ``file`` for ``duration_s`` seconds (or until the session ends or is cancelled)."""
    path = file.expanduser().resolve()
    # Checked before connecting, so a mistyped name costs no session.
    if path.suffix.lower() not in SUFFIXES:
        raise DisplayError(f"cannot record to {path.name}: name the file .mp4 (or .mkv)")
    channel, name = await connect(paths, settings, peer)
    async with channel, ViewerSession(channel, name, monitor=monitor) as session:
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

            if duration_s is None:
                await pump()
            else:
                try:
                    await asyncio.wait_for(pump(), duration_s)
                except TimeoutError:
                    pass
        finally:
            recorder.close()
    return Recording(
        file=str(path),
        peer=name,
        encoder=session.info.encoder,
        width=session.info.width,
        height=session.info.height,
        frames=recorder.frames,
        keepalives=keepalives,
        seconds=round(time.monotonic() - started, 3),
    )

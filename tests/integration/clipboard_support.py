"""Helpers for the clipboard tests: private Xvfb displays, xclip on a chosen display, and PNG payloads."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
from collections.abc import Iterator

from PIL import Image

from tests.xvfb import Xvfb

START_TIMEOUT_S = 10.0


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A private Xvfb on a free display number; yields its name (``:N``) and stops it afterwards."""
    server = Xvfb()
    try:
        yield server.display
    finally:
        server.stop()  # xclip processes that own a selection end with their server


@contextlib.contextmanager
def display_env(display: str) -> Iterator[None]:
    """Run what starts inside (a background node) on ``display``."""
    before = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = before


def copy(display: str, data: bytes, target: str | None = None) -> None:
    """Copy ``data`` on ``display`` the way a person's app would: xclip becomes the CLIPBOARD owner."""
    extra = ["-t", target] if target else []
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-i", *extra],
        input=data,
        env={**os.environ, "DISPLAY": display},
        check=True,
        timeout=10,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def paste(display: str, target: str | None = None) -> bytes | None:
    """What a paste on ``display`` gives (``None`` when the clipboard has nothing of that type)."""
    extra = ["-t", target] if target else []
    done = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o", *extra],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        timeout=10,
    )
    return done.stdout if done.returncode == 0 else None


def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG that does not compress (random pixels), about ``width * height * 4`` bytes."""
    rng = random.Random(seed)
    image = Image.frombytes("RGBA", (width, height), rng.randbytes(width * height * 4))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def pixels(png: bytes) -> bytes:
    """The decoded RGBA pixels of a PNG."""
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGBA").tobytes()

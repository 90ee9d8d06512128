"""The headless backends against a real X server: what they read, what they write, what they refuse to read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from noizylab_desktop.core.errors import ClipboardError
from noizylab_desktop.services.clipboard.content import Clip
from noizylab_desktop.services.clipboard.fallback import PyperclipBackend
from noizylab_desktop.services.clipboard.headless import headless_backend
from noizylab_desktop.services.clipboard.x11 import X11Backend
from noizylab_desktop.services.clipboard.x11_owner import SelectionOwner
from tests.integration.clipboard_support import copy, display_env, noise_png, paste, xvfb
from tests.slowness import scaled


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb() as name:
        yield name


def test_the_x11_backend_reads_and_writes_every_format_at_once(display: str) -> None:
    async def scenario() -> None:
        backend = X11Backend(display)
        try:
            assert (await backend.read()).clip.empty, "nobody owns the clipboard of a fresh display"
            image = noise_png(300, 300, seed=5)  # over the INCR threshold
            await backend.write(Clip(text="plain ✓", html="<b>rich</b>", png=image))
            assert paste(display) == "plain ✓".encode()
            assert paste(display, "text/html") == b"<b>rich</b>"
            assert paste(display, "image/png") == image
            assert (await backend.read()).clip == Clip(text="plain ✓", html="<b>rich</b>", png=image)
        finally:
            backend.close()

    asyncio.run(scenario())


def test_the_x11_backend_reports_a_marked_copy_as_secret_without_its_content(display: str) -> None:
    async def scenario() -> None:
        backend = X11Backend(display)
        manager = SelectionOwner(display)
        try:
            manager.offer({"UTF8_STRING": b"hunter2", "x-kde-passwordManagerHint": b"secret"})
            snapshot = await backend.read()
            assert snapshot.secret and snapshot.clip.empty
            manager.offer({"UTF8_STRING": b"not secret", "x-kde-passwordManagerHint": b"public"})
            assert (await backend.read()).clip.text == "not secret"
        finally:
            manager.close()
            backend.close()

    asyncio.run(scenario())


def test_the_x11_backend_tells_of_a_new_owner_without_polling(display: str) -> None:
    async def scenario() -> None:
        backend = X11Backend(display)
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            assert backend.watch(lambda: loop.call_soon_threadsafe(changed.set)) is True
            await asyncio.to_thread(copy, display, b"someone copied")
            await asyncio.wait_for(changed.wait(), 5)
            assert (await backend.read()).clip.text == "someone copied"
        finally:
            backend.close()

    asyncio.run(scenario())


def test_the_pyperclip_fallback_is_text_only_and_polled(display: str) -> None:
    async def scenario() -> None:
        backend = PyperclipBackend()
        assert backend.watch(lambda: None) is False
        await backend.write(Clip(text="via pyperclip", png=b"ignored"))
        # xclip's parent returns before its background child owns the selection: a polled backend shows the write
        # at a later poll, and on a busy machine the previous owner can still answer the first one.
        deadline = time.monotonic() + scaled(5)
        while (snapshot := await backend.read()).clip != Clip(text="via pyperclip") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert snapshot.clip == Clip(text="via pyperclip")

    with display_env(display):
        asyncio.run(scenario())
    assert paste(display) == b"via pyperclip"


def test_headless_backend_choice_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ClipboardError, match="no X display here"):
        headless_backend("auto")
    with pytest.raises(ClipboardError, match="needs an X display"):
        headless_backend("x11")
    with pytest.raises(ClipboardError, match="unknown clipboard backend 'wayland'"):
        headless_backend("wayland")

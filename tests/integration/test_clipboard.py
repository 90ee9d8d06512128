"""Clipboard sync between two real nodes, each on its own Xvfb display, driven by xclip as a person's apps would.

The two nodes are shared by the tests of this module (starting and pairing them is the slow part); every test
copies content of its own and puts back any switch it turns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from noizylab_desktop._proto import noizylab_clipboard_pb2 as cpb
from noizylab_desktop._proto import noizylab_clipboard_pb2_grpc as cpb_grpc
from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core.transport import secure_channel
from noizylab_desktop.services.clipboard.x11_owner import SelectionOwner
from tests.conftest import NodeProcess, wait_for
from tests.integration.clipboard_support import copy, display_env, noise_png, paste, pixels, xvfb

ALPHA_CAP = 3 * 1024 * 1024
QUIET_S = 5.0


@dataclass
class Grid:
    alpha: NodeProcess
    beta: NodeProcess
    da: str  # alpha's display
    db: str  # beta's display


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    root: Path = tmp_path_factory.mktemp("clipboard")
    with xvfb() as da, xvfb() as db:
        alpha = NodeProcess(root / "alpha", "alpha", clipboard={"max_bytes": ALPHA_CAP})
        beta = NodeProcess(root / "beta", "beta")
        try:
            with display_env(da):
                alpha.start()
            with display_env(db):
                beta.start()
            beta.join(alpha.invite())
            wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
            wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
            alpha.cli("clip", "on")
            beta.cli("clip", "on", "alpha")
            yield Grid(alpha, beta, da, db)
        finally:
            alpha.stop()
            beta.stop()


def status(node: NodeProcess) -> dict[str, Any]:
    return dict(node.json("clip", "status"))


def counters(node: NodeProcess) -> dict[str, int]:
    return dict(status(node)["counters"])


def arrives(display: str, expected: bytes, target: str | None = None, timeout: float = 10.0) -> None:
    wait_for(lambda: paste(display, target) == expected, timeout, f"{expected[:40]!r} on {display}")


def stays_quiet(nodes: dict[str, NodeProcess], expected: dict[str, dict[str, int]], seconds: float = QUIET_S) -> None:
    """Watch the counters for ``seconds``: they must stay exactly ``expected`` the whole time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, node in nodes.items():
            now = counters(node)
            assert {k: now[k] for k in expected[name]} == expected[name], f"{name} moved: {now}"


def test_text_html_and_an_image_copied_on_one_display_arrive_on_the_other(grid: Grid) -> None:
    copy(grid.da, "héllo from alpha ✓".encode())
    arrives(grid.db, "héllo from alpha ✓".encode())

    copy(grid.da, b"<p>rich <b>text</b></p>", "text/html")
    arrives(grid.db, b"<p>rich <b>text</b></p>", "text/html")
    assert paste(grid.db) == b"rich text", "a plain paste of HTML-only content gets its text"

    image = noise_png(96, 64, seed=1)
    copy(grid.da, image, "image/png")
    wait_for(lambda: (paste(grid.db, "image/png") or b"")[:8] == image[:8], what="the image on beta")
    assert pixels(paste(grid.db, "image/png") or b"") == pixels(image)

    copy(grid.db, b"and back from beta")
    arrives(grid.da, b"and back from beta")
    last = status(grid.alpha)["last"]
    assert last["from"] == "beta" and last["kinds"] == "text"


def test_an_image_over_a_megabyte_travels_in_chunks_and_one_over_the_cap_stays_with_a_notice(grid: Grid) -> None:
    big = noise_png(700, 700, seed=2)  # ~1.9 MB: two gRPC chunks, and INCR on the receiving X server
    assert 1024 * 1024 < len(big) < ALPHA_CAP
    copy(grid.da, big, "image/png")
    wait_for(lambda: paste(grid.db, "image/png") == big, timeout=20, what="the large image on beta")

    before = counters(grid.alpha)
    too_big = noise_png(1000, 1000, seed=3)  # ~3.8 MB, over alpha's 3 MB cap
    copy(grid.da, too_big, "image/png")
    wait_for(lambda: counters(grid.alpha)["skipped_size"] == before["skipped_size"] + 1, what="the skip")
    shown = status(grid.alpha)
    assert "over the 3.0 MB cap" in shown["last_notice"]
    assert counters(grid.alpha)["sends"] == before["sends"]
    assert paste(grid.db, "image/png") == big


def test_one_copy_makes_exactly_one_write_on_the_peer_and_no_echo(grid: Grid) -> None:
    a0, b0 = counters(grid.alpha), counters(grid.beta)
    copy(grid.da, b"copied once")
    arrives(grid.db, b"copied once")
    expected = {
        "alpha": {"copies": a0["copies"] + 1, "sends": a0["sends"] + 1, "writes": a0["writes"]},
        "beta": {"copies": b0["copies"], "sends": b0["sends"], "writes": b0["writes"] + 1},
    }
    stays_quiet({"alpha": grid.alpha, "beta": grid.beta}, expected)


def test_crlf_text_re_copied_with_lf_does_not_loop(grid: Grid) -> None:
    a0, b0 = counters(grid.alpha), counters(grid.beta)
    copy(grid.da, b"line one\r\nline two\r\n")
    arrives(grid.db, b"line one\r\nline two\r\n")
    # An editor on beta normalises the line endings and copies again: the same content, so nothing travels.
    copy(grid.db, b"line one\nline two\n")
    expected = {
        "alpha": {"sends": a0["sends"] + 1, "writes": a0["writes"], "received": a0["received"]},
        "beta": {"copies": b0["copies"], "sends": b0["sends"], "writes": b0["writes"] + 1},
    }
    stays_quiet({"alpha": grid.alpha, "beta": grid.beta}, expected)
    assert paste(grid.da) == b"line one\r\nline two\r\n"


def test_content_offered_with_the_kde_password_hint_never_leaves(grid: Grid) -> None:
    copy(grid.db, b"before the password")
    arrives(grid.da, b"before the password")
    a0, b0 = counters(grid.alpha), counters(grid.beta)
    manager = SelectionOwner(grid.da)  # a password manager: the password plus KDE's hint, in one offer
    try:
        manager.offer({"UTF8_STRING": b"hunter2", "text/plain": b"hunter2", "x-kde-passwordManagerHint": b"secret"})
        assert paste(grid.da) == b"hunter2"
        wait_for(lambda: counters(grid.alpha)["skipped_secret"] > a0["skipped_secret"], what="alpha to keep it")
        assert "password manager" in status(grid.alpha)["last_notice"]
        # The next ordinary copy goes through, so the password was kept back, not merely still on its way.
        copy(grid.da, b"after the password")
        arrives(grid.db, b"after the password")
    finally:
        manager.close()
    assert counters(grid.beta)["received"] == b0["received"] + 1
    assert counters(grid.alpha)["sends"] == a0["sends"] + 1


def test_a_peer_that_turns_sync_off_gets_nothing_and_the_sender_is_told(grid: Grid) -> None:
    grid.beta.cli("clip", "off", "alpha")
    try:
        b0 = counters(grid.beta)
        copy(grid.da, b"not for beta")
        wait_for(lambda: "beta did not take the clip" in status(grid.alpha)["last_notice"], what="the refusal")
        assert "does not allow clipboard" in status(grid.alpha)["last_notice"]
        assert counters(grid.beta)["writes"] == b0["writes"]
        assert paste(grid.db) != b"not for beta"
        assert next(p for p in status(grid.beta)["peers"] if p["name"] == "alpha")["on"] is False
    finally:
        grid.beta.cli("clip", "on", "alpha")


def test_pause_is_remembered_and_a_paused_node_writes_nothing(grid: Grid) -> None:
    shown = grid.beta.cli("clip", "pause").stdout
    assert shown.startswith("clipboard sync: paused")
    try:
        assert "paused = true" in (grid.beta.home / "config.toml").read_text()
        b0 = counters(grid.beta)
        copy(grid.da, b"while beta is paused")
        wait_for(lambda: counters(grid.beta)["received"] == b0["received"] + 1, what="the push to reach beta")
        assert counters(grid.beta)["writes"] == b0["writes"]
        assert paste(grid.db) != b"while beta is paused"
    finally:
        grid.beta.cli("clip", "resume")
    assert "paused = false" in (grid.beta.home / "config.toml").read_text()


def test_a_peer_that_was_down_gets_only_the_latest_clip_when_it_returns(grid: Grid) -> None:
    grid.beta.stop()
    wait_for(lambda: not (grid.alpha.peer("beta") or {}).get("online"), timeout=15, what="beta to be down")
    a0 = counters(grid.alpha)
    for n in range(3):
        copy(grid.da, f"copy {n} while beta is away".encode())
        wait_for(lambda n=n: counters(grid.alpha)["copies"] == a0["copies"] + n + 1, what=f"copy {n} seen")
    assert next(p for p in status(grid.alpha)["peers"] if p["name"] == "beta")["pending"] is True
    with display_env(grid.db):
        grid.beta.start()
    arrives(grid.db, b"copy 2 while beta is away", timeout=20)
    assert counters(grid.beta)["received"] == 1, "one clip, not the backlog of three"
    assert counters(grid.alpha)["sends"] == a0["sends"] + 1


def test_unknown_peers_get_a_one_line_error(grid: Grid) -> None:
    wrong = grid.alpha.cli("clip", "on", "nobody", check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "noizylab: error: no paired peer matches 'nobody': see `noizylab peers`"


def test_a_bad_clipboard_table_stops_the_node_with_one_line_and_keeps_the_file(
    make_node: Callable[..., NodeProcess],
) -> None:
    node = make_node("broken", clipboard={"max_bytes": "lots"})
    started = node.cli("start", check=False)
    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == (
        "noizylab: error: the node exited at start: clipboard.max_bytes must be a whole number of bytes "
        "from 1024 to 1 GiB, not 'lots'"
    )
    assert 'max_bytes = "lots"' in (node.home / "config.toml").read_text()


def test_a_peer_may_not_switch_or_read_another_nodes_clipboard_settings(grid: Grid) -> None:
    async def as_beta() -> list[grpc.StatusCode]:
        codes = []
        address = f"127.0.0.1:{grid.alpha.status()['ports']['grpc']}"
        async with secure_channel(grid.beta.identity(), grid.alpha.identity().cert_pem, address) as channel:
            stub = cpb_grpc.ClipboardStub(channel)
            for call in (
                stub.Status(pb.Empty(), timeout=5),
                stub.SetSync(cpb.ClipSyncRequest(peer="", on=True), timeout=5),
                stub.SetPaused(cpb.ClipPauseRequest(paused=True), timeout=5),
            ):
                try:
                    await call
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
        return codes

    assert asyncio.run(as_beta()) == [grpc.StatusCode.PERMISSION_DENIED] * 3
    assert status(grid.alpha)["paused"] is False

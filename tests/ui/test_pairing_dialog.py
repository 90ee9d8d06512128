"""``Pair a device…``: the dialog shows a code, then the verification string; joining shows it too, or one line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import psutil

from noizylab_desktop.core import invite as codes
from noizylab_desktop.core.discovery.choose import tag_of_code
from noizylab_desktop.node.node import Node
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.pairing_dialog import PairingDialog
from tests.conftest import NOIZYLAB, NodeProcess
from tests.ui.conftest import node_settings
from tests.ui.menus import action
from tests.ui.waiting import Run, eventually, expect, within

TIMEOUT_S = 20.0
CODE_LINE = re.compile(r"\s*([A-Z2-7]{5}(?:-[A-Z2-7]{1,5})+)\s*")
VERIFICATION_LINE = re.compile(r"Verification: (\d{3} \d{3})")


def read_until(stream: IO[str], pattern: re.Pattern[str]) -> str:
    """The first group of the first line of ``stream`` that matches ``pattern`` (blocking: run it in a thread)."""
    for line in stream:
        if found := pattern.fullmatch(line.rstrip("\n")) or pattern.search(line):
            return found.group(1)
    raise AssertionError(f"the output ended before a line matching {pattern.pattern!r}")


def open_connections_to(port: int) -> list[str]:
    """This process's TCP connections to ``port`` on loopback."""
    return [
        f"{c.laddr} -> {c.raddr}" for c in psutil.Process().net_connections("tcp") if c.raddr and c.raddr[1] == port
    ]


async def pairing_probe_closed(code: str) -> None:
    """Wait until the joiner's certificate probe to the inviter's pairing port has closed.

    ``pairing.fetch_certificate`` aborts the probe's connection as soon as it has the certificate; this checks that
    no socket outlives it (a loop closed with one open gives a ResourceWarning, an error under this suite's filters).
    """
    port = codes.decode(code).port
    await eventually(lambda: not open_connections_to(port), TIMEOUT_S, f"the probe to port {port} to close")


def test_pair_a_device_shows_a_code_then_the_verification_string_the_peer_printed(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            dialog = app.tray.pairing
            shown = expect(dialog.code_shown)
            action(app.tray, "Pair a device…").trigger()
            (code,) = await within(shown, TIMEOUT_S, "the dialog to show an invite code")
            assert dialog.isVisible() and dialog.code_label.text() == code
            assert dialog.invite_status.text() == "Waiting for the other machine to join…"

            paired = expect(dialog.invite_paired)
            printed = await asyncio.to_thread(peer.join, code)
            await within(paired, TIMEOUT_S, "the dialog to show that the laptop joined")

            assert printed["verification"] in dialog.invite_status.text()
            assert dialog.invite_status.text().startswith("Paired with laptop. Verification: ")

    run(scenario())


def test_joining_another_machines_code_shows_the_verification_string_that_machine_shows(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()
    inviter = subprocess.Popen(
        [*NOIZYLAB, "--home", str(peer.home), "pair", "invite"], stdout=subprocess.PIPE, text=True
    )
    assert inviter.stdout is not None
    stdout = inviter.stdout

    async def scenario() -> tuple[str, str]:
        # The reading threads end only when the inviter does; the loop's executor waits for them when it closes.
        with contextlib.closing(stdout), killing(inviter):
            return await join_and_compare()

    async def join_and_compare() -> tuple[str, str]:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            dialog: PairingDialog = app.tray.pairing
            app.tray.open_pairing()
            code = await within(asyncio.to_thread(read_until, stdout, CODE_LINE), TIMEOUT_S, "the laptop's code")

            joined = expect(dialog.joined)
            dialog.code_field.setText(code)
            dialog.join_button.click()
            await within(joined, TIMEOUT_S, "the dialog to show that it joined the laptop")
            await pairing_probe_closed(code)

            shown_there = await within(
                asyncio.to_thread(read_until, stdout, VERIFICATION_LINE), TIMEOUT_S, "the laptop's verification line"
            )
            return dialog.join_status.text(), shown_there

    shown_here, shown_there = run(scenario())
    assert shown_here == f"Paired with laptop. Verification: {shown_there} (the other machine shows the same)"


# Discovery on loopback only: announcements and queries never leave the machine.
LOOPBACK_DISCOVERY = {"enabled": True, "interfaces": ["127.0.0.1"], "poll_s": 0.5}


def test_the_dialog_lists_a_nearby_machine_that_is_inviting_and_joins_it_only_with_the_code_it_shows(
    run: Run, tmp_path: Path, make_node: Callable[..., NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk", discovery=LOOPBACK_DISCOVERY)
    peer = make_node("laptop", discovery=LOOPBACK_DISCOVERY).start()
    code = peer.json("pair", "invite", "--no-wait")["code"]
    made = codes.decode(code)
    from_elsewhere = codes.encode(dataclasses.replace(made, fp_prefix=bytes(len(made.fp_prefix))))

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            dialog: PairingDialog = app.tray.pairing
            app.tray.open_pairing()

            def listed() -> list[str]:
                return [dialog.nearby_list.item(i).text() for i in range(dialog.nearby_list.count())]

            rows = [f"127.0.0.1   (tag {tag_of_code(code)})"]
            await eventually(lambda: listed() == rows, TIMEOUT_S, "the dialog to list the inviting laptop")
            dialog.nearby_list.setCurrentRow(0)

            async def refused(typed: str) -> str:
                failed = expect(dialog.join_failed)
                dialog.code_field.setText(typed)
                dialog.join_button.click()
                (message,) = await within(failed, TIMEOUT_S, "the dialog to refuse")
                return str(message)

            # Picking a machine is never enough: its code must be typed, and a code from another machine is refused.
            assert await refused("") == "Type the code shown on the other machine first"
            assert await refused(from_elsewhere) == (
                "That code was made by another machine than the one chosen: type the code it shows"
            )
            assert app.node.trust.peers() == []

            joined = expect(dialog.joined)
            dialog.code_field.setText(code)
            dialog.join_button.click()
            (name, verification) = await within(joined, TIMEOUT_S, "the dialog to join the laptop")
            await pairing_probe_closed(code)
            assert name == "laptop" and dialog.join_status.text().startswith("Paired with laptop. Verification: ")

    run(scenario())
    assert peer.peer("desk") is not None


@contextlib.contextmanager
def killing(process: subprocess.Popen[str]) -> Iterator[None]:
    """Kill ``process`` on the way out, whatever happened."""
    try:
        yield
    finally:
        process.kill()
        process.wait()


def mistyped(code: str) -> str:
    """``code`` with one character changed, as a person might mistype it."""
    at = code.index("-") + 1
    return code[:at] + ("A" if code[at] != "A" else "B") + code[at + 1 :]


def test_a_mistyped_code_is_refused_with_one_line(run: Run, tmp_path: Path) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    code = mistyped(codes.encode(codes.InviteCode.new(os.urandom(32), 50000, ["127.0.0.1"])))

    async def scenario() -> str:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            dialog = app.tray.pairing
            app.tray.open_pairing()
            failed = expect(dialog.join_failed)
            dialog.code_field.setText(code)
            dialog.join_button.click()
            await within(failed, TIMEOUT_S, "the dialog to refuse the code")
            return dialog.join_status.text()

    shown = run(scenario())
    assert shown == "That invite code is mistyped: check it against the inviting machine and type it again"


def test_a_code_with_the_wrong_secret_is_refused_by_the_other_machine_with_one_line(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    peer = make_node("laptop").start()
    real = codes.decode(peer.invite())
    wrong = codes.encode(dataclasses.replace(real, secret=bytes(b ^ 0x5A for b in real.secret)))

    async def scenario() -> tuple[str, bool]:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None
            dialog = app.tray.pairing
            app.tray.open_pairing()
            failed = expect(dialog.join_failed)
            dialog.code_field.setText(wrong)
            dialog.join_button.click()
            await within(failed, TIMEOUT_S, "the dialog to show the laptop's refusal")
            refused_there = await asyncio.to_thread(peer.peer, "desk") is None
            # The refused code leaves the laptop's pairing port open; once the laptop is gone nothing holds the probe.
            await asyncio.to_thread(peer.stop)
            await pairing_probe_closed(wrong)
            return dialog.join_status.text(), refused_there

    shown, refused_there = run(scenario())
    assert shown == "Wrong invite code: check it against the inviting machine, or make a new one"
    assert refused_there

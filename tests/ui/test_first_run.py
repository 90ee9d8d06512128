"""The first-run window, driven as a person would under Xvfb with a second, real node: name this machine, pair
(by the invite code, which the QR code on screen holds too, or by typing the other machine's code, after a TOTP
code where TOTP is on), see the verification string the other machine shows, take the first steps, start at login.
Each page is kept in build/artefacts/screenshots/first-run-*.png."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest

from noizylab_desktop.core.secrets import KeyringStore
from noizylab_desktop.core.totp import Totp
from noizylab_desktop.node import first_run
from noizylab_desktop.node.autostart import entry_name
from noizylab_desktop.node.node import Node
from noizylab_desktop.services.sync.feature import SyncFeature
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.first_run import NAME_PAGE, PAIR_PAGE, STEPS_PAGE, FirstRunWindow
from noizylab_desktop.ui.pairing_dialog import TOTP_ASK
from tests.conftest import NOIZYLAB, NodeProcess, wait_for
from tests.screenshots import keep
from tests.ui.conftest import node_settings
from tests.ui.test_pairing_dialog import CODE_LINE, VERIFICATION_LINE, killing, pairing_probe_closed, read_until
from tests.ui.test_tray_process import running_tray
from tests.ui.waiting import Run, eventually, expect, within

TIMEOUT_S = 20.0


@pytest.fixture
def xdg_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config folder of this test's own: no test writes the machine's real autostart folder."""
    folder = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


def qr_in(screenshot: Path) -> str:
    """What the QR code in ``screenshot`` holds, read by zbar (a decoder that shares nothing with segno)."""
    read = subprocess.run(["zbarimg", "--raw", "-q", str(screenshot)], capture_output=True, text=True, timeout=30)
    assert read.returncode == 0, f"zbarimg found no QR code in {screenshot}"
    return read.stdout.strip()


def window_of(app: TrayApp) -> FirstRunWindow:
    assert app.first_run is not None and app.first_run.isVisible(), "the first-run window is not showing"
    return app.first_run


def test_a_first_run_names_this_machine_pairs_it_by_its_code_and_takes_the_first_steps(
    run: Run, tmp_path: Path, xdg_config: Path, make_node: Callable[..., NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    laptop = make_node("laptop").start()
    projects = tmp_path / "Projects"
    projects.mkdir()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings), first_run=True) as app:
            window = window_of(app)
            assert window.pages.currentIndex() == NAME_PAGE and window.name_field.text() == "desk"
            keep(window, "first-run-1-name")

            window.name_field.setText("studio")
            shown = expect(window.pairing.code_shown)
            window.next_button.click()
            (code,) = await within(shown, TIMEOUT_S, "the window to show an invite code")
            assert window.pages.currentIndex() == PAIR_PAGE and window.next_button.text() == "Skip"
            assert app.node.settings.name == "studio"  # applied as `noizylab rename` applies it
            label = window.pairing.code_label
            await eventually(
                lambda: label.visibleRegion().boundingRect().width() >= label.sizeHint().width(),
                5,
                "the window to show the whole code",
            )
            assert qr_in(keep(window, "first-run-2-invite")) == code

            paired = expect(window.paired)
            printed = await asyncio.to_thread(laptop.join, code)
            (name, verification) = await within(paired, TIMEOUT_S, "the window to show that the laptop joined")
            assert (name, verification) == ("laptop", printed["verification"])
            assert window.verification.text() == (
                f"Paired with laptop. Verification: {verification}. The other machine shows the same number."
            )
            assert window.next_button.text() == "Next"
            keep(window, "first-run-3-paired")

            window.next_button.click()
            assert window.pages.currentIndex() == STEPS_PAGE and window.next_button.text() == "Finish"
            assert [box.text() for box in (window.tasks_box, window.share_box, window.clipboard_box)] == [
                "Let laptop run tasks on this machine",
                "Share a folder with laptop",
                "Share the clipboard with laptop",
            ]
            assert not window.tasks_box.isChecked() and not window.share_box.isChecked()
            assert window.clipboard_box.isChecked() and window.autostart_box.isChecked()  # on by default
            window.tasks_box.setChecked(True)
            window.share_box.setChecked(True)
            refused = expect(window.failed)
            window.next_button.click()
            (message,) = await within(refused, TIMEOUT_S, "the window to ask for a folder")
            assert message == "Choose the folder to share first, or untick Share a folder"
            assert not first_run.is_done(paths)

            window.folder_field.setText(str(projects))
            await asyncio.to_thread(laptop.cli, "allow", "studio", "sync")  # the laptop's own first step
            finished = expect(window.finished_steps)
            window.next_button.click()
            (outcomes,) = await within(finished, TIMEOUT_S, "the window to apply the first steps")
            keep(window, "first-run-4-done")
            assert [(o.ok, o.line) for o in outcomes] == [
                (True, "laptop may run tasks here"),
                (True, "Clipboard shared with laptop (once it turns it on too)"),
                (True, f"{projects} is kept in sync with laptop"),
                (True, "Start at login: on"),
            ]
            assert window.status.text() == "All set." and window.next_button.text() == "Close"

            peer = app.node.trust.find("laptop")
            allowed = app.node.permissions.for_peer(peer.fingerprint)
            assert {scope for scope, on in allowed.items() if on} == {"tasks", "clipboard", "sync"}
            sync = app.node.feature(SyncFeature)
            assert sync is not None and [s.local for s in sync.manager.store.shares()] == [str(projects)]
            assert (xdg_config / "autostart" / f"{entry_name(paths)}.desktop").exists()
            assert first_run.is_done(paths)

            window.next_button.click()
            assert not window.isVisible()

    run(scenario())
    # The laptop paired with the machine under the name given on the first page.
    assert laptop.peer("studio") is not None


def test_joining_from_the_first_run_asks_for_a_totp_code_first_and_shows_the_inviters_verification_string(
    run: Run, tmp_path: Path, xdg_config: Path, make_node: Callable[..., NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    totp = Totp(KeyringStore(settings.keychain_id), paths.state_dir)
    enrolment = totp.enrol("desk")
    totp.confirm(enrolment, pyotp.TOTP(enrolment.secret).now())
    laptop = make_node("laptop").start()
    inviter = subprocess.Popen(
        [*NOIZYLAB, "--home", str(laptop.home), "pair", "invite"], stdout=subprocess.PIPE, text=True
    )
    assert inviter.stdout is not None
    stdout = inviter.stdout

    async def scenario() -> tuple[str, str]:
        with contextlib.closing(stdout), killing(inviter):
            return await join_with_totp()

    async def join_with_totp() -> tuple[str, str]:
        async with TrayApp(Node(paths, settings), first_run=True) as app:
            window = window_of(app)
            pairing = window.pairing
            asked = expect(pairing.totp_asked)
            window.next_button.click()
            # Making this machine's own code asks for TOTP first, as `noizylab pair invite` does.
            assert await within(asked, TIMEOUT_S, "the window to ask for a TOTP code") == ("invite",)
            assert pairing.totp_field.isVisible() and pairing.invite_status.text() == TOTP_ASK
            assert pairing.code_label.text() == "…"

            code = await within(asyncio.to_thread(read_until, stdout, CODE_LINE), TIMEOUT_S, "the laptop's code")
            asked = expect(pairing.totp_asked)
            pairing.code_field.setText(code)
            pairing.join_button.click()
            assert await within(asked, TIMEOUT_S, "joining to ask for the TOTP code") == ("join",)
            assert pairing.join_status.text() == TOTP_ASK
            assert app.node.trust.peers() == []  # nothing was tried without the code
            keep(window, "first-run-totp")

            joined = expect(window.paired)
            # The next time step's code (one step either side is accepted; the current one was used at setup).
            pairing.totp_field.setText(pyotp.TOTP(enrolment.secret).at(time.time() + 30))
            pairing.totp_field.returnPressed.emit()
            (name, verification) = await within(joined, TIMEOUT_S, "the window to join the laptop")
            await pairing_probe_closed(code)
            assert not pairing.totp_field.isVisible()

            window.next_button.click()
            window.tasks_box.setChecked(True)  # granting tasks asks for a step-up too: the pairing's still holds
            finished = expect(window.finished_steps)
            window.next_button.click()
            (outcomes,) = await within(finished, TIMEOUT_S, "the window to apply the first steps")
            assert all(o.ok for o in outcomes), [o.line for o in outcomes]
            peer = app.node.trust.find("laptop")
            assert app.node.permissions.allowed(peer.fingerprint, "tasks")
            shown_there = await within(
                asyncio.to_thread(read_until, stdout, VERIFICATION_LINE), TIMEOUT_S, "the laptop's verification line"
            )
            return verification, shown_there

    shown_here, shown_there = run(scenario())
    assert shown_here == shown_there


def test_skipping_pairing_finishes_the_first_run_and_it_does_not_open_again(
    run: Run, tmp_path: Path, xdg_config: Path
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")

    async def first() -> None:
        async with TrayApp(Node(paths, settings), first_run=True) as app:
            window = window_of(app)
            window.next_button.click()
            assert window.next_button.text() == "Skip"
            window.next_button.click()
            assert window.pages.currentIndex() == STEPS_PAGE
            assert not window.tasks_box.isVisible() and window.autostart_box.isVisible()
            window.autostart_box.setChecked(False)
            finished = expect(window.finished_steps)
            window.next_button.click()
            (outcomes,) = await within(finished, TIMEOUT_S, "the window to finish")
            assert [(o.ok, o.line) for o in outcomes] == [(True, "Start at login: off")]

    async def again() -> None:
        async with TrayApp(Node(paths, settings), first_run=True) as app:
            assert app.first_run is None

    run(first())
    assert first_run.is_done(paths) and not (xdg_config / "autostart").exists()
    run(again())


def test_the_app_opens_the_first_run_window_on_a_home_without_peers(
    x_display: str, xdg_config: Path, make_node: Callable[..., NodeProcess]
) -> None:
    desk = make_node("desk")

    def windows_called(title: str) -> list[str]:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], capture_output=True, text=True)
        return found.stdout.split()

    with running_tray(desk, x_display):
        wait_for(lambda: windows_called("Welcome to NOIZYLAB"), 15, "the first-run window to show")
        desk.stop()

"""With TOTP on, every tray action the command line protects with ``--totp CODE`` asks for a code in one small
dialog first: granting control, display or tasks, unpairing, pairing (making a code and joining), and allowing a
peer to view this screen. A wrong or missing code refuses the action with the command line's one-line message; a
good one is used once and starts a five-minute step-up, as on the command line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pyotp
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from noizylab_desktop.node.node import Node
from noizylab_desktop.services.display.feature import Consent
from noizylab_desktop.ui.app import TrayApp
from noizylab_desktop.ui.display_tray import ConsentDialog, DisplayTray
from noizylab_desktop.ui.notify import Notifier
from noizylab_desktop.ui.step_up import CodeDialog
from noizylab_desktop.ui.tray import Tray
from tests.conftest import NodeProcess
from tests.ui.conftest import node_settings
from tests.ui.waiting import Run, eventually, expect, within


def code_dialog() -> CodeDialog | None:
    """The code dialog on screen, if one is."""
    shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, CodeDialog) and w.isVisible()]
    return shown[0] if shown else None


async def asked(what: str) -> CodeDialog:
    dialog = await eventually(code_dialog, 10, f"the code dialog for {what}")
    assert dialog.what == what
    return dialog


def switch(tray: Tray, peer: str, scope: str) -> QAction:
    """The permission switch for ``scope`` in ``peer``'s submenu, as the menu shows it now."""
    tray.menu.aboutToShow.emit()
    row = next(a for a in tray.menu.actions() if a.text().startswith(peer))
    assert row.menu() is not None
    return next(a for a in row.menu().actions() if a.data() == scope)


def told(notifier: Notifier, body: str) -> bool:
    """Whether ``notifier`` showed a notification whose text is ``body``."""
    return any(shown_body == body for _how, _title, shown_body in notifier.shown)


def test_tray_actions_the_command_line_protects_ask_for_a_totp_code(
    run: Run, tmp_path: Path, make_node: Callable[[str], NodeProcess]
) -> None:
    paths, settings = node_settings(tmp_path / "desk", "desk")
    laptop = make_node("laptop").start()

    async def scenario() -> None:
        async with TrayApp(Node(paths, settings)) as app:
            assert app.tray is not None and app.bridge is not None
            tray, node = app.tray, app.node
            code, _ = await node.create_invite([])
            online = expect(app.bridge.peer_online)
            await asyncio.to_thread(laptop.join, code)
            await within(online, 20, "the tray's node to see the laptop online")
            [peer] = node.trust.peers()

            enrolment = node.totp.enrol("desk")
            app_codes = pyotp.TOTP(enrolment.secret)
            node.totp.confirm(enrolment, app_codes.now())  # TOTP is on; setting it up starts no step-up
            near = {app_codes.at(time.time() + 30 * step) for step in (-1, 0, 1)}
            wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)

            # Granting control: a wrong code is refused with the command line's words, and the switch stays off.
            switch(tray, "laptop", "control").trigger()
            (await asked("granting control")).code.setText(wrong)
            code_dialog().accept()  # type: ignore[union-attr]
            await eventually(
                lambda: told(tray.notifier, "wrong TOTP code (4 tries left in 5 minutes)"), 10, "the refusal"
            )
            assert not node.permissions.allowed(peer.fingerprint, "control")
            assert not switch(tray, "laptop", "control").isChecked()

            # Unpairing: cancelling the dialog refuses, and the laptop stays paired.
            tray.confirm = lambda question: True
            tray.unpair(peer.node_id, "laptop")
            (await asked("removing a device")).reject()
            needed = "removing a device needs a TOTP code from your authenticator app"
            await eventually(lambda: told(tray.notifier, needed), 10, "the unpair refusal")
            assert [p.name for p in node.trust.peers()] == ["laptop"]

            # Pairing: making a code and joining with one both ask (the dialog capitalises its lines).
            failed = expect(tray.pairing.invite_failed)
            tray.open_pairing()
            (await asked("pairing a device")).reject()
            assert (await within(failed, 10, "the invite refusal")) == (
                "Pairing a device needs a TOTP code from your authenticator app",
            )
            failed = expect(tray.pairing.join_failed)
            tray.pairing.code_field.setText("ABCDE-FGHIJ")
            tray.pairing.join_button.click()
            (await asked("pairing a device")).reject()
            assert (await within(failed, 10, "the join refusal"))[0].startswith("Pairing a device needs a TOTP code")
            tray.pairing.reject()

            # Letting the laptop view this screen grants display: the consent dialog, then the code.
            display = next(e for e in tray.extensions if isinstance(e, DisplayTray))
            consent = asyncio.ensure_future(display.ask(peer, False))
            consent_dialog = await eventually(lambda: display.dialogs and display.dialogs[0], 10, "the consent dialog")
            assert isinstance(consent_dialog, ConsentDialog)
            consent_dialog.view_only.click()
            (await asked("granting display")).reject()
            assert await within(consent, 10, "the consent answer") == Consent(view=False)
            declined = "granting display needs a TOTP code from your authenticator app"
            await eventually(lambda: told(display.notifier, declined), 10, "the consent refusal")

            # A good code grants, once; its step-up spares the next grant a code.
            switch(tray, "laptop", "control").trigger()
            (await asked("granting control")).code.setText(app_codes.at(time.time() + 30))
            code_dialog().accept()  # type: ignore[union-attr]
            await eventually(lambda: node.permissions.allowed(peer.fingerprint, "control"), 10, "control granted")
            switch(tray, "laptop", "tasks").trigger()
            await eventually(lambda: node.permissions.allowed(peer.fingerprint, "tasks"), 10, "tasks granted")
            assert code_dialog() is None

    run(scenario())

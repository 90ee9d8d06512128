"""The tray's TOTP step-up: one small dialog that asks for a code before an action the command line protects with
``--totp CODE`` (pairing, unpairing, granting ``control``, ``display`` or ``tasks``; ``docs/trust.md``).

The tray calls its node in-process, so it checks the code itself, with the same ``Totp`` the node's own API uses:
the same rules (once per time step, five tries in five minutes, a step-up of five minutes that spares further
codes) and the same one-line refusals. Nothing is asked while TOTP is off or a step-up holds.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from noizylab_desktop.core.errors import NoizyLabError, StepUpNeeded
from noizylab_desktop.core.totp import Totp


class CodeDialog(QDialog):
    """``WHAT needs a code from your authenticator app``: one field, OK and Cancel."""

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("NOIZYLAB — authenticator code")
        self.what = what
        label = QLabel(f"{what[:1].upper()}{what[1:]} needs a code from your authenticator app (or a recovery code).")
        label.setWordWrap(True)
        self.code = QLineEdit()
        self.code.setPlaceholderText("123456")
        self.code.setMaxLength(20)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.code)
        layout.addWidget(buttons)


async def ask_code(what: str) -> str | None:
    """The code typed into a ``CodeDialog``, or None when it was cancelled or left empty."""
    dialog = CodeDialog(what)
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def done(result: int) -> None:
        if not answered.done():
            answered.set_result(result == QDialog.DialogCode.Accepted)

    dialog.finished.connect(done)
    dialog.open()
    try:
        accepted = await answered
        code = dialog.code.text().strip()
    finally:
        dialog.hide()
        dialog.deleteLater()
    return code if accepted and code else None


async def step_up(totp: Totp, what: str) -> str | None:
    """None when the action ``what`` ("granting control") may go ahead; else the one-line refusal to show.

    Asks for a code only when TOTP is on and no step-up holds; a good code starts a step-up, as on the command line.
    """
    try:
        await asyncio.to_thread(totp.require, None, what)
        return None
    except StepUpNeeded as exc:
        # The command line's words, less its "run it again with --totp CODE": here the dialog is how.
        needed = exc.message.split(":", 1)[0]
    except NoizyLabError as exc:
        return exc.message
    code = await ask_code(what)
    if code is None:
        return needed
    try:
        await asyncio.to_thread(totp.require, code, what)
    except NoizyLabError as exc:
        return exc.message
    return None

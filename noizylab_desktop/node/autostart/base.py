"""The interface every start-at-login backend has (``node/autostart/``): its states and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# on: starts at login; off: does not; stale: an entry is there but starts another command (the app moved);
# needs approval: registered, but macOS waits for the person to allow it in System Settings → Login Items;
# disabled: Windows' Task Manager (Startup apps) switched the entry off.
State = Literal["on", "off", "stale", "needs approval", "disabled"]
APP_LABEL = "NOIZYLAB"


@dataclass(frozen=True)
class AutostartStatus:
    """What ``autostart status`` shows: the state, where the entry lives, and what the person may do about it."""

    state: State
    where: str
    command: tuple[str, ...] = ()
    hint: str = ""

    @property
    def on(self) -> bool:
        """Whether the switch shows as ticked: the entry is there, even if it still waits for approval."""
        return self.state in ("on", "needs approval")

    def line(self) -> str:
        """``start at login: on (~/.config/autostart/noizylab.desktop)`` and the hint, if any."""
        text = f"start at login: {self.state} ({self.where})"
        return f"{text}: {self.hint}" if self.hint else text


class Autostart(Protocol):
    """One OS's way to start the tray at login."""

    def status(self) -> AutostartStatus:
        """The state as the OS has it now."""
        ...

    def enable(self) -> AutostartStatus:
        """Start the tray of this home at login (rewriting a stale entry); the state after."""
        ...

    def disable(self) -> AutostartStatus:
        """Stop starting it at login; the state after (``off``, also when it was off already)."""
        ...

"""The first run: name this machine, pair it with another, take the common first steps, start at login.

The tray opens its first-run window (``ui/first_run.py``) and a first ``noizylab node`` or ``noizylab start`` at a
terminal asks the same in a few prompts (``cli/first_run.py``) while this home has no peer and its first run is not
done. Finishing either writes ``first-run.json`` in the state folder; from then on neither asks again, whatever
happens to the peers (a person who unpaired everything does not want the wizard back).

The steps (``FirstSteps``) are applied here for a node in this process (the window): ``tasks`` asks for a TOTP
step-up where TOTP is on, as ``noizylab allow PEER tasks`` does, and it is checked before anything changes, so a
missing code leaves nothing half done.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from noizylab_desktop.core.config import Paths, atomic_write
from noizylab_desktop.core.errors import NoizyLabError

if TYPE_CHECKING:
    from noizylab_desktop.node.autostart import Autostart
    from noizylab_desktop.node.node import Node

FILE = "first-run.json"


@dataclass(frozen=True)
class FirstSteps:
    """What the person ticked for the peer just paired (``share_folder``: a folder to keep in sync, or empty)."""

    allow_tasks: bool = False
    share_folder: str = ""
    clipboard: bool = True
    autostart: bool = True


@dataclass(frozen=True)
class StepOutcome:
    """One step as applied: whether it worked, in one line for the person."""

    ok: bool
    line: str


def is_done(paths: Paths) -> bool:
    """Whether this home's first run was finished (in the window or at a terminal)."""
    return (paths.state_dir / FILE).exists()


def needed(paths: Paths, peers: int) -> bool:
    """Whether to offer the first run: not done yet, and no peer paired."""
    return peers == 0 and not is_done(paths)


def mark_done(paths: Paths, where: str) -> None:
    """Remember that the first run is done (``where``: ``window`` or ``terminal``), atomically."""
    atomic_write(paths.state_dir / FILE, json.dumps({"done_at": time.time(), "where": where}).encode(), mode=0o644)


def set_autostart(autostart: Autostart, on: bool) -> StepOutcome:
    """Turn start at login on or off, as one outcome line."""
    try:
        status = autostart.enable() if on else autostart.disable()
    except NoizyLabError as exc:
        return StepOutcome(False, f"Start at login: {exc.message}")
    hint = f" ({status.hint})" if status.hint else ""
    return StepOutcome(status.on == on, f"Start at login: {status.state}{hint}")


async def apply_steps(
    node: Node, peer_id: str, steps: FirstSteps, autostart: Autostart, totp_code: str | None = None
) -> list[StepOutcome]:
    """Apply ``steps`` for the peer ``peer_id`` on ``node``; ``StepUpNeeded`` (nothing changed) when ``tasks`` needs a
    TOTP code that ``totp_code`` does not give."""
    import asyncio  # here: `noizylab start` imports this module to ask its questions, and needs no loop

    if steps.allow_tasks:
        await asyncio.to_thread(node.totp.require, totp_code, "granting tasks")
    peer = node.trust.find(peer_id)
    outcomes: list[StepOutcome] = []
    if steps.allow_tasks:
        node.permissions.set(peer.fingerprint, "tasks", True, peer.node_id)
        outcomes.append(StepOutcome(True, f"{peer.name} may run tasks here"))
    if steps.clipboard:
        node.permissions.set(peer.fingerprint, "clipboard", True, peer.node_id)
        outcomes.append(StepOutcome(True, f"Clipboard shared with {peer.name} (once it turns it on too)"))
    if steps.share_folder:
        outcomes.append(await _share(node, peer.node_id, peer.name, peer.fingerprint, steps.share_folder))
    outcomes.append(set_autostart(autostart, steps.autostart))
    return outcomes


async def _share(node: Node, peer_id: str, name: str, fingerprint: bytes, folder: str) -> StepOutcome:
    """Let the peer sync with this machine, and offer it ``folder``."""
    from noizylab_desktop.services.sync.feature import SyncFeature

    node.permissions.set(fingerprint, "sync", True, peer_id)
    sync = node.feature(SyncFeature)
    if sync is None:
        return StepOutcome(False, "Folder sync is not running on this node: share the folder later")
    try:
        share = await sync.manager.add(folder, peer_id, "", "")
    except NoizyLabError as exc:
        return StepOutcome(False, f"{folder} not shared: {exc.message}")
    return StepOutcome(True, f"{share.local} is kept in sync with {name}")

"""The first run at a terminal: what the tray's first-run window asks, as a few prompts.

A first ``noizylab start`` (once the node is up) or ``noizylab node`` (beside the running node) asks, when stdin is a
terminal, this home has no peer and its first run is not done: this machine's name, whether to show a code (with its
QR code) or type the other machine's, then the first steps for the peer paired and start at login. Each answer is
carried out the way its own command does it, through the running node (``rename``, ``pair invite|join``, ``allow``,
``share add``, ``autostart on``), so TOTP is asked for where it is on, exactly as those commands ask. Ctrl-D leaves
the rest for later (the next start asks again); where stdin (or stdout) is not a terminal, or the process is not in
its terminal's foreground (where reading it would stop the process), nothing is asked and nothing waits.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from noizylab_desktop.core.config import Paths, Settings, load_settings
from noizylab_desktop.core.errors import NoizyLabError

if TYPE_CHECKING:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.core.local_client import LocalClient

Ask = Callable[[str], str]
ONLINE_WAIT_S = 15.0  # how long the share step waits for a peer paired a moment ago to be reached


def interactive() -> bool:
    """Whether a person can see the questions and answer them: stdin and stdout are a terminal (a test suite run
    from a terminal captures its commands' output, so their inherited terminal stdin never makes them wait)."""
    try:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
    except (AttributeError, ValueError):  # no stdin at all (a windowed app), or it was closed
        return False
    return not _in_background()


def _in_background() -> bool:
    """Whether stdin is this process's controlling terminal and another process group has its foreground: reading
    it would stop this process (SIGTTIN). A terminal that is not the controlling one (ENOTTY) stops no reader."""
    if sys.platform == "win32":
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) != os.getpgrp()
    except OSError:
        return False


def wanted(paths: Paths, settings: Settings) -> bool:
    """Whether to ask now: at a terminal, the first run not done, and the node has no peer."""
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.node import first_run

    if not interactive() or first_run.is_done(paths):
        return False
    return first_run.needed(paths, len(run_with_node(paths, settings, lambda node: node.status()).peers))


def offer(paths: Paths, settings: Settings, ask: Ask = input) -> None:
    """Ask the first run's questions when ``wanted``; a failure is one line and leaves the node running."""
    try:
        if wanted(paths, settings):
            run_prompts(paths, ask)
    except EOFError:
        print("\nFirst run left for later: the next `noizylab start` asks again (or use the tray).", flush=True)
    except NoizyLabError as exc:
        print(f"noizylab: first run stopped: {exc.message}", file=sys.stderr, flush=True)


def offer_beside(paths: Paths, settings: Settings) -> None:
    """``offer`` on a thread of its own, for ``noizylab node``, whose main thread runs the node."""
    threading.Thread(target=offer, args=(paths, settings), name="first-run", daemon=True).start()


def _yes(ask: Ask, question: str, default: bool) -> bool:
    answer = ask(f"{question} [{'Y/n' if default else 'y/N'}] ").strip().lower()
    return default if not answer else answer.startswith("y")


def _qr(text: str) -> str:
    import segno

    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def run_prompts(paths: Paths, ask: Ask = input) -> None:
    """Name, pair, first steps, start at login; then the first run is done."""
    from noizylab_desktop.node import first_run

    print("\nNOIZYLAB first run (Ctrl-D leaves it for later).", flush=True)
    settings = _rename(paths, ask)
    peer = _pair(paths, settings, ask)
    if peer:
        _first_steps(paths, settings, peer, ask)
    from noizylab_desktop.node.autostart import for_platform

    on = _yes(ask, "Start NOIZYLAB (the tray) when you log in?", True)
    print(f"  {first_run.set_autostart(for_platform(paths), on).line}", flush=True)
    first_run.mark_done(paths, "terminal")
    print("First run done. `noizylab status` shows this node; the tray has the rest.", flush=True)


def _rename(paths: Paths, ask: Ask) -> Settings:
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop.cli.client import run_with_node

    settings = load_settings(paths)
    wanted_name = ask(f"This machine's name, as your other machines will see it [{settings.name}]: ").strip()
    if wanted_name and wanted_name != settings.name:
        reply = run_with_node(
            paths, settings, lambda node: node.call(node.control.Rename, pb.RenameRequest(name=wanted_name))
        )
        assert isinstance(reply, pb.RenameReply)
        print(f"  this machine is called {reply.name} now", flush=True)
    return load_settings(paths)


def _pair(paths: Paths, settings: Settings, ask: Ask) -> str:
    """The peer paired (its ID), or empty when skipped."""
    from noizylab_desktop.cli.client import run_with_node

    while True:
        choice = ask("Pair with another machine: (i) show a code for it, (j) type its code, (s) skip [i]: ")
        choice = (choice.strip().lower() or "i")[0]
        if choice in "ijs":
            break
    if choice == "s":
        print("  skipped: pair later with `noizylab pair invite` or the tray's Pair a device…", flush=True)
        return ""
    if choice == "j":
        code = ask("Code shown on the other machine: ").strip()
        result = run_with_node(paths, settings, lambda node: node.join(code))
    else:
        result = run_with_node(paths, settings, _invite_and_wait)
    print(f"Paired with {result.peer_name}. Verification: {result.verification}  (the other machine shows the same)",
          flush=True)  # fmt: skip
    return result.peer_id


async def _invite_and_wait(node: LocalClient) -> pb.PairingResult:
    import time

    invite = await node.create_invite([])
    print("\nType this code on the other machine (`noizylab pair join CODE`, or its first run):")
    print(f"\n    {invite.code}\n")
    print(_qr(invite.code), flush=True)
    print("Waiting for the other machine to join…", flush=True)
    return await node.wait_pairing(invite.code, max(1.0, invite.expires_at - time.time()))


def _wait_online(paths: Paths, settings: Settings, peer: str, timeout_s: float = ONLINE_WAIT_S) -> None:
    """Wait (a bounded while) until this node has reached ``peer``: one paired a moment ago is reached at the first
    heartbeat that finds it trusting this machine, and a share offered before that was told the peer is offline."""
    import time

    from noizylab_desktop.cli.client import run_with_node

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.id == peer and p.online for p in run_with_node(paths, settings, lambda node: node.status()).peers):
            return
        time.sleep(0.25)


def _first_steps(paths: Paths, settings: Settings, peer: str, ask: Ask) -> None:
    from noizylab_desktop._proto import noizylab_sync_pb2 as spb
    from noizylab_desktop._proto import noizylab_sync_pb2_grpc as spb_grpc
    from noizylab_desktop.cli.client import run_with_node

    name = next(p.name for p in run_with_node(paths, settings, lambda node: node.status()).peers if p.id == peer)
    tasks = _yes(ask, f"Let {name} run tasks on this machine?", False)
    folder = ask(f"A folder to keep in sync with {name} (Enter for none): ").strip()
    clipboard = _yes(ask, f"Share the clipboard with {name}?", True)
    scopes = [s for s, on in (("tasks", tasks), ("clipboard", clipboard), ("sync", bool(folder))) if on]

    async def allow(node: LocalClient) -> None:
        for scope in scopes:
            await node.set_permission(peer, scope, True)

    if scopes:
        run_with_node(paths, settings, allow)
        print(f"  {name} may now: {', '.join(scopes)} (on this machine)", flush=True)
    if folder:
        local = os.path.abspath(os.path.expanduser(folder))
        request = spb.AddShareRequest(local=local, peer=peer)
        _wait_online(paths, settings, peer)
        try:
            run_with_node(
                paths,
                settings,
                lambda node: node.call(spb_grpc.SyncStub(node.channel).AddShare, request, timeout=30),
            )
        except NoizyLabError as exc:
            print(f"  {local} not shared: {exc.message}", flush=True)
        else:
            print(f"  {local} is kept in sync with {name}", flush=True)

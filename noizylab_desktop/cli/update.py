"""``noizylab update check|apply|rollback|status``: self-update of an installed build from a signed TUF repository."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from noizylab_desktop.cli.output import add_json_flag, print_json, progress
from noizylab_desktop.core.config import Paths, Settings

if TYPE_CHECKING:
    from noizylab_desktop.services.update.install import InstalledApp
    from noizylab_desktop.services.update.service import Busy, Updater

IDLE_POLL_S = 0.5


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``update`` and its actions."""
    update = sub.add_parser("update", help="self-update from the signed update repository: check, apply, status")
    actions = update.add_subparsers(dest="update_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="ask the update repository for a newer signed version")
    add_json_flag(check)
    check.set_defaults(handler=_check)
    apply = actions.add_parser(
        "apply", help="download, verify and install the newer version, then restart (rolled back if it fails)"
    )
    apply.add_argument(
        "--no-wait", action="store_true", help="fail instead of waiting while a task runs or a remote desktop is open"
    )
    # The tray's "Restart to update": the tray quits when its node is stopped, and its new version starts as a tray.
    apply.add_argument("--relaunch", choices=("node", "tray"), default="node", help=argparse.SUPPRESS)
    # Finish from a copy of this version once this command has exited: always on Windows (handoff.py says why).
    apply.add_argument("--hand-off", action="store_true", help=argparse.SUPPRESS)
    apply.set_defaults(handler=_apply)
    rollback = actions.add_parser(
        "rollback", help="put the version kept from before the last update back in place (it is not offered again)"
    )
    rollback.add_argument("--hand-off", action="store_true", help=argparse.SUPPRESS)
    rollback.set_defaults(handler=_rollback)
    # The copy's half of a hand-off: wait for the command that started it to exit, then swap and restart.
    finish = actions.add_parser("finish")
    finish.add_argument("action", choices=("apply", "rollback"))
    finish.add_argument("--app-dir", required=True)
    finish.add_argument("--after-pid", type=int, required=True)
    finish.add_argument("--relaunch", choices=("node", "tray"), default="node")
    finish.add_argument("--was-running", action="store_true")
    finish.set_defaults(handler=_finish)
    status = actions.add_parser("status", help="the installed version, the one kept to roll back to, the repository")
    add_json_flag(status)
    status.set_defaults(handler=_status)


def _updater(settings: Settings) -> Updater:
    from noizylab_desktop.core.settings_schema import parse_section
    from noizylab_desktop.services.update.service import Updater
    from noizylab_desktop.services.update.settings import SECTION, UpdateSettings

    return Updater(parse_section(UpdateSettings, settings.section(SECTION)))


def _status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    status = _updater(settings).status()
    if args.json:
        print_json(
            {
                "installed": status.installed,
                "url": status.url,
                "previous": status.previous or None,
                "staged": status.staged or None,
                "trial": status.trial or None,
                "failed": list(status.failed),
            }
        )
        return 0
    print(f"noizylab {status.installed} is installed")
    print(f"updates from {status.url}" if status.url else "updates are off: set [update] url in config.toml")
    if status.previous:
        print(f"kept to roll back to: {status.previous}")
    if status.trial:
        print(f"{status.trial} was put in place but has not started yet (`noizylab update rollback` undoes it)")
    if status.staged:
        print(f"downloaded and verified: {status.staged} (`noizylab update apply` installs it)")
    if status.failed:
        print(f"failed to start here, not offered again: {', '.join(status.failed)}")
    return 0


def _check(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    updater = _updater(settings)
    offer = updater.check()
    installed = updater.app.version
    if args.json:
        available = None if offer is None else {"version": offer.version, "size": offer.size}
        print_json({"installed": installed, "available": available})
    elif offer is None:
        print(f"noizylab {installed} is up to date")
    else:
        print(f"noizylab {offer.version} is available ({_size(offer.size)}): `noizylab update apply` installs it")
    return 0


def _apply(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    import sys

    from noizylab_desktop.services.update.restart import apply_staged

    updater = _updater(settings)
    app = updater.app
    app.check_writable()
    offer = updater.check()
    if offer is None:
        print(f"noizylab {app.version} is up to date")
        return 0
    progress(f"downloading noizylab {offer.version} ({_size(offer.size)})")
    updater.fetch(offer)
    progress(f"noizylab {offer.version} is verified and unpacked beside {app.dir}")
    _wait_until_idle(paths, settings, no_wait=args.no_wait)
    home = ["--home", str(paths.home)] if paths.home is not None else []
    if args.hand_off or sys.platform == "win32":
        _hand_off(app, home, "apply", was_running=_node_running(paths), relaunch=args.relaunch, what=offer.version)
        return 0
    applied = apply_staged(app, home, was_running=_node_running(paths), say=progress, relaunch=args.relaunch)
    print(f"updated noizylab {applied.old} to {applied.new}; {applied.old} is kept to roll back to")
    return 0


def _rollback(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    import sys

    from noizylab_desktop.core.errors import UpdateError
    from noizylab_desktop.services.update.restart import roll_back_now

    app = _updater(settings).app
    app.check_writable()
    home = ["--home", str(paths.home)] if paths.home is not None else []
    if args.hand_off or sys.platform == "win32":
        previous = app.state().previous
        if not app.previous_dir.is_dir():
            raise UpdateError(f"no previous version is kept beside {app.dir}: nothing to roll back to")
        _hand_off(app, home, "rollback", was_running=_node_running(paths), relaunch="node", what=previous)
        return 0
    done = roll_back_now(app, home, was_running=_node_running(paths), say=progress)
    print(f"rolled back noizylab {done.old} to {done.new}; {done.old} is not offered again")
    return 0


def _hand_off(app: InstalledApp, home: list[str], action: str, *, was_running: bool, relaunch: str, what: str) -> None:
    """Leave ``action`` to a copy of this version that runs once this command has exited."""
    from noizylab_desktop.services.update.handoff import hand_off

    log = hand_off(app, home, action=action, was_running=was_running, relaunch="tray" if relaunch == "tray" else "node")
    verb = "put in place" if action == "apply" else "put back"
    print(
        f"noizylab {what} is {verb} once this command has exited, by a copy of {app.version} "
        f"(what it does: {log}; the outcome: `noizylab update status`)"
    )


def _finish(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    from pathlib import Path

    from noizylab_desktop.services.update.handoff import wait_for_exit
    from noizylab_desktop.services.update.install import InstalledApp
    from noizylab_desktop.services.update.restart import apply_staged, roll_back_now

    app = InstalledApp(Path(args.app_dir))
    home = ["--home", str(paths.home)] if paths.home is not None else []
    progress(f"waiting for process {args.after_pid} to exit")
    wait_for_exit(args.after_pid)
    if args.action == "apply":
        applied = apply_staged(app, home, was_running=args.was_running, say=progress, relaunch=args.relaunch)
        print(f"updated noizylab {applied.old} to {applied.new}; {applied.old} is kept to roll back to", flush=True)
    else:
        done = roll_back_now(app, home, was_running=args.was_running, say=progress)
        print(f"rolled back noizylab {done.old} to {done.new}; {done.old} is not offered again", flush=True)
    return 0


def _node_running(paths: Paths) -> bool:
    import psutil

    from noizylab_desktop.core.runtime import read_runtime_file

    runtime = read_runtime_file(paths.runtime_file)
    return runtime is not None and psutil.pid_exists(int(runtime["pid"]))


def _busy(paths: Paths, settings: Settings) -> Busy:
    """What the running node does now; nothing when no node runs."""
    from noizylab_desktop._proto import noizylab_grid_pb2 as pb
    from noizylab_desktop._proto import noizylab_update_pb2 as upb
    from noizylab_desktop._proto import noizylab_update_pb2_grpc as upb_grpc
    from noizylab_desktop.cli.client import run_with_node
    from noizylab_desktop.core.errors import NotRunningError
    from noizylab_desktop.services.update.service import Busy

    if not _node_running(paths):
        return Busy()
    try:
        reply = run_with_node(
            paths, settings, lambda node: node.call(upb_grpc.UpdateStub(node.channel).Busy, pb.Empty())
        )
    except NotRunningError:
        return Busy()
    assert isinstance(reply, upb.UpdateBusy)
    return Busy(reply.tasks_running, reply.display_sessions)


def _wait_until_idle(paths: Paths, settings: Settings, *, no_wait: bool) -> None:
    """Return once no task runs and no remote desktop is open here (or fail at once with ``no_wait``)."""
    from noizylab_desktop.core.errors import UpdateError

    told = ""
    while busy := _busy(paths, settings):
        if no_wait:
            raise UpdateError(f"not now: {busy.reason} on this node; try again when they end")
        if busy.reason != told:
            progress(f"waiting: {busy.reason} on this node; the update goes on when they end (Ctrl-C stops)")
            told = busy.reason
        time.sleep(IDLE_POLL_S)  # another process's work offers nothing to wait on


def _size(amount: int) -> str:
    from noizylab_desktop.core.words import size

    return size(amount)

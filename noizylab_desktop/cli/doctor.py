"""``noizylab doctor [PEER]``: why a paired machine is unreachable, one finding per line."""

from __future__ import annotations

import argparse
from typing import Any

from noizylab_desktop.cli.output import add_json_flag, print_json
from noizylab_desktop.core.config import Paths, Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``doctor``."""
    doctor = sub.add_parser("doctor", help="say why a paired machine is unreachable")
    doctor.add_argument("peer", nargs="?", help="its ID, the start of its ID, or its name (default: every peer)")
    doctor.add_argument("--listen", type=float, default=2.0, metavar="S", help="seconds to listen for announcements")
    add_json_flag(doctor)
    doctor.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    import asyncio

    import psutil

    from noizylab_desktop.core import identity
    from noizylab_desktop.core.discovery import doctor
    from noizylab_desktop.core.discovery.browse import nearby
    from noizylab_desktop.core.runtime import read_runtime_file
    from noizylab_desktop.core.trust import TrustStore

    me = identity.load_or_create(paths, identity.keychain_vault(paths, settings), settings.name)
    trust = TrustStore(paths.trust_db, me.cert_pem)
    try:
        peers = [trust.find(args.peer)] if args.peer else trust.peers()
    finally:
        trust.close()

    async def examine() -> list[doctor.Finding]:
        heard = await nearby(args.listen)
        runtime = read_runtime_file(paths.runtime_file)
        running = bool(runtime and psutil.pid_exists(int(runtime.get("pid", 0))))
        return await doctor.examine(me, peers, heard, running)

    findings = asyncio.run(examine())
    if args.json:
        print_json([{"subject": f.subject, "finding": f.kind, "text": f.text} for f in findings])
    elif not peers:
        print("no peers yet: pair one with `noizylab pair invite`")
    for finding in [] if args.json else findings:
        print(finding.line())
    return 0

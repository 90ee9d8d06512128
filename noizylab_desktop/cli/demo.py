"""``noizylab demo``: two nodes on this machine, in temporary homes, paired over loopback, with their status."""

from __future__ import annotations

import argparse
from typing import Any

from noizylab_desktop.core.config import Paths, Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo``."""
    demo = sub.add_parser("demo", help="start two nodes on this machine, pair them and show their status")
    demo.add_argument("--keep", action="store_true", help="leave both nodes running")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    import asyncio

    return asyncio.run(_run(keep=args.keep))


async def _run(*, keep: bool) -> int:
    import asyncio
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from noizylab_desktop.cli.lifecycle import print_status, status_dict, stop_node
    from noizylab_desktop.core import identity
    from noizylab_desktop.core.config import load_settings, save_settings
    from noizylab_desktop.core.local_client import LocalClient
    from noizylab_desktop.node import launcher

    root = Path(tempfile.mkdtemp(prefix="noizylab-demo-"))
    homes = [Paths.resolve(root / name) for name in ("alpha", "beta")]
    for home, name in zip(homes, ("demo-alpha", "demo-beta"), strict=True):
        home.ensure()
        save_settings(
            home,
            Settings(name=name, grpc_host="127.0.0.1", advertise=("127.0.0.1",)).with_ports(0, 0, 0),
        )
    print(f"Starting two nodes in {root} …", flush=True)
    try:
        for home in homes:
            await asyncio.to_thread(launcher.start_background, home, [])
        alpha_settings, beta_settings = (load_settings(h) for h in homes)
        async with LocalClient(homes[0], alpha_settings) as alpha, LocalClient(homes[1], beta_settings) as beta:
            invite = await alpha.create_invite([])
            print(f"demo-alpha made the invite code {invite.code}", flush=True)
            waiting = asyncio.ensure_future(alpha.wait_pairing(invite.code, 30))
            joined = await beta.join(invite.code)
            made = await waiting
            print(f"demo-beta joined; verification {joined.verification} on beta, {made.verification} on alpha")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                states = [await alpha.status(), await beta.status()]
                if all(p.online for s in states for p in s.peers):
                    break
                await asyncio.sleep(0.2)  # a human-facing demo: poll until both see each other
            for reply in states:
                print()
                print_status(status_dict(reply))
        if keep:
            print(f"\nBoth nodes keep running. Try: noizylab --home {homes[0].home} peers")
            return 0
    finally:
        if not keep:
            for home, st in zip(homes, (load_settings(h) for h in homes), strict=True):
                await asyncio.to_thread(stop_node, home, st)
                vault = identity.keychain_vault(home, st)
                for key in (identity.TLS_KEY, identity.SSH_KEY):
                    await asyncio.to_thread(vault.delete, key)
            shutil.rmtree(root, ignore_errors=True)
    print("\nDemo done: both nodes stopped and their keys removed from the keychain.")
    return 0

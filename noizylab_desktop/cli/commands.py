"""What each command line verb does, printed for people or as JSON for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop._proto import noizylab_grid_pb2 as pb
from noizylab_desktop.core import identity as identity_mod
from noizylab_desktop.core.config import Paths, Settings, load_settings, save_settings
from noizylab_desktop.core.errors import LauncherError, NotRunningError
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.core.runtime import read_runtime_file
from noizylab_desktop.core.secrets import KeyringStore, Vault
from noizylab_desktop.node import launcher


def peer_dict(peer: pb.Peer) -> dict[str, Any]:
    """A peer as ``peers --json`` and ``status --json`` give it."""
    caps = peer.capabilities
    return {
        "id": peer.id,
        "name": peer.name,
        "online": peer.online,
        "address": peer.address,
        "rtt_ms": round(peer.rtt_ms, 3),
        "last_seen": peer.last_seen or None,
        "paired_at": peer.paired_at,
        "os": caps.os or None,
        "cpus": caps.cpu_count or None,
        "memory_bytes": caps.memory_total_bytes or None,
        "gpus": [g.name for g in caps.gpus],
    }


def status_dict(reply: pb.StatusReply) -> dict[str, Any]:
    """``status --json``."""
    info = reply.info
    return {
        "running": True,
        "id": info.id,
        "name": info.name,
        "version": info.version,
        "pid": reply.pid,
        "uptime_s": round(time.time() - info.started_at, 1),
        # SFTP and HTTP servers arrive with the sync and metrics issues; until then nothing is bound there.
        "ports": {"grpc": info.ports.grpc, "sftp": info.ports.sftp or None, "http": info.ports.http or None},
        "pairing_port": reply.pairing_port or None,
        "peers": [peer_dict(p) for p in reply.peers],
        "calls": {"handled": dict(reply.handled_calls), "refused": dict(reply.refused_calls)},
    }


def _dot(online: bool) -> str:
    return "●" if online else "○"


def print_status(data: dict[str, Any]) -> None:
    print(f"{data['name']}  {data['id']}")
    print(f"  running, pid {data['pid']}, up {data['uptime_s']:.0f} s, gRPC port {data['ports']['grpc']}")
    if data["pairing_port"]:
        print(f"  pairing port {data['pairing_port']} open until the last invite code has expired")
    print_peers(data["peers"])


def print_peers(peers: list[dict[str, Any]]) -> None:
    if not peers:
        print("  no peers yet: pair one with `noizylab pair invite`")
    for peer in peers:
        state = f"online, {peer['rtt_ms']:.1f} ms" if peer["online"] else "offline"
        print(f"  {_dot(peer['online'])} {peer['name']:<20} {peer['id'][:15]}…  {state}  {peer['address']}")


async def status(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    try:
        async with LocalClient(paths, settings) as client:
            data = status_dict(await client.status())
    except NotRunningError as exc:
        if args.json:
            print(json.dumps({"running": False, "name": settings.name, "error": exc.message}))
            return 1
        raise
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_status(data)
    return 0


async def show_id(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    paths.ensure()

    def load() -> str:
        if paths.cert_file.exists():
            # The ID is the public certificate's SHA-256: showing an existing node's ID needs no keychain.
            cert = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
            return format_id(fingerprint(cert.public_bytes(serialization.Encoding.DER)))
        vault = Vault(KeyringStore(settings.keychain_id), paths.vault_dir)
        return identity_mod.load_or_create(paths, vault, settings.name).node_id

    node_id = await asyncio.to_thread(load)
    print(json.dumps({"id": node_id, "name": settings.name}) if args.json else node_id)
    return 0


async def peers(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    async with LocalClient(paths, settings) as client:
        reply = await client.status()
    listed = [peer_dict(p) for p in reply.peers]
    if args.json:
        print(json.dumps(listed, indent=2))
    else:
        print_peers(listed)
    return 0


async def unpair(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    async with LocalClient(paths, settings) as client:
        reply = await client.unpair(args.peer)
    print(f"unpaired {reply.peer_name} ({reply.peer_id}): it can no longer reach this node")
    return 0


async def pair(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    async with LocalClient(paths, settings) as client:
        if args.pair_command == "invite":
            invite = await client.create_invite(args.address)
            minutes = max(1, round((invite.expires_at - time.time()) / 60))
            if args.json:
                print(json.dumps({"code": invite.code, "expires_at": invite.expires_at}), flush=True)
            else:
                print(f"Invite code (valid {minutes} minutes, once):\n\n    {invite.code}\n", flush=True)
                print("On the other machine run:  noizylab pair join CODE", flush=True)
            if args.no_wait or args.json:
                return 0
            print("Waiting for the other machine to join… (Ctrl-C stops waiting; the code stays valid)", flush=True)
            result = await client.wait_pairing(invite.code, max(1.0, invite.expires_at - time.time()))
        else:
            result = await client.join(args.code)
    if args.json:
        print(
            json.dumps({"peer_id": result.peer_id, "peer_name": result.peer_name, "verification": result.verification})
        )
    else:
        print(f"Paired with {result.peer_name} ({result.peer_id}).")
        print(f"Verification: {result.verification}  (the other machine shows the same)")
    return 0


def stop(paths: Paths, settings: Settings) -> int:
    runtime = read_runtime_file(paths.runtime_file)
    if runtime is None or not launcher.pid_alive(int(runtime["pid"])):
        if launcher.InstanceLock(paths.lock_file).held_elsewhere():
            raise LauncherError(f"a node holds {paths.lock_file} but left no runtime file: stop its process by hand")
        print("no node is running for this home")
        return 0
    pid = int(runtime["pid"])

    async def ask() -> None:
        async with LocalClient(paths, settings) as client:
            await client.shutdown()

    try:
        asyncio.run(ask())
        stopped = launcher.wait_exit(pid, launcher.STOP_TIMEOUT_S)
    except NotRunningError:
        stopped = False
    if not stopped:
        launcher.terminate(pid)
    print(f"node stopped (pid {pid})")
    return 0


async def demo(args: argparse.Namespace, paths: Paths, settings: Settings) -> int:
    """Two nodes on loopback in temporary homes, paired, with their status."""
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
        if args.keep:
            print(f"\nBoth nodes keep running. Try: noizylab --home {homes[0].home} peers")
            return 0
    finally:
        if not args.keep:
            for home, st in zip(homes, (load_settings(h) for h in homes), strict=True):
                await asyncio.to_thread(stop, home, st)
                vault = Vault(KeyringStore(st.keychain_id), home.vault_dir)
                for key in (identity_mod.TLS_KEY, identity_mod.SSH_KEY):
                    await asyncio.to_thread(vault.delete, key)
            shutil.rmtree(root, ignore_errors=True)
    print("\nDemo done: both nodes stopped and their keys removed from the keychain.")
    return 0

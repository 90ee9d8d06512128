"""The Linux side of the Windows tier: starts Linux nodes for tests that run on the Windows interpreter under Wine.

The tests run inside Wine (``scripts/windows-tier.sh``), where no Linux program can be started; this agent runs
beside them on the host, with the host's Python and this checkout, and answers one JSON request per loopback
connection: make a node's home, run ``noizylab --home HOME ...`` for it, read, write, rename or list files in it.
Every request carries the token the tier script handed to both sides, and every path stays under the agent's own
temporary folder; it is not a general command runner. On exit it stops every node it made and removes the folder.

    python tests/windows/linux_agent.py READY_FILE   writes {"port": N, "token": T} to READY_FILE, then serves
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.conftest import NOIZYLAB, write_config  # noqa: E402

MAX_REQUEST = 4 * 1024 * 1024


class Agent:
    """The folder the agent's nodes live in, and the requests it answers."""

    def __init__(self, base: Path, token: str) -> None:
        self.base = base
        self.token = token
        self.homes: list[Path] = []

    def inside(self, path: str) -> Path:
        """``path`` resolved, refused unless it lies under the agent's folder."""
        resolved = (self.base / path).resolve()
        if not resolved.is_relative_to(self.base):
            raise ValueError(f"{path!r} is outside the agent's folder")
        return resolved

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request."""
        if not secrets.compare_digest(str(request.get("token", "")), self.token):
            return {"error": "wrong token"}
        op = request.get("op")
        if op == "node":
            home = self.inside(str(request["home"]))
            config = dict(request.get("config", {}))
            sync = dict(config.get("sync", {}))
            if "folder" in sync:  # the Windows side names a Linux node's sync folder relative to its home
                sync["folder"] = str(self.inside(f"{request['home']}/{sync['folder']}"))
                config["sync"] = sync
            write_config(home, str(request["name"]), **config)
            self.homes.append(home)
            return {"home": str(home), "sync_folder": sync.get("folder", "")}
        if op == "cli":
            home = self.inside(str(request["home"]))
            result = subprocess.run(
                [*NOIZYLAB, "--home", str(home), *[str(a) for a in request["args"]]],
                capture_output=True,
                text=True,
                timeout=float(request.get("timeout", 60)),
                cwd=REPO,
            )
            return {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
        if op == "write":
            target = self.inside(str(request["path"]))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes.fromhex(str(request["data"])))
            return {}
        if op == "read":
            target = self.inside(str(request["path"]))
            return {"data": target.read_bytes().hex() if target.is_file() else None}
        if op == "rename":
            self.inside(str(request["path"])).rename(self.inside(str(request["to"])))
            return {}
        if op == "list":
            target = self.inside(str(request["path"]))
            names = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
            return {"names": names}
        return {"error": f"unknown op {op!r}"}

    def close(self) -> None:
        """Stop every node made here, then remove the folder."""
        for home in self.homes:
            subprocess.run([*NOIZYLAB, "--home", str(home), "stop"], capture_output=True, timeout=60, cwd=REPO)
        shutil.rmtree(self.base, ignore_errors=True)


class Handler(socketserver.StreamRequestHandler):
    """One request, one reply, one line of JSON each."""

    server: Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            reply = self.server.agent.answer(json.loads(line))
        except Exception as exc:  # the reply says what went wrong; the agent keeps serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, agent: Agent) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.agent = agent


def main() -> None:
    ready_file = Path(sys.argv[1])
    agent = Agent(Path(tempfile.mkdtemp(prefix="noizylab-linux-agent-")).resolve(), secrets.token_hex(16))
    server = Server(agent)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = {"port": server.server_address[1], "token": agent.token, "pid": os.getpid()}
    partial = ready_file.with_suffix(".partial")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(json.dumps(ready))
    partial.replace(ready_file)  # the tier script waits for the file: it must never see half of it
    try:
        stop.wait()
    finally:
        server.shutdown()
        agent.close()


if __name__ == "__main__":
    main()

"""The Linux side of the Windows tier: starts Linux nodes for tests that run on the Windows interpreter under Wine.

The tests run inside Wine (``scripts/windows-tier.sh``), where no Linux program can be started; this agent runs
beside them on the host, with the host's Python and this checkout, and answers one JSON request per loopback
connection: make a node's home (with an X display of its own, a private Xvfb, if asked), run
``noizylab --home HOME ...`` for it, read, write, rename or list files in it, check a recording in it (ffprobe, then
decoded with PyAV), copy to or paste from its display's clipboard (xclip), click on a peer's screen through a viewing
session with control.
Every request carries the token the tier script handed to both sides, and every path stays under the agent's own
temporary folder; it is not a general command runner. On exit it stops every node it made and removes the folder.

    python tests/windows/linux_agent.py READY_FILE   writes {"port": N, "token": T} to READY_FILE, then serves
"""

from __future__ import annotations

import asyncio
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
from tests.xvfb import Xvfb  # noqa: E402

MAX_REQUEST = 4 * 1024 * 1024


class Agent:
    """The folder the agent's nodes live in, and the requests it answers."""

    def __init__(self, base: Path, token: str) -> None:
        self.base = base
        self.token = token
        self.homes: list[Path] = []
        self.screens: dict[Path, Xvfb] = {}  # a private X display per home that asked for one (``"display": true``)

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
            if request.get("display") and home not in self.screens:
                self.screens[home] = Xvfb()
            return {"home": str(home), "sync_folder": sync.get("folder", "")}
        if op == "cli":
            home = self.inside(str(request["home"]))
            result = subprocess.run(
                [*NOIZYLAB, "--home", str(home), *[str(a) for a in request["args"]]],
                capture_output=True,
                text=True,
                timeout=float(request.get("timeout", 60)),
                cwd=REPO,
                env=self.env(home),
            )
            return {"rc": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
        if op in ("copy", "paste"):  # the home's X clipboard, through xclip as a person's app would use it
            home = self.inside(str(request["home"]))
            xclip = ["xclip", "-selection", "clipboard", "-o" if op == "paste" else "-i"]
            if op == "copy":  # xclip stays behind owning the selection: its output must not be waited for
                data = str(request["text"]).encode()
                subprocess.run(xclip, input=data, env=self.env(home), check=True, timeout=10, capture_output=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                return {}
            done = subprocess.run(xclip, env=self.env(home), capture_output=True, timeout=10)
            return {"text": done.stdout.decode(errors="replace") if done.returncode == 0 else None}
        if op == "write":  # one file (path, data), or several back to back in one request (files: {path: data})
            files = request.get("files") or {request["path"]: request["data"]}
            for path, data in files.items():
                target = self.inside(str(path))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bytes.fromhex(str(data)))
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
        if op == "click":  # a viewer with control, as ``noizylab view``'s window: one left click at a frame pixel
            home = self.inside(str(request["home"]))
            return asyncio.run(click(home, str(request["peer"]), float(request["x"]), float(request["y"])))
        if op == "video":  # a recording checked as the issue asks: ffprobe's view of it, then decoded here
            return video_facts(self.inside(str(request["path"])), [tuple(p) for p in request.get("points", [])])
        return {"error": f"unknown op {op!r}"}

    def env(self, home: Path) -> dict[str, str]:
        """The environment of ``home``'s commands: DISPLAY is its own X display, or none."""
        env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
        if home in self.screens:
            env["DISPLAY"] = self.screens[home].display
        return env

    def close(self) -> None:
        """Stop every node made here and its X display, then remove the folder."""
        for home in self.homes:
            subprocess.run(
                [*NOIZYLAB, "--home", str(home), "stop"], capture_output=True, timeout=60, cwd=REPO, env=self.env(home)
            )
        for screen in self.screens.values():
            screen.stop()
        shutil.rmtree(self.base, ignore_errors=True)


async def click(home: Path, peer: str, x: float, y: float) -> dict[str, Any]:
    """A left click at frame pixel (``x``, ``y``) of ``peer``'s screen, sent through a viewing session with control
    from ``home``'s node once the first picture came; the session stays open until the host's next message."""
    from noizylab_desktop._proto import noizylab_display_pb2 as dpb
    from noizylab_desktop.core.config import Paths, load_settings
    from noizylab_desktop.services.display.client import ViewerSession
    from noizylab_desktop.services.display.connect import connect

    paths = Paths.resolve(home)
    channel, name = await connect(paths, load_settings(paths), peer)
    async with channel, ViewerSession(channel, name, control=True) as session:
        if not session.info.control:
            return {"error": f"{name} gave no control"}
        sent = False
        async for frame in session.frames():
            if sent:
                break
            if frame.data:
                for down in (True, False):
                    button = dpb.PointerButton(button=1, down=down, x=x, y=y)
                    await session.send_input(dpb.InputEvent(button=button))
                sent = True
    return {}


def video_facts(path: Path, points: list[tuple[int, int]]) -> dict[str, Any]:
    """ffprobe's stream facts for ``path`` (frames counted by decoding), and, decoded with PyAV, how many pictures it
    holds and the last one's RGB at each of ``points``."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    import av

    pictures = 0
    last = None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pictures += 1
            last = frame.to_ndarray(format="rgb24")
    colours = [[int(c) for c in last[y, x]] for x, y in points] if last is not None else []
    return {"stream": json.loads(probe.stdout)["streams"][0], "pictures": pictures, "colours": colours}


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

"""Fixtures for the Windows tier (``make windows``): these tests run on python.org's Windows CPython under Wine.

Windows nodes are ``tests.conftest.NodeProcess`` as on Linux (``sys.executable`` is the Windows interpreter). A Linux
node is a ``LinuxNode``: the same interface, its commands run on the host by ``tests/windows/linux_agent.py``, which
the tier script starts beside pytest and names in ``NOIZYLAB_LINUX_AGENT`` (``PORT:TOKEN``).

On any other platform the whole folder is left out of collection (``make test`` runs on Linux).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import NodeProcess, wait_for
from tests.slowness import scaled

if sys.platform != "win32":
    collect_ignore_glob = ["test_*.py"]

WINE_DIFFERENCE = "(a difference of Wine from Windows, ../shared/WINDOWS.md)"


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml: the tier's build cache is keyed on that file (scripts/windows-tier.sh).
    config.addinivalue_line(
        "markers",
        "windows_smoke: the Windows tier's smoke subset (`make windows-smoke`): a node's start, lock, keychain and "
        "stop; a Linux peer over mTLS; a task's job-object cancel; a sync of Windows-unsafe names",
    )


def wine_version() -> str | None:
    """Wine's version when this Windows interpreter runs under Wine (its ntdll exports wine_get_version), else None."""
    import ctypes

    ntdll = ctypes.WinDLL("ntdll")
    if not hasattr(ntdll, "wine_get_version"):
        return None
    ntdll.wine_get_version.restype = ctypes.c_char_p
    return str(ntdll.wine_get_version().decode())


def under_wine() -> bool:
    """True under Wine, False on real Windows."""
    return wine_version() is not None


def pytest_report_header(config: pytest.Config) -> str | None:
    import platform

    if sys.platform != "win32":
        return None
    where = f"Wine {wine_version()}" if under_wine() else f"Windows {platform.version()}"
    return f"{platform.python_implementation()} {platform.python_version()} ({sys.version}) under {where}"


class LinuxAgent:
    """The host's agent: one JSON request per connection."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def call(self, op: str, timeout: float = 90, **request: Any) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(timeout)) as conn:
            conn.sendall(json.dumps({"token": self.token, "op": op, **request}).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                data = conn.recv(65536)
                if not data:
                    break
                reply += data
        answer: dict[str, Any] = json.loads(reply)
        if "error" in answer:
            raise AssertionError(f"the Linux agent refused {op}: {answer['error']}")
        return answer


class LinuxNode(NodeProcess):
    """A node on the Linux host, driven through its ``noizylab`` command line by the agent."""

    def __init__(self, agent: LinuxAgent, home: str, name: str, display: bool = False, **config: Any) -> None:
        self.agent = agent
        self.name = name
        self.cwd = None
        made = agent.call("node", home=home, name=name, config=config, display=display)
        self.linux_home: str = made["home"]
        self.sync_folder: str = made["sync_folder"]  # a ``sync={"folder": NAME}`` is under its home

    def copy(self, text: str) -> None:
        """Copy ``text`` on this node's X display (``display=True``) as a Linux app would: xclip owns CLIPBOARD."""
        self.agent.call("copy", home=self.linux_home, text=text)

    def paste(self) -> str | None:
        """What a paste on this node's X display gives, or None when the clipboard holds no text."""
        text: str | None = self.agent.call("paste", home=self.linux_home)["text"]
        return text

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        reply = self.agent.call("cli", home=self.linux_home, args=list(args), timeout=scaled(timeout) + 30)
        result = subprocess.CompletedProcess(["noizylab", *args], reply["rc"], reply["stdout"], reply["stderr"])
        if check and result.returncode != 0:
            raise AssertionError(f"(linux) noizylab {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result


@pytest.fixture(scope="session")
def linux_agent() -> LinuxAgent:
    """The host's agent; the test is skipped, in one line, where the tier runs without one."""
    named = os.environ.get("NOIZYLAB_LINUX_AGENT", "")
    if ":" not in named:
        pytest.skip("no Linux agent (NOIZYLAB_LINUX_AGENT): run the tier with scripts/windows-tier.sh")
    port, token = named.split(":", 1)
    return LinuxAgent(int(port), token)


@pytest.fixture
def make_linux_node(linux_agent: LinuxAgent) -> Iterator[Callable[..., LinuxNode]]:
    """Linux nodes in fresh homes on the host; each is stopped afterwards."""
    made: list[LinuxNode] = []

    def make(name: str, display: bool = False, **config: Any) -> LinuxNode:
        node = LinuxNode(linux_agent, f"{name}-{uuid.uuid4().hex[:8]}", name, display, **config)
        made.append(node)
        return node

    yield make
    with ThreadPoolExecutor() as pool:
        list(pool.map(NodeProcess.stop, made))


def pair(inviter: NodeProcess, joiner: NodeProcess) -> None:
    """Pair two running nodes and wait until each sees the other online."""
    joiner.join(inviter.invite())
    wait_for(lambda: (inviter.peer(joiner.name) or {}).get("online"), what=f"{inviter.name} to see {joiner.name}")
    wait_for(lambda: (joiner.peer(inviter.name) or {}).get("online"), what=f"{joiner.name} to see {inviter.name}")

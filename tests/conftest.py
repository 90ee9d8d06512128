"""Shared fixtures: real node processes in temporary homes, and waiting on conditions with a deadline.

Deadlines stretch by the measured slowness of the machine (``tests/slowness.py``): on a quiet one they are exactly
what the tests say.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import tomli_w

from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.identity import Identity, load_or_create
from noizylab_desktop.core.secrets import KeyringStore, Vault
from tests.slowness import factor, scaled

NOIZYLAB = [sys.executable, "-m", "noizylab_desktop"]
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("NOIZYLAB_IN_TEST_KEYRING") != "1":
        raise pytest.UsageError("run the tests with `make test`: they need the private Secret Service it starts")


def pytest_report_header(config: pytest.Config) -> str:
    return f"slowness factor at start: {factor():.2f} (deadlines stretch by it; NOIZYLAB_TEST_SLOWNESS fixes it)"


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Where a UI test set up the tray's QApplication, collection happens only on the GUI thread (ui/gui_gc.py)
    and only while Qt's loop runs: between tests this (the GUI) thread collects what is due."""
    if not gc.isenabled():
        from noizylab_desktop.ui.gui_gc import collect_due

        collect_due()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds (scaled by slowness)."""
    allowed = scaled(timeout)
    deadline = time.monotonic() + allowed
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {allowed:.1f} s ({timeout} s quiet) waiting for {what} (last: {last!r})")


async def within(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """What ``awaitable`` gives, or a failed test after ``timeout`` seconds (scaled by slowness): ``wait_for`` for
    scenarios that run on an asyncio loop."""
    try:
        return await asyncio.wait_for(awaitable, scaled(timeout))
    except TimeoutError:
        raise AssertionError(
            f"timed out after {scaled(timeout):.1f} s ({timeout} s quiet) waiting for {what}"
        ) from None


def write_config(home: Path, name: str, **extra: Any) -> None:
    """A config for a loopback-only node with free ports; a dict in ``extra`` becomes a feature's [table]."""
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "name": name,
        "grpc_host": "127.0.0.1",
        "advertise": ["127.0.0.1"],
        "ports": {"grpc": 0, "sftp": 0, "http": 0},
        # No LAN announcements from tests' nodes unless a test asks (tests/integration/test_discovery.py does).
        "discovery": {"enabled": False},
    }
    config.update(extra)
    (home / "config.toml").write_text(tomli_w.dumps(config))


class NodeProcess:
    """A node for one temporary home, driven through the real ``noizylab`` command line."""

    def __init__(self, home: Path, name: str, **config: Any) -> None:
        self.home = home
        self.name = name
        self.cwd: Path | None = None  # where its commands run, and so the working folder of the node they start
        write_config(home, name, **config)

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``noizylab --home HOME ARGS``."""
        result = subprocess.run(
            [*NOIZYLAB, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            cwd=self.cwd,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"noizylab {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        """Run a command with ``--json`` and parse its output."""
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self) -> NodeProcess:
        self.cli("start")
        return self

    def stop(self) -> None:
        self.cli("stop", check=False)

    def status(self) -> dict[str, Any]:
        return dict(self.json("status"))

    @property
    def id(self) -> str:
        return str(self.status()["id"])

    @property
    def pid(self) -> int:
        return int(json.loads((self.home / "state" / "runtime.json").read_text())["pid"])

    def peer(self, name: str) -> dict[str, Any] | None:
        """This node's view of the peer called ``name``."""
        return next((p for p in self.json("peers") if p["name"] == name), None)

    def identity(self) -> Identity:
        """This node's identity, read from the keychain as its own command line does."""
        paths = Paths.resolve(self.home)
        settings = load_settings(paths)
        return load_or_create(paths, Vault(KeyringStore(settings.keychain_id), paths.vault_dir), settings.name)

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.status()['ports']['grpc']}"

    def invite(self) -> str:
        return str(self.json("pair", "invite")["code"])

    def join(self, code: str) -> dict[str, Any]:
        return dict(self.json("pair", "join", code))


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Build nodes in temporary homes (``make("alpha", tasks={...})``; ``home=`` when two share a name); every one
    started is stopped afterwards."""
    made: list[NodeProcess] = []

    def make(name: str, home: str = "", **config: Any) -> NodeProcess:
        node = NodeProcess(tmp_path / (home or name), name, **config)
        made.append(node)
        return node

    yield make
    with ThreadPoolExecutor() as pool:
        list(pool.map(NodeProcess.stop, made))


def start_all(*nodes: NodeProcess) -> tuple[NodeProcess, ...]:
    """Start ``nodes`` side by side (each start is a command that waits for its node): as many seconds as one."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        return tuple(pool.map(NodeProcess.start, nodes))


@pytest.fixture
def paired(make_node: Callable[[str], NodeProcess]) -> tuple[NodeProcess, NodeProcess]:
    """Two running nodes, paired, each seeing the other online."""
    alpha, beta = start_all(make_node("alpha"), make_node("beta"))
    beta.join(alpha.invite())
    wait_for(lambda: (alpha.peer("beta") or {}).get("online"), what="alpha to see beta online")
    wait_for(lambda: (beta.peer("alpha") or {}).get("online"), what="beta to see alpha online")
    return alpha, beta

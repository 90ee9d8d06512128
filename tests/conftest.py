"""Shared fixtures: real node processes in temporary homes, and waiting on conditions with a deadline.

Deadlines stretch by the measured slowness of the machine (``tests/slowness.py``): on a quiet one they are exactly
what the tests say.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import tomli_w

from noizylab_desktop.cli.client import run_with_node
from noizylab_desktop.cli.lifecycle import ask_status
from noizylab_desktop.cli.pairing import peer_dict
from noizylab_desktop.core.config import Paths, load_settings
from noizylab_desktop.core.errors import NoizyLabError
from noizylab_desktop.core.identity import Identity, load_or_create
from noizylab_desktop.core.local_client import LocalClient
from noizylab_desktop.core.secrets import KeyringStore, Vault
from tests.slowness import factor, scaled

NOIZYLAB = [sys.executable, "-m", "noizylab_desktop"]
T = TypeVar("T")
# Seconds each test file took in a whole quiet run (`make test` writes a fresh table to MEASURED_DURATIONS; copy it
# here when files were added or got much faster or slower). Only the order of files depends on it.
DURATIONS = Path(__file__).with_name("durations.json")
MEASURED_DURATIONS = Path(__file__).resolve().parents[1] / "build" / "artefacts" / "test-durations.json"
SLOWEST_FILES = 15
POLL_S = 0.05  # wait_for's shortest gap between polls
MAX_POLL_GAP_S = 0.5
_file_seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
# The `noizylab` commands each file ran, and their seconds: most of a node test's CPU time goes to them.
_file_commands: collections.defaultdict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
_commands = [0, 0.0]  # this process's commands since its last report (xdist: a worker's)
COMMANDS = "noizylab_commands"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("NOIZYLAB_IN_TEST_KEYRING") != "1":
        raise pytest.UsageError("run the tests with `make test`: they need the private Secret Service it starts")


def pytest_report_header(config: pytest.Config) -> str:
    return f"slowness factor at start: {factor():.2f} (deadlines stretch by it; NOIZYLAB_TEST_SLOWNESS fixes it)"


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest files first (``tests/durations.json``), each file's tests in their own order: with
    ``--no-loadscope-reorder`` xdist hands files out in this order, so a long file (the frozen app's build) starts at
    once instead of ending the run alone. A file not in the table yet is taken to be as slow as the slowest."""
    known: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    unknown = max(known.values(), default=0.0)
    items.sort(key=lambda item: -known.get(_file_of(item.nodeid), unknown))  # stable: files stay whole


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Each report carries the commands run since the last one (reports travel from xdist's workers)."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    report.user_properties.append((COMMANDS, tuple(_commands)))
    _commands[:] = [0, 0.0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    name = _file_of(report.nodeid)
    _file_seconds[name] += report.duration  # set-up, call and tear-down
    for key, value in report.user_properties:
        if key == COMMANDS:
            count, seconds = cast(tuple[int, float], value)
            _file_commands[name][0] += count
            _file_commands[name][1] += seconds


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The slowest files (set-up and tear-down included), and every file's time for ``tests/durations.json``."""
    if not _file_seconds or hasattr(config, "workerinput"):  # xdist's workers report to the controller
        return
    terminalreporter.write_sep("=", f"slowest {SLOWEST_FILES} files (and the `noizylab` commands they ran)")
    for name, seconds in sorted(_file_seconds.items(), key=lambda kv: -kv[1])[:SLOWEST_FILES]:
        count, spent = _file_commands[name]
        terminalreporter.write_line(f"{seconds:7.1f}s {name} ({count:.0f} commands, {spent:.1f} s)")
    count, spent = (sum(c[i] for c in _file_commands.values()) for i in (0, 1))
    terminalreporter.write_line(f"all files: {count:.0f} `noizylab` commands, {spent:.0f} s in all")
    MEASURED_DURATIONS.parent.mkdir(parents=True, exist_ok=True)
    table = {name: round(seconds, 1) for name, seconds in sorted(_file_seconds.items())}
    MEASURED_DURATIONS.write_text(json.dumps(table, indent=0) + "\n")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Where a UI test set up the tray's QApplication, collection happens only on the GUI thread (ui/gui_gc.py)
    and only while Qt's loop runs: between tests this (the GUI) thread collects what is due."""
    if not gc.isenabled():
        from noizylab_desktop.ui.gui_gc import collect_due

        collect_due()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds (scaled by slowness).

    Between polls it waits at least as long as the last poll took: most conditions run a ``noizylab`` command (a
    third of a second of CPU), and polling back to back kept a core busy with them while the nodes being waited on
    needed it."""
    allowed = scaled(timeout)
    deadline = time.monotonic() + allowed
    last: Any = None
    while (started := time.monotonic()) < deadline:
        last = condition()
        if last:
            return last
        time.sleep(max(POLL_S, min(time.monotonic() - started, MAX_POLL_GAP_S)))
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


def _loop_runs_here() -> bool:
    """Whether this thread runs an asyncio loop (a scenario on qasync): ``NodeProcess.ask`` cannot run one there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _by_command(node: NodeProcess) -> bool:
    """Whether ``node`` must be read through its command line: from a thread running a loop, or a node whose
    commands run elsewhere (a network namespace of its own, an installed build: a subclass's own ``cli``)."""
    return type(node).cli is not NodeProcess.cli or _loop_runs_here()


class NodeProcess:
    """A node for one temporary home, driven through the real ``noizylab`` command line."""

    def __init__(self, home: Path, name: str, **config: Any) -> None:
        self.home = home
        self.name = name
        self.cwd: Path | None = None  # where its commands run, and so the working folder of the node they start
        write_config(home, name, **config)

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``noizylab --home HOME ARGS``."""
        started = time.monotonic()
        result = subprocess.run(
            [*NOIZYLAB, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            cwd=self.cwd,
        )
        _commands[0] += 1
        _commands[1] += time.monotonic() - started
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

    def may_run(self) -> bool:
        """Whether a node may run for this home (one ran there once): `make_node` stops only those."""
        paths = Paths.resolve(self.home)
        return paths.pid_file.exists() or paths.runtime_file.exists() or paths.lock_file.exists()

    def ask(self, what: str, work: Callable[[LocalClient], Awaitable[T]]) -> T:
        """``await work(client)`` on this home's running node, asked from this process as the command line would
        (``run_with_node``: the same local mTLS channel, the key from the same keychain), without starting one: a
        ``noizylab`` command costs a third of a second of CPU, and the suite's polls of status and peers ran
        thousands. ``what`` names it in a failure. Not where this thread runs an event loop already."""
        paths = Paths.resolve(self.home)
        try:
            return run_with_node(paths, load_settings(paths), work)
        except NoizyLabError as exc:
            raise AssertionError(f"noizylab {what} for {self.name}: {exc.message}") from None

    def status(self) -> dict[str, Any]:
        """What ``noizylab status --json`` prints."""
        if _by_command(self):
            return dict(self.json("status"))
        return dict(json.loads(json.dumps(self.ask("status", ask_status))))

    def peers(self) -> list[dict[str, Any]]:
        """What ``noizylab peers --json`` prints."""
        if _by_command(self):
            return list(self.json("peers"))

        async def listed(node: LocalClient) -> list[dict[str, Any]]:
            return [peer_dict(p) for p in (await node.status()).peers]

        return list(json.loads(json.dumps(self.ask("peers", listed))))

    @property
    def id(self) -> str:
        return str(self.status()["id"])

    @property
    def pid(self) -> int:
        return int(json.loads((self.home / "state" / "runtime.json").read_text())["pid"])

    def peer(self, name: str) -> dict[str, Any] | None:
        """This node's view of the peer called ``name``."""
        return next((p for p in self.peers() if p["name"] == name), None)

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
        list(pool.map(NodeProcess.stop, [node for node in made if node.may_run()]))


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

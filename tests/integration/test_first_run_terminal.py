"""The first run at a terminal: a first ``noizylab start`` (or ``node``) on a real terminal (a pty) asks for the name,
pairs with a real second node by its code and shows the verification string that node printed, takes the first
steps and start at login; without a terminal it asks nothing and never waits."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from noizylab_desktop.core.config import Paths
from noizylab_desktop.node.autostart import entry_name
from tests.conftest import NOIZYLAB, NodeProcess
from tests.slowness import scaled

CODE = re.compile(r"^\s+([A-Z2-7]{5}(?:-[A-Z2-7]{1,5})+)\s*$", re.MULTILINE)
TIMEOUT_S = 30.0


class Terminal:
    """A command on a pseudo-terminal of its own: what a person at a terminal sees and types."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.seen = ""
        self._read_to = 0

    def expect(self, text: str, timeout: float = TIMEOUT_S) -> str:
        """Everything shown since the last ``expect``, up to and including ``text``; fails after ``timeout``."""
        deadline = time.monotonic() + scaled(timeout)
        while (at := self.seen.find(text, self._read_to)) < 0:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            chunk = self._read() if ready else b""
            if not chunk:
                raise AssertionError(f"{text!r} never showed (within {timeout} s); the terminal shows:\n{self.seen}")
            self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        shown, self._read_to = self.seen[self._read_to : at + len(text)], at + len(text)
        return shown

    def _read(self) -> bytes:
        try:
            return os.read(self.master, 65536)
        except OSError:  # EIO: the command closed the terminal
            return b""

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        try:
            return self.process.wait(scaled(TIMEOUT_S))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.master)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """This environment with an autostart folder of the test's own."""
    return {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}


@pytest.fixture
def terminal(env: dict[str, str]) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_one(*argv: str) -> Terminal:
        opened.append(Terminal([*NOIZYLAB, *argv], env))
        return opened[-1]

    yield open_one
    for one in opened:
        if one.process.poll() is None:
            one.process.kill()
            one.process.wait()


def test_a_first_start_at_a_terminal_names_pairs_and_takes_the_first_steps(
    tmp_path: Path, make_node: Callable[..., NodeProcess], terminal: Callable[..., Terminal]
) -> None:
    desk, laptop = make_node("desk"), make_node("laptop").start()
    projects = tmp_path / "Projects"
    projects.mkdir()

    term = terminal("--home", str(desk.home), "start")
    term.expect("node started")
    term.expect("This machine's name, as your other machines will see it [desk]: ")
    term.type("studio")
    term.expect("this machine is called studio now")
    term.expect("(i) show a code for it, (j) type its code, (s) skip [i]: ")
    term.type("")
    shown = term.expect("Waiting for the other machine to join…")
    found = CODE.search(shown)
    assert found, shown
    assert "▀" in shown or "█" in shown, "the code is shown as a QR code too"

    printed = laptop.join(found.group(1))
    term.expect(f"Paired with laptop. Verification: {printed['verification']}  (the other machine shows the same)")
    term.expect("Let laptop run tasks on this machine? [y/N] ")
    term.type("y")
    term.expect("A folder to keep in sync with laptop (Enter for none): ")
    laptop.cli("allow", "studio", "sync")  # the laptop's own first step, so that it takes the share
    term.type(str(projects))
    term.expect("Share the clipboard with laptop? [Y/n] ")
    term.type("")
    term.expect("laptop may now: tasks, clipboard, sync (on this machine)")
    term.expect(f"{projects} is kept in sync with laptop")
    term.expect("Start NOIZYLAB (the tray) when you log in? [Y/n] ")
    term.type("")
    term.expect("Start at login: on")
    term.expect("First run done.")
    assert term.close() == 0

    (row,) = desk.json("permissions")
    assert row["name"] == "laptop" and {s for s, on in row["allowed"].items() if on} == {"tasks", "clipboard", "sync"}
    assert [s["local"] for s in desk.json("share", "list")] == [str(projects)]
    entry = tmp_path / "xdg-config" / "autostart" / f"{entry_name(Paths.resolve(desk.home))}.desktop"
    assert entry.exists()
    assert json.loads((desk.home / "state" / "first-run.json").read_text())["where"] == "terminal"
    assert laptop.peer("studio") is not None


def test_without_a_terminal_a_first_start_asks_nothing_and_returns(make_node: Callable[..., NodeProcess]) -> None:
    desk = make_node("desk")
    started = subprocess.run(
        [*NOIZYLAB, "--home", str(desk.home), "start"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(TIMEOUT_S),
    )
    assert started.returncode == 0 and started.stdout.startswith("node started")
    assert "first run" not in started.stdout.lower() and started.stderr == ""
    assert not (desk.home / "state" / "first-run.json").exists()


def test_a_first_headless_node_at_a_terminal_asks_beside_the_running_node(
    make_node: Callable[..., NodeProcess], terminal: Callable[..., Terminal]
) -> None:
    desk = make_node("desk")
    term = terminal("--home", str(desk.home), "node")
    term.expect("is running on gRPC port")
    term.expect("[desk]: ")
    term.type("")
    term.expect("(s) skip [i]: ")
    term.type("s")
    term.expect("when you log in? [Y/n] ")
    term.type("n")
    term.expect("First run done.")
    assert desk.status()["name"] == "desk"  # the node runs on
    desk.stop()
    assert term.close() == 0
    assert (desk.home / "state" / "first-run.json").exists()

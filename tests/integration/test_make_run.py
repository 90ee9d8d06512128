"""`make run` (scripts/run.py) on a Linux machine with no display and no Secret Service of its own.

It must start a headless node against a private, password-protected gnome-keyring that it starts itself, keep no
private key in a plain file, stop cleanly on SIGTERM, and refuse in one line when it cannot get a password.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from noizylab_desktop.core.nodeid import fingerprint, format_id
from noizylab_desktop.node.launcher import pid_alive
from tests.conftest import wait_for, write_config
from tests.slowness import scaled

REPO = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(REPO / "scripts" / "run.py")]
PASSWORD = "correct horse battery staple"
START_TIMEOUT_S = 60.0

# A private key in a plain file would show its PEM header, or, since the keychain layer base64-encodes what it
# stores, the base64 of that header.
_HEADERS = (b"-----BEGIN PRIVATE KEY", b"-----BEGIN EC PRIVATE KEY", b"-----BEGIN OPENSSH PRIVATE KEY")
PLAIN_KEY_MARKS = (b"PRIVATE KEY", *(base64.b64encode(h[: len(h) // 3 * 3]) for h in _HEADERS))


@dataclass
class Machine:
    """A pretend user account in tmp: home folder, XDG folders and a node home, with no display and no D-Bus."""

    root: Path
    env: dict[str, str]

    @property
    def node_home(self) -> Path:
        return Path(self.env["NOIZYLAB_HOME"])

    @property
    def keyring_folder(self) -> Path:
        return Path(self.env["XDG_DATA_HOME"]) / "noizylab" / "keyring-data"

    @property
    def runtime_file(self) -> Path:
        return self.node_home / "state" / "runtime.json"

    def running_pid(self) -> int | None:
        """The node's pid once its runtime file names a live process."""
        try:
            pid = int(json.loads(self.runtime_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None
        return pid if pid_alive(pid) else None

    def keyring_daemons(self) -> list[psutil.Process]:
        """gnome-keyring daemons started for this machine: ours, or any a D-Bus service activation started."""
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] != "gnome-keyring-daemon":
                continue
            try:
                home = process.environ().get("HOME")
            except psutil.Error:
                continue
            if home == self.env["HOME"] or any(self.env["TMPDIR"] in arg for arg in process.info["cmdline"] or []):
                found.append(process)
        return found


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "GNOME_KEYRING_CONTROL")
    }
    env.pop("NOIZYLAB_KEYRING_PASSWORD", None)
    folders = {
        "HOME": "home",
        "XDG_DATA_HOME": "home/.local/share",
        "XDG_CONFIG_HOME": "home/.config",
        "XDG_STATE_HOME": "home/.local/state",
        "XDG_CACHE_HOME": "home/.cache",
        "XDG_RUNTIME_DIR": "run",
        "TMPDIR": "tmp",
        "NOIZYLAB_HOME": "node",
    }
    for var, relative in folders.items():
        folder = tmp_path / relative
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[var] = str(folder)
    write_config(tmp_path / "node", "make-run")
    return Machine(tmp_path, env)


@dataclass
class Run:
    """One `scripts/run.py` process and its output files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"


@pytest.fixture
def launch(machine: Machine) -> Iterator[list[Run]]:
    """Runs started by a test; any still going at the end are terminated."""
    runs: list[Run] = []
    yield runs
    for run in runs:
        if run.process.poll() is None:
            run.process.terminate()
            try:
                run.process.wait(30)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()


def start_run(machine: Machine, runs: list[Run], password: str | None = PASSWORD) -> Run:
    """Start `scripts/run.py` as `make run` would, with no terminal on stdin."""
    env = dict(machine.env)
    if password is not None:
        env["NOIZYLAB_KEYRING_PASSWORD"] = password
    n = len(runs)
    stdout, stderr = machine.root / f"run{n}.out", machine.root / f"run{n}.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(RUN, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    run = Run(process, stdout, stderr)
    runs.append(run)
    return run


def wait_until_up(machine: Machine, run: Run) -> int:
    """The node's pid once it runs; fails early, with the output, if run.py exits first."""

    def up() -> int | None:
        if run.process.poll() is not None:
            raise AssertionError(f"run.py exited {run.process.returncode} before the node came up\n{run.output()}")
        return machine.running_pid()

    return int(wait_for(up, timeout=START_TIMEOUT_S, what="the node started by run.py"))


def stop_run(machine: Machine, run: Run, node_pid: int) -> None:
    """SIGTERM to run.py; it must pass it on, and everything it started must end cleanly."""
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(scaled(30)) == 0, run.output()
    assert not pid_alive(node_pid)
    assert not machine.runtime_file.exists()
    wait_for(lambda: not machine.keyring_daemons(), timeout=10, what="the private keyring daemon to exit")


class Terminal:
    """`scripts/run.py` on a pseudo-terminal (through util-linux `script`), so getpass talks to it as to a person."""

    def __init__(self, machine: Machine) -> None:
        self.process = subprocess.Popen(
            ["script", "--quiet", "--return", "--command", shlex.join(RUN), "/dev/null"],
            cwd=REPO,
            env=machine.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.screen = b""

    def expect(self, text: str, timeout: float = 20) -> None:
        """Wait until ``text`` has been shown."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + scaled(timeout)
        while text.encode() not in self.screen:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                raise AssertionError(f"{text!r} never appeared; the terminal showed:\n{self.screen.decode()}")
            self.screen += chunk

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def close(self) -> int:
        """Read what is left, and the exit code."""
        rest, _ = self.process.communicate(timeout=scaled(30))
        self.screen += rest
        return self.process.returncode


@pytest.fixture
def terminal(machine: Machine) -> Iterator[Terminal]:
    term = Terminal(machine)
    yield term
    if term.process.poll() is None:
        term.process.kill()
        term.process.communicate()


def files_holding_a_plain_key(*folders: Path) -> list[str]:
    hits = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                hits += [f"{path}: {mark!r}" for mark in PLAIN_KEY_MARKS if mark in data]
    return hits


@pytest.mark.slow
def test_without_a_display_or_secret_service_it_runs_a_node_on_a_private_encrypted_keyring(
    machine: Machine, launch: list[Run]
) -> None:
    run = start_run(machine, launch)
    node_pid = wait_until_up(machine, run)

    assert (machine.node_home / "state" / "node-cert.pem").exists(), "the node made its identity"
    assert (machine.keyring_folder / "keyrings" / "login.keyring").stat().st_size > 0, "its secrets went there"
    assert machine.keyring_folder.stat().st_mode & 0o777 == 0o700
    assert files_holding_a_plain_key(machine.node_home, machine.keyring_folder) == []
    assert psutil.Process(node_pid).cmdline()[-1] == "node", "headless: no display"
    assert len(machine.keyring_daemons()) == 1, "one keyring daemon, run.py's own"

    stop_run(machine, run, node_pid)


@pytest.mark.slow
def test_a_second_run_unlocks_the_same_keyring_and_keeps_the_node_identity(machine: Machine, launch: list[Run]) -> None:
    first = start_run(machine, launch)
    stop_run(machine, first, wait_until_up(machine, first))
    cert = (machine.node_home / "state" / "node-cert.pem").read_bytes()

    second = start_run(machine, launch)
    node_pid = wait_until_up(machine, second)

    assert (machine.node_home / "state" / "node-cert.pem").read_bytes() == cert
    stop_run(machine, second, node_pid)


@pytest.mark.slow
def test_a_wrong_password_for_an_existing_keyring_is_refused_in_one_line(machine: Machine, launch: list[Run]) -> None:
    first = start_run(machine, launch)
    stop_run(machine, first, wait_until_up(machine, first))

    wrong = start_run(machine, launch, "not the password")

    assert wrong.process.wait(30) == 1
    error = wrong.stderr.read_text().strip().splitlines()
    assert len(error) == 1 and "wrong password" in error[0] and "NOIZYLAB_KEYRING_PASSWORD" in error[0], error
    assert machine.running_pid() is None
    wait_for(lambda: not machine.keyring_daemons(), timeout=10, what="the private keyring daemon to exit")


def test_without_a_terminal_or_password_variable_it_exits_1_naming_the_variable(
    machine: Machine, launch: list[Run]
) -> None:
    run = start_run(machine, launch, None)

    assert run.process.wait(30) == 1
    error = run.stderr.read_text().strip().splitlines()
    assert len(error) == 1 and "NOIZYLAB_KEYRING_PASSWORD" in error[0], error
    assert not machine.runtime_file.exists()


def test_on_a_terminal_a_new_keyring_password_is_asked_twice_then_the_node_runs_and_asks_its_first_run(
    machine: Machine, terminal: Terminal
) -> None:
    terminal.expect("Choose a password for the NOIZYLAB keyring")
    terminal.type(PASSWORD)
    terminal.expect("again")
    terminal.type(PASSWORD)

    def up() -> int | None:
        if terminal.process.poll() is not None:
            raise AssertionError(f"run.py ended before the node came up:\n{(terminal.close(), terminal.screen)}")
        return machine.running_pid()

    node_pid = int(wait_for(up, timeout=START_TIMEOUT_S, what="the node"))
    # The node has the terminal (its process group is the foreground one), so its first-run questions can be
    # answered; in the background, its first read would have stopped it (SIGTTIN) for good.
    terminal.expect("This machine's name")
    terminal.type("")
    terminal.expect("Pair with another machine")
    terminal.type("s")
    terminal.expect("when you log in?")
    terminal.type("n")
    terminal.expect("First run done")

    assert PASSWORD not in terminal.screen.decode(), "the password is not echoed"
    run_py = psutil.Process(node_pid).parent()  # inside `script`
    assert run_py is not None and "scripts/run.py" in " ".join(run_py.cmdline())
    run_py.send_signal(signal.SIGTERM)
    assert terminal.close() == 0, terminal.screen.decode()
    assert not pid_alive(node_pid)


def test_on_a_terminal_two_different_new_passwords_are_refused(machine: Machine, terminal: Terminal) -> None:
    terminal.expect("Choose a password for the NOIZYLAB keyring")
    terminal.type(PASSWORD)
    terminal.expect("again")
    terminal.type("something else")

    assert terminal.close() == 1
    assert "run: error: the two passwords differ" in terminal.screen.decode()
    assert not (machine.keyring_folder / "keyrings").exists()


def run_plain(machine: Machine, *args: str) -> subprocess.CompletedProcess[str]:
    """`scripts/run.py ARGS` with no keyring password and no terminal: whatever needs a keychain must fail."""
    return subprocess.run(
        [*RUN, *args],
        cwd=REPO,
        env=machine.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )


@pytest.mark.slow
def test_the_version_help_and_an_existing_nodes_id_need_no_keychain(machine: Machine, launch: list[Run]) -> None:
    version = run_plain(machine, "--version")
    assert (version.returncode, version.stdout.split()[0]) == (0, "noizylab"), version.stderr
    assert run_plain(machine, "--help").returncode == 0
    assert run_plain(machine, "status", "--help").returncode == 0
    new = run_plain(machine, "id")
    assert new.returncode == 1 and "NOIZYLAB_KEYRING_PASSWORD" in new.stderr, "a new node's ID needs its new key"

    first = start_run(machine, launch)
    stop_run(machine, first, wait_until_up(machine, first))
    known = run_plain(machine, "id", "--json")

    assert known.returncode == 0, known.stderr
    cert = (machine.node_home / "state" / "node-cert.pem").read_bytes()
    assert json.loads(known.stdout)["id"] == format_id(fingerprint(cert_der(cert)))
    assert machine.keyring_daemons() == []


def cert_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)

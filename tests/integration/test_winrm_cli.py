"""``noizylab winrm login|run|bootstrap|logout`` as a person types them, against the stand-in Windows listener."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NOIZYLAB

from .winrm_endpoint import Endpoint, Recorded, winrm_endpoint

PASSWORD = "Corr3ct-Horse!"


@pytest.fixture()
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    monkeypatch.setenv("NTLM_USER_FILE", str(tmp_path / "ntlm-users"))
    with winrm_endpoint(tmp_path, {"alice": PASSWORD}) as running:
        running.commands["hostname"] = Recorded(stdout=(b"OMEN\r\n",))
        running.commands['cmd /c "echo oops 1>&2 & exit 3"'] = Recorded(stderr=b"oops \r\n", exit_code=3)
        yield running


def noizylab(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # Text mode turns Windows' CRLF line ends into "\n", as a terminal shows them.
    return subprocess.run(
        [*NOIZYLAB, "--home", str(home), "winrm", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_login_then_run_streams_output_and_exits_with_the_remote_code(tmp_path: Path, endpoint: Endpoint) -> None:
    home = tmp_path / "home"
    login = noizylab(home, "login", "127.0.0.1", "--user", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert (login.returncode, login.stdout) == (0, "stored the WinRM login for alice@127.0.0.1 in the keychain\n")
    assert PASSWORD not in (home / "config.toml").read_text()
    where = ["127.0.0.1", "--port", str(endpoint.port), "--ca-file", str(endpoint.cert_file)]
    ok = noizylab(home, "run", *where, "--", "hostname")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "OMEN\n", "")
    failing = noizylab(home, "run", *where, "--", "cmd", "/c", "echo oops 1>&2 & exit 3")
    assert (failing.returncode, failing.stdout, failing.stderr) == (3, "", "oops \n")


def test_bootstrap_prints_the_started_nodes_status(tmp_path: Path, endpoint: Endpoint) -> None:
    home = tmp_path / "home"
    noizylab(home, "login", "127.0.0.1", "--user", "alice", "--password-stdin", stdin=PASSWORD)
    endpoint.powershell_reply = Recorded(stdout=(b'{"id": "ABCD", "name": "omen"}\r\n',))
    started = noizylab(
        home, "bootstrap", "127.0.0.1", "--port", str(endpoint.port), "--ca-file", str(endpoint.cert_file)
    )
    assert started.returncode == 0, started.stderr
    assert started.stdout == '{"id": "ABCD", "name": "omen"}\n'
    assert started.stderr.splitlines()[-1] == "NOIZYLAB runs on 127.0.0.1: pair it with `noizylab pair invite` there"
    endpoint.powershell_reply = Recorded(stderr=b"NOIZYLAB is not installed on this computer\r\n", exit_code=3)
    missing = noizylab(
        home, "bootstrap", "127.0.0.1", "--port", str(endpoint.port), "--ca-file", str(endpoint.cert_file)
    )
    assert missing.returncode == 3
    assert "NOIZYLAB is not installed on this computer" in missing.stderr


def test_errors_are_one_line_and_change_nothing(tmp_path: Path, endpoint: Endpoint) -> None:
    home = tmp_path / "home"
    where = ["127.0.0.1", "--port", str(endpoint.port), "--ca-file", str(endpoint.cert_file)]
    nologin = noizylab(home, "run", *where, "--", "hostname")
    assert (nologin.returncode, nologin.stderr) == (
        1,
        "noizylab: error: no WinRM login stored for 127.0.0.1: run `noizylab winrm login 127.0.0.1 --user USER`\n",
    )
    noizylab(home, "login", "127.0.0.1", "--user", "alice", "--password-stdin", stdin="not-the-password")
    wrong = noizylab(home, "run", *where, "--", "hostname")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(f"noizylab: error: 127.0.0.1:{endpoint.port} refused the login for alice (HTTP 401)")
    assert wrong.stderr.count("\n") == 1
    untrusted = noizylab(home, "run", "127.0.0.1", "--port", str(endpoint.port), "--", "hostname")
    assert untrusted.returncode == 1
    assert untrusted.stderr.startswith(f"noizylab: error: TLS with 127.0.0.1:{endpoint.port} failed (")
    nocommand = noizylab(home, "run", *where)
    assert nocommand.stderr == (
        "noizylab: error: no command given: put it after `--`, e.g. `noizylab winrm run HOST -- ipconfig /all`\n"
    )
    contradiction = noizylab(home, "run", *where, "--insecure-skip-verify", "--", "hostname")
    assert contradiction.stderr == (
        "noizylab: error: --ca-file and --insecure-skip-verify contradict each other: choose one\n"
    )
    empty = noizylab(home, "login", "127.0.0.1", "--user", "alice", "--password-stdin", stdin="\n")
    assert (empty.returncode, empty.stderr) == (1, "noizylab: error: no password given: nothing was stored\n")
    assert endpoint.actions == []  # no shell was ever opened by any of these


def test_logout_forgets_the_login(tmp_path: Path, endpoint: Endpoint) -> None:
    home = tmp_path / "home"
    noizylab(home, "login", "127.0.0.1", "--user", "alice", "--password-stdin", stdin=PASSWORD)
    out = noizylab(home, "logout", "127.0.0.1")
    assert (out.returncode, out.stdout) == (0, "forgot the WinRM login for alice@127.0.0.1\n")
    again = noizylab(home, "run", "127.0.0.1", "--port", str(endpoint.port), "--", "hostname")
    assert again.stderr.startswith("noizylab: error: no WinRM login stored for 127.0.0.1")

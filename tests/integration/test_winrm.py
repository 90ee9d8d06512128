"""WinRM against a stand-in Windows listener on loopback: HTTPS, NTLM checked for real, the WS-Management exchange."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from noizylab_desktop.core.errors import WinRMError
from noizylab_desktop.core.secrets import KeyringStore
from noizylab_desktop.services.winrm import (
    BOOTSTRAP_SCRIPT,
    WinRMTarget,
    bootstrap,
    forget_login,
    load_login,
    run,
    save_login,
)

from .winrm_endpoint import Endpoint, Recorded, winrm_endpoint

PASSWORD = "Corr3ct-Horse!"
IPCONFIG = Recorded(
    stdout=(
        b"\r\nWindows IP Configuration\r\n\r\n",
        b"Ethernet adapter Ethernet:\r\n\r\n   IPv4 Address. . . . . . . . . . . : 192.168.1.42\r\n",
    ),
    exit_code=0,
)


@pytest.fixture()
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    monkeypatch.setenv("NTLM_USER_FILE", str(tmp_path / "ntlm-users"))
    with winrm_endpoint(tmp_path, {"alice": PASSWORD, "OMEN\\bob": "b0b-pass"}) as running:
        running.commands["ipconfig /all"] = IPCONFIG
        running.commands['cmd /c "exit 7"'] = Recorded(stderr=b"failing on purpose\r\n", exit_code=7)
        yield running


def target(endpoint: Endpoint, **changes: object) -> WinRMTarget:
    values: dict[str, object] = {"host": "127.0.0.1", "user": "alice", "port": endpoint.port}
    values["ca_file"] = str(endpoint.cert_file)
    values.update(changes)
    return WinRMTarget(**values)  # type: ignore[arg-type]


def test_a_command_runs_with_ntlm_and_streams_its_output_in_order(endpoint: Endpoint) -> None:
    chunks: list[tuple[str, bytes]] = []
    result = run(target(endpoint), PASSWORD, ["ipconfig", "/all"], on_output=lambda s, d: chunks.append((s, d)))
    assert result.exit_code == 0
    assert result.stdout == b"".join(IPCONFIG.stdout)
    assert chunks == [("stdout", IPCONFIG.stdout[0]), ("stdout", IPCONFIG.stdout[1])]
    # NTLM, not Basic: first the bare request, then negotiate and authenticate; the password checked by the acceptor.
    assert endpoint.auth_headers == ["", "NTLM", "NTLM"]
    assert [login.rsplit("\\", 1)[-1] for login in endpoint.logins] == ["alice"]
    # The whole shell lifecycle, including Windows' quiet-poll timeout fault, which is retried.
    assert endpoint.actions == ["Create", "Command", "Receive", "Receive", "Receive", "Signal", "Delete"]
    assert endpoint.shells_open == set()


def test_the_shell_asks_for_utf8_and_the_command_line_is_quoted_for_windows(endpoint: Endpoint) -> None:
    endpoint.commands['echo "two words" C:\\Users'] = Recorded(stdout=(b"two words\r\n",))
    result = run(target(endpoint), PASSWORD, ["echo", "two words", "C:\\Users"])
    assert (result.stdout, result.exit_code) == (b"two words\r\n", 0)
    create = endpoint.requests[0]
    options = {o.get("Name"): o.text for o in create.iter("{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}Option")}
    assert options["WINRS_CODEPAGE"] == "65001"


def test_stderr_and_the_exit_code_pass_through(endpoint: Endpoint) -> None:
    result = run(target(endpoint), PASSWORD, ["cmd", "/c", "exit 7"])
    assert (result.stdout, result.stderr, result.exit_code) == (b"", b"failing on purpose\r\n", 7)
    unknown = run(target(endpoint), PASSWORD, ["no-such-tool"])
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith(b"'no-such-tool' is not recognized as an internal or external command")


def test_a_domain_account_logs_in(endpoint: Endpoint) -> None:
    run(target(endpoint, user="OMEN\\bob"), "b0b-pass", ["ipconfig", "/all"])
    assert endpoint.logins[-1].upper() == "OMEN\\BOB"


def test_a_wrong_password_is_one_line_and_opens_no_shell(endpoint: Endpoint) -> None:
    with pytest.raises(WinRMError) as caught:
        run(target(endpoint), "wrong-password", ["ipconfig", "/all"])
    assert caught.value.message == (
        f"127.0.0.1:{endpoint.port} refused the login for alice (HTTP 401): check the password and store it again "
        "with `noizylab winrm login 127.0.0.1 --user alice`"
    )
    assert endpoint.refused_logins == 1
    assert endpoint.actions == []


def test_an_unreachable_host_is_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(WinRMError) as caught:
        run(WinRMTarget("127.0.0.1", "alice", port=port, timeout_s=5), PASSWORD, ["ipconfig"])
    assert caught.value.message.startswith(f"cannot reach WinRM at 127.0.0.1:{port}: is the host on")
    assert "\n" not in caught.value.message


def test_an_untrusted_certificate_is_refused_unless_the_user_says_otherwise(endpoint: Endpoint) -> None:
    with pytest.raises(WinRMError) as caught:
        run(target(endpoint, ca_file=None), PASSWORD, ["ipconfig", "/all"])
    assert caught.value.message.startswith(f"TLS with 127.0.0.1:{endpoint.port} failed (")
    assert caught.value.message.endswith(
        "pass --ca-file with that host's WinRM certificate, or --insecure-skip-verify only on a network you trust"
    )
    assert endpoint.auth_headers == []  # nothing, not even the user name, went out before TLS was trusted
    result = run(target(endpoint, ca_file=None, verify=False), PASSWORD, ["ipconfig", "/all"])
    assert result.exit_code == 0


def test_basic_auth_goes_only_over_https_and_is_refused_by_an_ntlm_only_host(endpoint: Endpoint) -> None:
    assert target(endpoint, auth="basic").endpoint.startswith("https://")
    with pytest.raises(WinRMError, match="refused the login for alice"):
        run(target(endpoint, auth="basic"), PASSWORD, ["ipconfig", "/all"])
    assert endpoint.auth_headers == ["Basic"]


def test_bootstrap_starts_the_installed_app_outside_the_shell_and_reports_its_status(endpoint: Endpoint) -> None:
    endpoint.powershell_reply = Recorded(stdout=(b'{"id": "ABCD-EFGH", "name": "omen"}\r\n',))
    result = bootstrap(target(endpoint), PASSWORD)
    assert result.exit_code == 0
    assert b'"name": "omen"' in result.stdout
    assert endpoint.powershell == [BOOTSTRAP_SCRIPT]
    assert "Win32_Process" in BOOTSTRAP_SCRIPT and '" start"' in BOOTSTRAP_SCRIPT
    assert "Invoke-WebRequest" not in BOOTSTRAP_SCRIPT and "http" not in BOOTSTRAP_SCRIPT.lower()


def test_logins_live_in_the_keychain() -> None:
    store = KeyringStore(f"winrm-test-{uuid.uuid4().hex}")
    with pytest.raises(WinRMError) as caught:
        load_login(store, "omen.local", None)
    assert (
        caught.value.message
        == "no WinRM login stored for omen.local: run `noizylab winrm login omen.local --user USER`"
    )
    save_login(store, "Omen.local", "alice", PASSWORD)
    assert load_login(store, "omen.local", None) == ("alice", PASSWORD)
    assert load_login(store, "OMEN.LOCAL", "alice") == ("alice", PASSWORD)
    with pytest.raises(WinRMError, match="no WinRM password stored for bob@omen.local"):
        load_login(store, "omen.local", "bob")
    forget_login(store, "omen.local", "alice")
    with pytest.raises(WinRMError):
        load_login(store, "omen.local", "alice")


def test_ctrl_c_mid_output_terminates_the_remote_command_and_closes_the_shell(endpoint: Endpoint) -> None:
    def interrupt(stream: str, data: bytes) -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the command line while output streams

    with pytest.raises(KeyboardInterrupt):
        run(target(endpoint), PASSWORD, ["ipconfig", "/all"], on_output=interrupt)
    assert endpoint.actions == ["Create", "Command", "Receive", "Receive", "Signal", "Delete"]
    signal = endpoint.requests[-2]
    code = signal.findtext(".//{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}Code")
    assert code == "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
    assert endpoint.shells_open == set()

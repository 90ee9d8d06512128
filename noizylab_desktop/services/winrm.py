"""Windows peers without the app: run commands over WinRM (WS-Management over HTTPS, NTLM by default).

``pywinrm`` speaks the protocol; this module chooses safe options (HTTPS only, certificate checked unless the user
says otherwise, Basic only when asked and still over HTTPS), keeps each host's login in the OS keychain, streams a
command's output as it arrives, and turns every transport failure into one ``WinRMError`` line. Blocking: call it
from a thread.
"""

from __future__ import annotations

import base64
import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from noizylab_desktop.core.errors import WinRMError
from noizylab_desktop.core.secrets import SecretStore

if TYPE_CHECKING:
    from winrm.protocol import Protocol

logger = logging.getLogger(__name__)

DEFAULT_PORT = 5986
Auth = Literal["ntlm", "basic"]
Output = Callable[[str, bytes], None]  # (stream name, bytes) as they arrive

# Starts the installed app on the Windows peer. Processes started inside a WinRM shell die when the shell closes,
# so the node is started through WMI (Win32_Process.Create), which runs it outside the shell; nothing is downloaded.
BOOTSTRAP_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$exe = (Get-Command noizylab.exe -ErrorAction SilentlyContinue).Source
if (-not $exe) {
  $exe = @(
    "$env:LOCALAPPDATA\Programs\NOIZYLAB\noizylab.exe",
    "$env:ProgramFiles\NOIZYLAB\noizylab.exe"
  ) | Where-Object { Test-Path $_ } | Select-Object -First 1
}
if (-not $exe) { [Console]::Error.WriteLine('NOIZYLAB is not installed on this computer'); exit 3 }
$started = Invoke-CimMethod -ClassName Win32_Process -MethodName Create -Arguments @{ CommandLine = "`"$exe`" start" }
if ($started.ReturnValue -ne 0) { [Console]::Error.WriteLine("starting $exe failed: $($started.ReturnValue)"); exit 4 }
foreach ($i in 1..60) {
  $status = & $exe status --json 2>$null
  if ($LASTEXITCODE -eq 0) { Write-Output $status; exit 0 }
  Start-Sleep -Milliseconds 500
}
[Console]::Error.WriteLine('NOIZYLAB did not come up within 30 s: see noizylab logs on that computer'); exit 5
"""


@dataclass(frozen=True)
class WinRMTarget:
    """One Windows host's WinRM HTTPS listener and how to trust and log in to it."""

    host: str
    user: str
    port: int = DEFAULT_PORT
    auth: Auth = "ntlm"
    verify: bool = True  # check the host's certificate (against ``ca_file`` when given, else the system's CAs)
    ca_file: str | None = None
    timeout_s: float = 30.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/wsman"


@dataclass(frozen=True)
class CommandResult:
    """What a remote command printed and how it ended."""

    stdout: bytes
    stderr: bytes
    exit_code: int


def _password_key(host: str, user: str) -> str:
    return f"winrm:{host.lower()}:{user.lower()}"


def _user_key(host: str) -> str:
    return f"winrm-user:{host.lower()}"


def save_login(store: SecretStore, host: str, user: str, password: str) -> None:
    """Keep ``user``'s password for ``host`` in the keychain, and remember ``user`` as that host's default."""
    if not user or not password:
        raise WinRMError("a WinRM login needs a user name and a password")
    store.set(_password_key(host, user), password.encode())
    store.set(_user_key(host), user.encode())


def forget_login(store: SecretStore, host: str, user: str) -> None:
    """Remove a stored login; absent is fine."""
    store.delete(_password_key(host, user))
    stored = store.get(_user_key(host))
    if stored is not None and stored.decode().lower() == user.lower():
        store.delete(_user_key(host))


def load_login(store: SecretStore, host: str, user: str | None) -> tuple[str, str]:
    """The user (given, or the host's remembered one) and its password from the keychain."""
    if not user:
        stored = store.get(_user_key(host))
        if stored is None:
            raise WinRMError(f"no WinRM login stored for {host}: run `noizylab winrm login {host} --user USER`")
        user = stored.decode()
    password = store.get(_password_key(host, user))
    if password is None:
        raise WinRMError(f"no WinRM password stored for {user}@{host}: run `noizylab winrm login {host} --user {user}`")
    return user, password.decode()


def command_line(argv: Sequence[str]) -> str:
    """``argv`` quoted the way Windows programs split their command line."""
    if not argv:
        raise WinRMError("no command given: put it after `--`, e.g. `noizylab winrm run HOST -- ipconfig /all`")
    return subprocess.list2cmdline(list(argv))


def powershell_argv(script: str) -> list[str]:
    """A PowerShell invocation that runs ``script`` without any quoting trouble (``-EncodedCommand``)."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", encoded]


def run(target: WinRMTarget, password: str, argv: Sequence[str], on_output: Output | None = None) -> CommandResult:
    """Run ``argv`` on the host in a fresh shell; output goes to ``on_output`` as it arrives and is returned too."""
    line = command_line(argv)
    from winrm.exceptions import WinRMOperationTimeoutError

    protocol = _protocol(target, password)
    out: list[bytes] = []
    err: list[bytes] = []
    with _translated(target):
        shell_id = protocol.open_shell(codepage=65001)  # UTF-8 output
        try:
            command_id = protocol.run_command(shell_id, line)
            try:
                done = False
                exit_code = -1
                while not done:
                    try:
                        stdout, stderr, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)
                    except WinRMOperationTimeoutError:
                        continue  # the command is still running and printed nothing during the last poll
                    for name, data, kept in (("stdout", stdout, out), ("stderr", stderr, err)):
                        if data:
                            kept.append(data)
                            if on_output is not None:
                                on_output(name, data)
            finally:
                protocol.cleanup_command(shell_id, command_id)
        finally:
            protocol.close_shell(shell_id)
    logger.info("winrm %s@%s: %s exited %d", target.user, target.where, argv[0], exit_code)
    return CommandResult(b"".join(out), b"".join(err), exit_code)


def run_powershell(target: WinRMTarget, password: str, script: str, on_output: Output | None = None) -> CommandResult:
    """Run a PowerShell script on the host."""
    return run(target, password, powershell_argv(script), on_output)


def bootstrap(target: WinRMTarget, password: str, on_output: Output | None = None) -> CommandResult:
    """Start the installed NOIZYLAB node on the host; its ``status --json`` comes back on stdout."""
    return run_powershell(target, password, BOOTSTRAP_SCRIPT, on_output)


def _protocol(target: WinRMTarget, password: str) -> Protocol:
    from winrm.protocol import Protocol

    return Protocol(
        endpoint=target.endpoint,
        transport=target.auth,
        username=target.user,
        password=password,
        server_cert_validation="validate" if target.verify else "ignore",
        ca_trust_path=target.ca_file or _system_cas(),
        # A peer on the person's own network: never route it through an environment proxy.
        proxy=None,
        # WS-Management wants whole seconds, and the HTTP read must outlast the operation it waits for.
        read_timeout_sec=max(1, round(target.timeout_s)) + 10,
        operation_timeout_sec=max(1, round(target.timeout_s)),
        message_encryption="auto",  # no extra NTLM sealing inside HTTPS; HTTPS already encrypts
    )


def _system_cas() -> str:
    import certifi

    return str(certifi.where())


class _translated:
    """Turns pywinrm's and requests' failures into one ``WinRMError`` line naming the host and the fix."""

    def __init__(self, target: WinRMTarget) -> None:
        self.target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, WinRMError) or not isinstance(exc, Exception):
            return
        raise _explain(self.target, exc) from exc


def _explain(target: WinRMTarget, exc: Exception) -> WinRMError:
    import requests
    from winrm.exceptions import InvalidCredentialsError, WinRMTransportError, WSManFaultError

    where = target.where
    if isinstance(exc, InvalidCredentialsError):
        return WinRMError(
            f"{where} refused the login for {target.user} (HTTP 401): check the password and store it again "
            f"with `noizylab winrm login {target.host} --user {target.user}`"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return WinRMError(
            f"TLS with {where} failed ({_first_line(exc)}): pass --ca-file with that host's WinRM certificate, "
            "or --insecure-skip-verify only on a network you trust"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return WinRMError(f"{where} did not answer within {target.timeout_s:g} s: is the host awake?")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return WinRMError(
            f"cannot reach WinRM at {where}: is the host on, and does it listen for WinRM over HTTPS "
            "(`winrm quickconfig -transport:https` there)?"
        )
    if isinstance(exc, WSManFaultError):
        return WinRMError(f"{where} refused the request: {_first_line_of(exc.reason)}")
    if isinstance(exc, WinRMTransportError):
        return WinRMError(f"{where} answered HTTP {exc.code}: is it a WinRM listener?")
    return WinRMError(f"WinRM with {where} failed: {type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return _first_line_of(str(exc))


def _first_line_of(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 200 else line[:199] + "…"

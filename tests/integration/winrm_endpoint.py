"""A stand-in Windows WinRM HTTPS listener for the WinRM tests: no Windows host is here.

It does what Windows does on the wire: TLS with its own self-signed certificate, NTLM's three-step handshake checked
for real by pyspnego's NTLM acceptor (the password, and the channel binding to this certificate), then the
WS-Management shell exchange (Create, Command, Receive with base64 stdout/stderr streams and the exit code, Signal,
Delete) with replies in the shape of a recorded Windows exchange (the envelopes of pywinrm's own recorded fixtures,
plus the operation-timeout fault Windows sends while a command is quiet), their IDs filled in per request. Commands
are not run: each known command line replays its recorded output; anything else gets cmd.exe's "is not recognized".
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import ssl
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import spnego
import spnego.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from spnego.channel_bindings import GssChannelBindings

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"

_ENVELOPE = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{message_id}</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
_CREATED = (
    "<x:ResourceCreated><a:Address>https://{host}:5986/wsman</a:Address><a:ReferenceParameters>"
    "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
    '<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
    '</x:ResourceCreated><rsp:Shell xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
    "<rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
    "</rsp:ResourceUri><rsp:Owner>OMEN\\{user}</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP>"
    "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams>"
    "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
    "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
)
_OPERATION_TIMEOUT = (
    "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode></s:Code>"
    '<s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the time '
    "specified in OperationTimeout.  </s:Text></s:Reason><s:Detail>"
    '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" '
    'Machine="omen"><f:Message>The WS-Management service cannot complete the operation within the time specified '
    "in OperationTimeout.  </f:Message></f:WSManFault></s:Detail></s:Fault>"
)
NOT_RECOGNIZED = "'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"


@dataclass(frozen=True)
class Recorded:
    """A command's recorded output: stdout in chunks (one per Receive), stderr, exit code."""

    stdout: tuple[bytes, ...] = ()
    stderr: bytes = b""
    exit_code: int = 0


@dataclass
class Endpoint:
    """The running listener: where it is, what it answers, and what it saw."""

    host: str
    port: int
    cert_file: Path
    commands: dict[str, Recorded] = field(default_factory=dict)
    powershell: list[str] = field(default_factory=list)  # decoded -EncodedCommand scripts
    powershell_reply: Recorded = field(default_factory=Recorded)
    actions: list[str] = field(default_factory=list)
    requests: list[ET.Element] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)  # principals NTLM authenticated
    auth_headers: list[str] = field(default_factory=list)  # scheme of each Authorization header seen
    refused_logins: int = 0
    shells_open: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def make_certificate(folder: Path) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert file, key file, DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omen")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "winrm-cert.pem", folder / "winrm-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: Endpoint
    bindings: GssChannelBindings


class _Handler(BaseHTTPRequestHandler):
    """One TCP connection: NTLM authenticates the connection, then its requests are served without re-auth."""

    server: _Server
    protocol_version = "HTTP/1.1"
    ntlm: Any = None
    authenticated = False

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet; the tests assert on what the endpoint recorded."""

    def _reply(self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        endpoint = self.server.endpoint
        if not self.authenticated:
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            with endpoint.lock:
                endpoint.auth_headers.append(scheme)
            if scheme not in ("NTLM", "Negotiate"):
                # Windows offers both; clients that prefer NTLM pick it.
                self._reply(401, headers=(("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")))
                return
            if self.ntlm is None:
                self.ntlm = spnego.server(protocol="ntlm", channel_bindings=self.server.bindings)
            try:
                answer = self.ntlm.step(base64.b64decode(token))
            except spnego.exceptions.SpnegoError:
                self.ntlm = None
                with endpoint.lock:
                    endpoint.refused_logins += 1
                self._reply(401, headers=(("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")))
                return
            if not self.ntlm.complete:
                assert answer is not None
                self._reply(401, headers=(("WWW-Authenticate", f"{scheme} {base64.b64encode(answer).decode()}"),))
                return
            self.authenticated = True
            with endpoint.lock:
                endpoint.logins.append(str(self.ntlm.client_principal))
        self._reply(200, self._soap(ET.fromstring(body)))

    def _soap(self, request: ET.Element) -> bytes:
        endpoint = self.server.endpoint
        action = request.findtext("s:Header/a:Action", "", NS)
        message_id = request.findtext("s:Header/a:MessageID", "", NS)
        shell_id = request.findtext("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", "", NS)
        with endpoint.lock:
            endpoint.actions.append(action.rsplit("/", 1)[-1])
            endpoint.requests.append(request)
        if action == f"{TRANSFER}/Create":
            shell_id = str(uuid.uuid4()).upper()
            with endpoint.lock:
                endpoint.shells_open.add(shell_id)
            user = (endpoint.logins[-1] if endpoint.logins else "").rsplit("\\", 1)[-1]
            return _envelope(
                f"{TRANSFER}/CreateResponse",
                message_id,
                _CREATED.format(host=endpoint.host, shell_id=shell_id, user=user),
            )
        if action == f"{SHELL}/Command":
            self.server_command = self._recorded(request)
            self.receives = 0
            self.command_id = str(uuid.uuid4()).upper()
            body = f"<rsp:CommandResponse><rsp:CommandId>{self.command_id}</rsp:CommandId></rsp:CommandResponse>"
            return _envelope(f"{SHELL}/CommandResponse", message_id, body)
        if action == f"{SHELL}/Receive":
            return self._receive(message_id)
        if action == f"{SHELL}/Signal":
            return _envelope(f"{SHELL}/SignalResponse", message_id, "<rsp:SignalResponse/>")
        if action == f"{TRANSFER}/Delete":
            with endpoint.lock:
                endpoint.shells_open.discard(shell_id)
            return _envelope(f"{TRANSFER}/DeleteResponse", message_id, "")
        raise AssertionError(f"unexpected WS-Management action {action}")

    def _recorded(self, request: ET.Element) -> Recorded:
        endpoint = self.server.endpoint
        command = request.findtext("s:Body/rsp:CommandLine/rsp:Command", "", NS)
        arguments = request.findtext("s:Body/rsp:CommandLine/rsp:Arguments", "", NS)
        line = f"{command} {arguments}".strip()
        if "-EncodedCommand" in line:
            script = base64.b64decode(line.rsplit(" ", 1)[-1]).decode("utf-16-le")
            with endpoint.lock:
                endpoint.powershell.append(script)
            return endpoint.powershell_reply
        if line in endpoint.commands:
            return endpoint.commands[line]
        name = line.split(" ", 1)[0]
        return Recorded(stderr=NOT_RECOGNIZED.format(name=name).encode(), exit_code=1)

    def _receive(self, message_id: str) -> bytes:
        """First Receive: the operation timeout Windows sends while a command is quiet; then one chunk a Receive."""
        recorded: Recorded = self.server_command
        self.receives += 1
        if self.receives == 1:
            raise _Fault(_envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", message_id, _OPERATION_TIMEOUT))
        index = self.receives - 2
        streams = []
        if index < len(recorded.stdout):
            data = base64.b64encode(recorded.stdout[index]).decode()
            streams.append(f'<rsp:Stream Name="stdout" CommandId="{self.command_id}">{data}</rsp:Stream>')
        last = index >= len(recorded.stdout) - 1
        if last:
            if recorded.stderr:
                data = base64.b64encode(recorded.stderr).decode()
                streams.append(f'<rsp:Stream Name="stderr" CommandId="{self.command_id}">{data}</rsp:Stream>')
            streams.append(f'<rsp:Stream Name="stdout" CommandId="{self.command_id}" End="true"></rsp:Stream>')
            streams.append(f'<rsp:Stream Name="stderr" CommandId="{self.command_id}" End="true"></rsp:Stream>')
            state = (
                f'<rsp:CommandState CommandId="{self.command_id}" State="{SHELL}/CommandState/Done">'
                f"<rsp:ExitCode>{recorded.exit_code}</rsp:ExitCode></rsp:CommandState>"
            )
        else:
            state = f'<rsp:CommandState CommandId="{self.command_id}" State="{SHELL}/CommandState/Running"/>'
        body = f"<rsp:ReceiveResponse>{''.join(streams)}{state}</rsp:ReceiveResponse>"
        return _envelope(f"{SHELL}/ReceiveResponse", message_id, body)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Fault as fault:
            self._reply(500, fault.body)


class _Fault(Exception):
    def __init__(self, body: bytes) -> None:
        super().__init__("fault")
        self.body = body


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return _ENVELOPE.format(
        action=action, message_id=str(uuid.uuid4()).upper(), relates_to=relates_to, body=body
    ).encode()


@contextmanager
def winrm_endpoint(folder: Path, users: dict[str, str]) -> Iterator[Endpoint]:
    """A listener on 127.0.0.1 that accepts ``users`` (``{"OMEN\\\\alice": password}`` or ``{"alice": ...}``)."""
    cert_file, key_file, der = make_certificate(folder)
    lines = []
    for principal, password in users.items():
        domain, _, user = principal.rpartition("\\")
        lines.append(f"{domain}:{user}:{password}")
    user_file = folder / "ntlm-users"
    user_file.write_text("\n".join(lines) + "\n")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # RFC 5929 tls-server-end-point: the client must bind its NTLM answer to this very certificate.
    server.bindings = GssChannelBindings(application_data=b"tls-server-end-point:" + hashlib.sha256(der).digest())
    server.endpoint = Endpoint("127.0.0.1", server.server_address[1], cert_file)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-winrm", daemon=True)
    thread.start()
    try:
        yield server.endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

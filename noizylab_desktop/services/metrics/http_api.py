"""The HTTP side: ``/metrics`` for Prometheus and ``/api/v1/...`` (JSON) for dashboards, behind bearer tokens.

It is the standard library's threading HTTP server in a thread of its own, with prometheus_client's text
exposition. That keeps scrapes off the node's event loop (the same code under qasync and plain asyncio, with no
extra async web framework to keep in step with both) and reads only the immutable views the sampler publishes.

Each connection costs a thread, so none may be held for free: a connection waits at most ``IDLE_TIMEOUT_S`` for a
request to start, a request's line and headers must all arrive within the header deadline (``metrics.header_timeout_s``,
10 s by default) of its first byte (a reaper thread closes those that dawdle, however slowly they drip), and at most
``MAX_CONNECTIONS`` are open: past
that, the connection that has waited longest for a request is closed to make room, or, when every one is busy
answering, the new one gets a 503 at once.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry

from noizylab_desktop.core.errors import ConfigError
from noizylab_desktop.services.metrics.tokens import ADMIN, TokenStore, Verdict

logger = logging.getLogger(__name__)

# The classic text format: every Prometheus (2.x and 3.x) and promtool read it; the body is the same either way.
PROMETHEUS_TEXT = CONTENT_TYPE_PLAIN_0_0_4
IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
# Connections queued before the server thread accepts them: a burst beyond the listen backlog would wait out TCP's
# SYN retries (1 s, 3 s, 7 s...) before the cap above could deal with it.
LISTEN_BACKLOG = 256
REAP_EVERY_S = 0.25
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
Query = Mapping[str, list[str]]
JsonRoute = Callable[[Query], Any]
METRICS_SCOPE = "metrics"  # the scope /metrics needs


@dataclass(frozen=True)
class Endpoint:
    """A JSON route and the token scope it needs: every endpoint has one, so a token's scopes limit what it reads."""

    scope: str
    answer: JsonRoute


class BadRequest(Exception):
    """A query parameter that cannot be used; answered 400 with the message."""


@dataclass(frozen=True)
class Routes:
    """What the server answers: the Prometheus registry and the JSON routes under ``/api/v1/``."""

    registry: CollectorRegistry
    api: Mapping[str, Endpoint]
    tokens: TokenStore
    public_metrics: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # every read and write on the socket; the header deadline is the reaper's

    def handle_one_request(self) -> None:
        self.server.waiting(self.connection)
        try:
            # The first byte of the next request, or the idle timeout (rbufsize -1: rfile is buffered).
            started = not isinstance(self.rfile, io.BufferedReader) or bool(self.rfile.peek(1))
        except OSError:
            started = False
        if not started:
            self.close_connection = True
            return
        self.server.head_started(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # reads the headers too: the head is in once it returns
        self.server.head_done(self.connection)
        return parsed

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left before the answer; nothing to tell it
        except Exception:
            logger.exception("metrics HTTP %s failed", self.path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error: see `noizylab logs`"})

    def _get(self) -> None:
        routes = self.server.routes
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path == "/metrics":
            if routes.public_metrics or self._authorised(routes.tokens, METRICS_SCOPE):
                self._send(HTTPStatus.OK, generate_latest(routes.registry), PROMETHEUS_TEXT)
            return
        if path.startswith("/api/v1/"):
            route = routes.api.get(path.removeprefix("/api/v1/"))
            # Who asks is checked before what is asked: an unknown path needs a token too (any scope).
            if not self._authorised(routes.tokens, route.scope if route is not None else None):
                return
            if route is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path}; see {sorted(routes.api)}"})
                return
            try:
                body = route.answer(parse_qs(url.query))
            except BadRequest as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._json(HTTPStatus.OK, body)
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": "not found: try /metrics or /api/v1/nodes"})

    def _authorised(self, tokens: TokenStore, scope: str | None) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "a bearer token is needed: create one with `noizylab token create`"},
                {"WWW-Authenticate": 'Bearer realm="noizylab"'},
            )
            return False
        verdict = tokens.check(token, scope or ADMIN)
        if verdict is Verdict.OUT_OF_SCOPE and scope is None:
            verdict = Verdict.VALID  # any live token may learn that a path does not exist
        if verdict is Verdict.VALID:
            return True
        if verdict is Verdict.REVOKED:
            self._json(HTTPStatus.FORBIDDEN, {"error": "this token was revoked: create a new one"})
        elif verdict is Verdict.EXPIRED:
            self._json(HTTPStatus.FORBIDDEN, {"error": "this token has expired: create a new one"})
        elif verdict is Verdict.OUT_OF_SCOPE:
            held = ", ".join(tokens.scopes_of(token))
            self._json(
                HTTPStatus.FORBIDDEN,
                {
                    "error": f"this endpoint needs the {scope!r} scope and this token has {held}: "
                    f"create one with `noizylab token create --scope {scope}`"
                },
            )
        else:
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "unknown token: create one with `noizylab token create`"},
                {"WWW-Authenticate": 'Bearer realm="noizylab", error="invalid_token"'},
            )
        return False

    def _json(self, status: HTTPStatus, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, kind: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], routes: Routes, header_timeout_s: float) -> None:
        self.routes = routes
        self.header_timeout_s = header_timeout_s
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._waiting: dict[socket.socket, float] = {}  # connections waiting for a request, since when
        self._deadlines: dict[socket.socket, float] = {}  # connections reading a request head, until when
        self._closed = threading.Event()
        super().__init__(address, _Handler)
        self._reaper = threading.Thread(target=self._reap, name="metrics-http-reaper", daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if len(self._open) >= MAX_CONNECTIONS:
                if not self._waiting:
                    self._refuse(request)
                    return
                oldest = min(self._waiting, key=self._waiting.__getitem__)
                self._drop(oldest)
            self._open.add(request)
            self._waiting[request] = time.monotonic()
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.discard(request)
                self._waiting.pop(request, None)
                self._deadlines.pop(request, None)

    def waiting(self, conn: socket.socket) -> None:
        """``conn`` waits for its next request (it may be closed to make room)."""
        with self._lock:
            self._waiting.setdefault(conn, time.monotonic())

    def head_started(self, conn: socket.socket) -> None:
        """A request began on ``conn``: its line and headers must be in within ``header_timeout_s``."""
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.header_timeout_s

    def head_done(self, conn: socket.socket) -> None:
        """``conn`` sent a whole request head; it is being answered."""
        with self._lock:
            self._deadlines.pop(conn, None)
            self._waiting.pop(conn, None)

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(0.2)
            request.sendall(BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def _drop(self, conn: socket.socket) -> None:
        # Called with the lock held. Shutting the socket down wakes its thread, which then closes and forgets it.
        self._waiting.pop(conn, None)
        self._deadlines.pop(conn, None)
        self._open.discard(conn)
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reap(self) -> None:
        while not self._closed.wait(REAP_EVERY_S):
            now = time.monotonic()
            with self._lock:
                late = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
                for conn in late:
                    self._drop(conn)
            if late:
                logger.info("metrics HTTP: closed %d connections that did not send a request head in time", len(late))

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (a name is resolved)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: ask the resolver
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


class HttpApi:
    """Binds at construction (so a busy port is a clear error at start) and serves in its own thread."""

    def __init__(self, host: str, port: int, routes: Routes, header_timeout_s: float) -> None:
        try:
            self._server = _Server((host, port), routes, header_timeout_s)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} for metrics ({exc.strerror}): choose another port with --http-port"
            ) from exc
        self.port = int(self._server.server_address[1])
        if not loopback(host):
            logger.warning("the metrics API on %s:%d is reachable from the network, over plain HTTP", host, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        logger.info("metrics and JSON API on http://%s:%d", host, self.port)

    def close(self) -> None:
        """Stop serving and release the port; blocks briefly (call from a thread)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server.routes.tokens.close()

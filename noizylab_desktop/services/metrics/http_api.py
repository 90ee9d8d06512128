"""The HTTP side: ``/metrics`` for Prometheus and ``/api/v1/...`` (JSON) for dashboards, behind bearer tokens.

It is the standard library's threading HTTP server in a thread of its own, with prometheus_client's text
exposition. That keeps scrapes off the node's event loop (the same code under qasync and plain asyncio, with no
extra async web framework to keep in step with both) and reads only the immutable views the sampler publishes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry

from noizylab_desktop.errors import ConfigError
from noizylab_desktop.services.metrics.tokens import TokenStore, Verdict

logger = logging.getLogger(__name__)

# The classic text format: every Prometheus (2.x and 3.x) and promtool read it; the body is the same either way.
PROMETHEUS_TEXT = CONTENT_TYPE_PLAIN_0_0_4
Query = Mapping[str, list[str]]
JsonRoute = Callable[[Query], Any]


class BadRequest(Exception):
    """A query parameter that cannot be used; answered 400 with the message."""


@dataclass(frozen=True)
class Routes:
    """What the server answers: the Prometheus registry and the JSON routes under ``/api/v1/``."""

    registry: CollectorRegistry
    api: Mapping[str, JsonRoute]
    tokens: TokenStore
    public_metrics: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

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
            if routes.public_metrics or self._authorised(routes.tokens):
                self._send(HTTPStatus.OK, generate_latest(routes.registry), PROMETHEUS_TEXT)
            return
        if path.startswith("/api/v1/"):
            route = routes.api.get(path.removeprefix("/api/v1/"))
            if not self._authorised(routes.tokens):
                return
            if route is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path}; see {sorted(routes.api)}"})
                return
            try:
                body = route(parse_qs(url.query))
            except BadRequest as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            self._json(HTTPStatus.OK, body)
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": "not found: try /metrics or /api/v1/nodes"})

    def _authorised(self, tokens: TokenStore) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "a bearer token is needed: create one with `noizylab token create`"},
                {"WWW-Authenticate": 'Bearer realm="noizylab"'},
            )
            return False
        verdict = tokens.check(token.strip())
        if verdict is Verdict.VALID:
            return True
        if verdict is Verdict.REVOKED:
            self._json(HTTPStatus.FORBIDDEN, {"error": "this token was revoked: create a new one"})
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

    def __init__(self, address: tuple[str, int], routes: Routes) -> None:
        self.routes = routes
        super().__init__(address, _Handler)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: ask the resolver
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            return False


class HttpApi:
    """Binds at construction (so a busy port is a clear error at start) and serves in its own thread."""

    def __init__(self, host: str, port: int, routes: Routes) -> None:
        try:
            self._server = _Server((host, port), routes)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} for metrics ({exc.strerror}): choose another port with --http-port"
            ) from exc
        self.port = int(self._server.server_address[1])
        if not _loopback(host):
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

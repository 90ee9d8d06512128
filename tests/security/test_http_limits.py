"""The HTTP API cannot be tied up: half-sent requests are closed by the header deadline, and connections are capped.

The host's header deadline is lowered from its 10 s default (``metrics.header_timeout_s``): the flood would only
wait longer for the same outcome.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from noizylab_desktop.services.metrics.http_api import MAX_CONNECTIONS
from tests.conftest import NodeProcess, wait_for
from tests.slowness import scaled

HALF_SENT = b"GET /api/v1/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the blank line that ends the head never comes
FLOOD = 200
HEADER_TIMEOUT_S = 3.0  # quiet; the host's deadline stretches by the slowness factor, as the test's own waits do


@pytest.fixture
def header_timeout() -> float:
    """The host's header deadline on this machine now."""
    return scaled(HEADER_TIMEOUT_S)


@pytest.fixture
def host(make_node: Callable[..., NodeProcess], header_timeout: float) -> NodeProcess:
    """The node under attack, running, with its header deadline at ``header_timeout``."""
    return make_node("host", metrics={"header_timeout_s": header_timeout}).start()


class Held:
    """A client connection, and whether the server has let go of it (closed it, reset it, or answered it)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.let_go = False

    def released(self) -> bool:
        if not self.let_go:
            self.sock.setblocking(False)
            try:
                self.sock.recv(1)  # b"" (closed) or the first byte of a 503
                self.let_go = True
            except BlockingIOError:
                pass
            except OSError:
                self.let_go = True
        return self.let_go

    def close(self) -> None:
        self.sock.close()


def _answer(port: int) -> int:
    """The status of an ordinary request (no token: the API answers 401)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/nodes")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as refused:
        with refused:
            json.loads(refused.read())
            return int(refused.code)


def test_a_flood_of_half_sent_requests_is_capped_then_closed_and_normal_requests_still_work(
    host: NodeProcess, header_timeout: float
) -> None:
    port = host.status()["ports"]["http"]
    flood: list[Held] = []
    try:
        for _ in range(FLOOD):
            held = Held(port)
            held.sock.sendall(HALF_SENT)
            flood.append(held)
        sent_at = time.monotonic()
        wait_for(
            lambda: sum(not h.released() for h in flood) <= MAX_CONNECTIONS,
            timeout=5,
            what=f"the server to hold at most {MAX_CONNECTIONS} connections",
        )
        assert time.monotonic() - sent_at < header_timeout  # the cap, not the deadline, let these go
        assert _answer(port) == 401
        wait_for(
            lambda: all(h.released() for h in flood),
            timeout=HEADER_TIMEOUT_S + 15,
            what="the header deadline to close every half-sent request",
        )
        assert _answer(port) == 401
    finally:
        for held in flood:
            held.close()


def test_a_request_head_dripped_a_byte_at_a_time_is_closed_at_the_deadline(
    host: NodeProcess, header_timeout: float
) -> None:
    port = host.status()["ports"]["http"]
    held = Held(port)
    started = time.monotonic()
    pace = threading.Event()  # never set: its wait is the attacker's pace, one byte every half second
    try:
        held.sock.sendall(b"GET /api/v1/nodes HTTP/1.1\r\n")
        while not held.released() and time.monotonic() < started + header_timeout + 15:
            try:
                held.sock.sendall(b"X")
            except OSError:
                break
            pace.wait(0.5)
        assert held.released() and time.monotonic() - started < header_timeout + 5
    finally:
        held.close()

"""A small OpenAI-compatible chat server on loopback for the routing advisor tests.

Each test sets what the next replies are (content, an HTTP status, or a stall) and reads back what it was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """How the server answers, and what it has been asked."""

    content: str = ""
    status: int = 200
    stall: bool = False  # hold the reply until the test ends
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on the recorded requests instead."""

    def do_POST(self) -> None:
        script = self.server.script
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        script.requests.append(json.loads(body))
        script.headers.append({k.lower(): v for k, v in self.headers.items()})
        if script.stall:
            script.release.wait(30)
        if script.status != 200:
            payload = json.dumps({"error": {"message": "the model is overloaded", "type": "server_error"}})
        else:
            payload = json.dumps(
                {
                    "id": "chatcmpl-routing-test",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": script.requests[-1].get("model", "grid-advisor"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": script.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
                }
            )
        data = payload.encode()
        try:
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up waiting (the timeout test): nothing to answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


@contextmanager
def llm_server() -> Iterator[tuple[str, Script]]:
    """A running server: yields its ``/v1`` base address and its script."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.script = Script()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-llm", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.script
    finally:
        server.script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

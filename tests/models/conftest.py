"""Fixtures of the model tests: a local HTTP server standing in for the weights' publishers."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncated: set[str] = set()
    delay_s: float = 0.0
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append(self.path)
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        body = self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = body[: len(body) // 2] if name in self.truncated else body
        for start in range(0, len(sent), 65536):
            self.wfile.write(sent[start : start + 65536])
            if self.delay_s:
                time.sleep(self.delay_s)
        if name in self.truncated:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file

    def log_message(self, *args):
        pass


@pytest.fixture
def weights_server():
    """An HTTP server on 127.0.0.1 serving ``.files`` (name -> bytes); names in ``.truncated``
    drop the connection halfway, ``.delay_s`` slows every 64 kB chunk, ``.requests`` lists the
    paths asked for, ``.base`` is its URL."""
    handler = type("Handler", (_Handler,), {"files": {}, "truncated": set(), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()

"""A fault-injecting HTTP proxy on loopback in front of the test node.

Modes: ``ok`` (forward), ``down`` (close the connection without an answer), ``slow`` (hold the
answer ``delay`` seconds, past a client's timeout), ``garbage`` (answer 200 with malformed
JSON), ``error`` (answer HTTP 503), ``drop_one`` (forward, but drop the answer to the batch's last
``eth_call``).
Runs in a thread of the test process; every request is counted.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.mode = "ok"
        self.delay = 1.0
        self.requests = 0
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests += 1
                mode = proxy.mode
                if mode == "down":
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode == "slow":
                    # Bounded: wakes when the test ends even if no client is left waiting.
                    proxy._release.wait(proxy.delay)
                if mode == "garbage":
                    self._send(200, b'{"jsonrpc": "2.0", "id": 1, "result": [0x')
                    return
                if mode == "error":
                    self._send(503, b"busy")
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
                    data = conn.getresponse().read()
                finally:
                    conn.close()
                if mode == "drop_one":
                    calls = [c["id"] for c in json.loads(body) if c.get("method") == "eth_call"] if body.startswith(b"[") else []
                    answer = json.loads(data)
                    if isinstance(answer, list) and calls:
                        data = json.dumps([a for a in answer if a.get("id") != calls[-1]]).encode()
                self._send(200, data)

            def _send(self, status: int, data: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout): nothing to answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()


__all__ = ["FaultProxy", "fault_proxy", "time"]

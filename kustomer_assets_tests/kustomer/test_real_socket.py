"""Truncated bodies and dropped connections over a real loopback socket (not a mock)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from kustomer_assets.kustomer import KustomerClient, KustomerSettings
from kustomer_assets_tests.kustomer.fake_server import KEY, FakeClock


class _Handler(BaseHTTPRequestHandler):
    plan: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        kind = self.plan.pop(0) if self.plan else "ok"
        body = json.dumps({"data": {"type": "user", "id": "u1"}}).encode()
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) + (50 if kind == "truncated" else 0)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body if kind == "ok" else body[:10])
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_truncated_and_dropped_are_retried(server: str) -> None:
    _Handler.plan = ["truncated", "drop", "truncated"]
    clock = FakeClock()
    settings = KustomerSettings(api_key=KEY, base_url=server, timeout_seconds=5)
    with KustomerClient(settings, sleep=clock.sleep, clock=clock.monotonic) as client:
        assert client.current_user()["id"] == "u1"
    assert client.stats.retries == 3 and client.stats.requests == 4

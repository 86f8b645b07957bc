"""The HTTP side: a keep-alive request handler that hands each request to `Emulator.handle`
and sends what it answers, truncated or dropped when a fault says so.
"""

from __future__ import annotations

import contextlib
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API behind its load balancer
    server_version = "KustomerEmulator/1.0"
    timeout = 60  # an idle keep-alive connection does not pin a thread forever
    emu: Emulator

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stats instead
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.emu._conns_lock:
            self.emu._conns.add(self.connection)

    def finish(self) -> None:
        with self.emu._conns_lock:
            self.emu._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _dispatch(self) -> None:
        generation = self.emu._generation
        try:
            self._respond()
        except OSError:
            if self.emu._generation == generation:
                raise
            self.close_connection = True  # the server was stopped under us: the drop is intended

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        resp, delay = self.emu.handle(self.command, self.path, self.headers, body)
        if delay > 0:
            time.sleep(delay)
        if resp.action == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.action == "truncate":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if resp.action == "truncate":
            self.wfile.write(resp.body[: max(1, len(resp.body) // 2)])
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

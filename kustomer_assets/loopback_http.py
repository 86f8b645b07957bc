"""Starting and stopping a small threaded stdlib HTTP server, for the webhook receiver and the
emulator alike.

Both must restart on the port they just closed (a receiver restarted between two webhook
deliveries, an emulator restarted mid-run), and both must stop even while keep-alive clients
hold connections open, which `ThreadingHTTPServer.shutdown()` alone does not do.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def bind(
    host: str, port: int, handler: type[BaseHTTPRequestHandler], attempts: int = 40
) -> ThreadingHTTPServer:
    """A server on (host, port); a port just closed is retried briefly while the kernel frees
    it (port 0 binds a free one at once)."""
    for attempt in range(attempts):
        try:
            return ThreadingHTTPServer((host, port), handler)
        except OSError:
            if not port or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread


def shut_down(
    server: ThreadingHTTPServer,
    connections: Callable[[], Iterable[socket.socket]],
    thread: threading.Thread | None,
) -> None:
    """Stop serving, cut the open connections (keep-alive handler threads would otherwise wait
    for a next request), close the socket and wait for the serving thread."""
    server.shutdown()
    for conn in connections():
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)

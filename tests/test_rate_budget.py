"""A connection's ``requests_per_second`` holds also when requests wait for a connection: the
transport takes a request's slot in the budget once it holds a connection (issue 26 item 4).

Before, the slot was taken first and the connection after: while the only connection waited on a
slow answer, every other request's slot came and went, and when the answer came they all went out
at once. The bound checked here, at most ``rate * W + 1 + max_connections`` requests in any window
of W seconds, holds whatever the delays (see tests/engine/test_shard_rate_budget.py): an upper
bound, which a slow machine cannot break.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.clients.http import HttpTransport
from tests.engine.test_shard_rate_budget import fullest_window
from tests.support import QuietHTTPServer

RATE = 20.0
REQUESTS = 12
STALL = 0.5  # seconds the first answer takes


class SlowFirst(QuietHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: list[float] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each answer goes out at once (no 40 ms wait for a delayed ACK)
    server: SlowFirst

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.server.lock:
            self.server.arrivals.append(time.monotonic())
            first = len(self.server.arrivals) == 1
        if first:
            time.sleep(STALL)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def slow_first_peer() -> Iterator[SlowFirst]:
    server = SlowFirst()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_requests_that_waited_for_a_connection_do_not_go_out_together(slow_first_peer: SlowFirst) -> None:
    t = HttpTransport(
        f"http://127.0.0.1:{slow_first_peer.server_address[1]}", vendor="tcaplus", max_connections=1, requests_per_second=RATE
    )

    async def main() -> None:
        await asyncio.gather(*(t.asend("GET", f"/r{i}", idempotent=True) for i in range(REQUESTS)))

    try:
        t.run(main)
    finally:
        t.close()
    arrivals = sorted(slow_first_peer.arrivals)
    assert len(arrivals) == REQUESTS
    for width in (0.1, 0.2):
        # before the fix: the 10 or so requests whose slots passed during the stall arrived within milliseconds
        assert fullest_window(arrivals, width) <= RATE * width + 1 + 1, (width, [round(a - arrivals[0], 3) for a in arrivals])

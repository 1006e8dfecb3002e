"""``Retry-After`` is honoured within the retry budget and never past it (issue 24 item 5).

A raw HTTP peer on loopback answers 429/503 with ``Retry-After``; the transport's clock is a fake
one whose ``sleep`` records the wait asked for and moves the time on, so nothing really waits and
no test reads a wall clock: they assert the waits requested and the messages. Both ways a request
can go (threads, event loop) are checked.
"""

from __future__ import annotations

import email.utils
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.vendors.bestproxy.client import BestProxyClient
from reconciler.clients.http import Clock, HttpTransport, RetryPolicy, retry_after_seconds
from reconciler.errors import TransportError
from tests.support import QuietHTTPServer

WAYS = ["threads", "event loop"]
T0 = 1_800_000_000.0  # the fake wall clock's start (epoch seconds)


class FakeClock:
    """Monotonic and wall time that only move when a wait is made; every wait is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, wall=lambda: T0 + self.now, sleep=self.sleep, asleep=self.asleep)


class Peer(QuietHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[tuple[int, dict[str, str]]] = []  # the next answers; then 200s
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.clients: list[HttpTransport] = []  # closed with the peer: no handler thread left behind

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Peer

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with self.server.lock:
            self.server.seen.append(f"{self.command} {self.path}")
            status, headers = self.server.script.pop(0) if self.server.script else (200, {})
        body = b'{"code":200,"msg":"ok","data":{"list":[]}}' if status == 200 else b'{"error":"slow down"}'
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def retry_peer() -> Iterator[Peer]:
    server = Peer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    for client in server.clients:
        client.close()
    server.shutdown()
    server.server_close()


def transport(retry_peer: Peer, fake: FakeClock, *, budget: float = 60.0, attempts: int = 6) -> HttpTransport:
    t = HttpTransport(
        retry_peer.url,
        vendor="bestproxy",
        retry=RetryPolicy(attempts=attempts, timeout=budget, wait_initial=0, wait_max=0, wait_jitter=0),
    )
    t.clock = fake.clock()
    retry_peer.clients.append(t)
    return t


def send(t: HttpTransport, way: str, *args: Any, **kwargs: Any) -> Any:
    if way == "threads":
        return t.send(*args, **kwargs)
    return t.run(lambda: t.asend(*args, **kwargs))


@pytest.mark.parametrize("way", WAYS)
def test_three_429s_asking_25_s_wait_twice_then_fail_within_a_60_s_budget(retry_peer: Peer, way: str) -> None:
    # the run: three 429s with Retry-After: 25 took 76 s against a 60 s budget
    fake = FakeClock()
    retry_peer.script = [(429, {"Retry-After": "25"})] * 3
    t = transport(retry_peer, fake)
    with pytest.raises(TransportError) as e:
        send(t, way, "GET", "/gateway/proxy-ip/list", idempotent=True)
    assert fake.sleeps == [25.0, 25.0]  # 50 s waited; the third wait would end past the budget
    assert len(retry_peer.seen) == 3  # failed at once: no fourth request
    host = retry_peer.url.removeprefix("http://")
    assert str(e.value) == (
        f"api: GET /gateway/proxy-ip/list: HTTP 429: BestProxy {host} asked to wait 25 s "
        "(Retry-After), more than the 10 s retry budget left"
    )


@pytest.mark.parametrize("way", WAYS)
def test_a_wait_longer_than_the_budget_fails_at_once_naming_vendor_host_and_wait(retry_peer: Peer, way: str) -> None:
    fake = FakeClock()
    retry_peer.script = [(429, {"Retry-After": "3600"})]
    t = transport(retry_peer, fake)
    with pytest.raises(TransportError) as e:
        send(t, way, "GET", "/gateway/proxy-ip/list", idempotent=True)
    assert fake.sleeps == [] and len(retry_peer.seen) == 1
    host = retry_peer.url.removeprefix("http://")
    assert f"BestProxy {host} asked to wait 3600 s (Retry-After), more than the 60 s retry budget left" in str(e.value)


@pytest.mark.parametrize("way", WAYS)
def test_a_wait_within_the_budget_is_made_and_the_answer_returned(retry_peer: Peer, way: str) -> None:
    fake = FakeClock()
    retry_peer.script = [(503, {"Retry-After": "2"}), (429, {"Retry-After": "0"}), (429, {"Retry-After": "7"})]
    t = transport(retry_peer, fake)
    assert send(t, way, "GET", "/x", idempotent=True).status_code == 200
    assert fake.sleeps == [2.0, 7.0]  # "0": no wait at all
    assert len(retry_peer.seen) == 4


@pytest.mark.parametrize("way", WAYS)
def test_an_http_date_is_a_wait_from_now(retry_peer: Peer, way: str) -> None:
    fake = FakeClock()
    retry_peer.script = [
        (429, {"Retry-After": email.utils.formatdate(T0 + 30, usegmt=True)}),
        (429, {"Retry-After": email.utils.formatdate(T0 - 300, usegmt=True)}),  # a date past: no wait
        (429, {"Retry-After": email.utils.formatdate(T0 + 30 + 3600, usegmt=True)}),
    ]
    t = transport(retry_peer, fake)
    with pytest.raises(TransportError) as e:
        send(t, way, "GET", "/x", idempotent=True)
    assert fake.sleeps == [30.0]
    assert "asked to wait 3600 s (Retry-After), more than the 30 s retry budget left" in str(e.value)
    assert len(retry_peer.seen) == 3


@pytest.mark.parametrize("way", WAYS)
def test_an_unreadable_retry_after_falls_back_to_the_usual_backoff(retry_peer: Peer, way: str) -> None:
    fake = FakeClock()
    retry_peer.script = [(429, {"Retry-After": "soon"}), (503, {"Retry-After": "-5"})]
    t = transport(retry_peer, fake)
    assert send(t, way, "GET", "/x", idempotent=True).status_code == 200
    assert fake.sleeps == [] and len(retry_peer.seen) == 3


@pytest.mark.parametrize("way", WAYS)
def test_a_write_that_is_not_safe_to_repeat_is_not_retried_whatever_the_wait(retry_peer: Peer, way: str) -> None:
    fake = FakeClock()
    retry_peer.script = [(429, {"Retry-After": "1"})]
    t = transport(retry_peer, fake)
    assert send(t, way, "POST", "/x", idempotent=False, json={}).status_code == 429
    assert fake.sleeps == [] and len(retry_peer.seen) == 1


def test_the_vendor_client_reports_the_refused_wait(retry_peer: Peer) -> None:
    fake = FakeClock()
    retry_peer.script = [(429, {"Retry-After": "3600"})]
    client = BestProxyClient(retry_peer.url, app_key="TestOnlyAppKey0123456789abcdefAB")
    client.http.clock = fake.clock()
    try:
        with pytest.raises(TransportError) as e:
            client.list_accounts()
    finally:
        client.close()
    host = retry_peer.url.removeprefix("http://")
    # the default budget docs/configuration.md states (the engine's policies keep it: kinds/base.py)
    assert client.http.retry.timeout == 60.0
    assert str(e.value) == (
        f"bestproxy: GET /gateway/whitelist-account/list: HTTP 429: BestProxy {host} asked to "
        "wait 3600 s (Retry-After), more than the 60 s retry budget left"
    )
    assert "TestOnlyAppKey" not in str(e.value) and fake.sleeps == []


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("", None),
        (None, None),
        ("1.5", None),
        ("-1", None),
        ("٣", None),
        ("Thu, 14 Jan 2027 08:00:30 GMT", 30.0),
        ("Thu, 14 Jan 2027 07:59:00 GMT", 0.0),
        ("not a date", None),
    ],
)
def test_retry_after_values(value: str | None, wait: float | None) -> None:
    now = 1_799_913_600.0  # Thu, 14 Jan 2027 08:00:00 GMT
    assert retry_after_seconds(value, now) == wait

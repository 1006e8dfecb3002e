"""The keep-alive transport under the vendor clients, against raw HTTP peers on loopback.

What the emulators cannot show on their own: a kept-alive connection the server closed while it
sat idle, the bound on open connections, compressed answers and a base URL with a path. Every rule
holds both ways a request can be made: ``send`` from threads (the synchronous facade over the
transport's own event loop) and ``asend`` on the caller's event loop (``run``). Each rule is checked
on the wire, as the peer sees it, not in the transport's internals.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from reconciler.clients.http import HttpTransport, RetryPolicy
from reconciler.errors import TransportError
from tests.support import QuietHTTPServer

ONCE = RetryPolicy(attempts=1, wait_initial=0, wait_max=0, wait_jitter=0)
WAYS = ["threads", "event loop"]


def send(t: HttpTransport, way: str, *args: Any, **kwargs: Any) -> Any:
    """One request the given way (on a new event loop for "event loop")."""
    if way == "threads":
        return t.send(*args, **kwargs)
    return t.run(lambda: t.asend(*args, **kwargs))


class Peer(QuietHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[dict[str, Any]] = []
        self.connections: set[int] = set()
        self.open_now = 0
        self.most_open = 0
        self.lock = threading.Lock()
        self.close_after_reply = False
        self.delay = 0.0
        self.delays: dict[str, float] = {}  # by path, instead of ``delay``
        self.fail = 0  # answer the next N requests with HTTP 503
        self.hang_up: set[str] = set()  # paths whose requests are read and the connection closed without an answer
        # answer with this body and these headers instead (Content-Length added unless the headers
        # say "Connection: close": the body then ends when the connection closes)
        self.raw: tuple[bytes, dict[str, str]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def all_closed(self, within: float = 10.0) -> bool:
        """Whether every connection to the peer is closed (waiting for that at most ``within`` s)."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            with self.lock:
                if self.open_now == 0:
                    return True
            time.sleep(0.01)
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Peer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.client_address[1])
            self.server.open_now += 1
            self.server.most_open = max(self.server.most_open, self.server.open_now)

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.open_now -= 1

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "body": body,
                "headers": dict(self.headers.items()),
                "at": time.monotonic(),
            }
        )
        if self.path in self.server.hang_up:
            self.close_connection = True
            return
        if self.server.delays.get(self.path, self.server.delay):
            time.sleep(self.server.delays.get(self.path, self.server.delay))
        if self.server.raw is not None:
            body, headers = self.server.raw
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            if headers.get("Connection") != "close":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = headers.get("Connection") == "close"
            return
        out = json.dumps({"ok": True, "path": self.path}).encode()
        status = 200
        if self.server.fail > 0:
            self.server.fail -= 1
            status = 503
        self.send_response(status)
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            out = gzip.compress(out)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        if self.server.close_after_reply:
            # the reply says nothing about closing: the client finds out when the connection idles
            self.wfile.flush()
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_connection_closed_while_idle_is_not_used_for_a_write(peer: Peer) -> None:
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE)
    peer.close_after_reply = True
    assert t.send("GET", "/a", idempotent=True).json()["ok"]
    time.sleep(0.2)  # the server has closed its end by now
    # one attempt only, and not idempotent: a reused dead connection would fail as "outcome unknown"
    assert t.send("POST", "/b", idempotent=False, json={"x": 1}).json()["ok"]
    assert [s["path"] for s in peer.seen] == ["/a", "/b"]
    assert len(peer.connections) == 2


def test_on_the_event_loop_a_connection_closed_while_idle_is_not_used_for_a_write(peer: Peer) -> None:
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE)
    peer.close_after_reply = True

    async def main() -> list[Any]:
        first = (await t.asend("GET", "/a", idempotent=True)).json()
        await asyncio.sleep(0.2)  # the server has closed its end by now
        return [first, (await t.asend("POST", "/b", idempotent=False, json={"x": 1})).json()]

    assert all(answer["ok"] for answer in t.run(main))
    assert [s["path"] for s in peer.seen] == ["/a", "/b"]
    assert len(peer.connections) == 2


def test_connections_are_kept_alive_and_bounded(peer: Peer) -> None:
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE, max_connections=3)
    peer.delay = 0.02
    threads = [threading.Thread(target=lambda: [t.send("GET", "/r", idempotent=True) for _ in range(10)]) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(peer.seen) == 80
    assert peer.most_open <= 3 and len(peer.connections) <= 3  # reused, never more than the bound
    assert t.request_counts["GET /r"] == 80


def test_on_the_event_loop_connections_are_kept_alive_and_bounded(peer: Peer) -> None:
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE, max_connections=3)
    peer.delay = 0.02

    async def main() -> list[Any]:
        return await asyncio.gather(*(t.asend("GET", "/r", idempotent=True) for _ in range(80)))

    assert all(r.status_code == 200 for r in t.run(main))
    assert len(peer.seen) == 80
    assert peer.most_open <= 3 and len(peer.connections) <= 3  # reused, never more than the bound
    assert t.request_counts["GET /r"] == 80
    assert peer.all_closed()  # the loop's connections are closed with it


@pytest.mark.parametrize("way", WAYS)
def test_a_reply_slower_than_the_timeout_is_a_lost_reply(peer: Peer, way: str) -> None:
    from reconciler.errors import TransportError

    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE, timeout=0.2)
    peer.delay = 1.0
    with pytest.raises(TransportError, match=r"POST /w: timed out waiting for the reply; the outcome is unknown$"):
        send(t, way, "POST", "/w", idempotent=False, content=b"{}")


def test_on_the_event_loop_only_the_replies_slower_than_the_timeout_time_out(peer: Peer) -> None:
    """One watchdog per loop ends the waits that passed their timeout; the others are answered."""
    from reconciler.errors import TransportError

    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE, timeout=0.3, max_connections=4)
    peer.delays["/slow"] = 1.5

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(t.asend("GET", "/slow" if i % 3 == 0 else "/fast", idempotent=True) for i in range(9)), return_exceptions=True
        )

    results = t.run(main)
    slow, fast = results[::3], [r for i, r in enumerate(results) if i % 3]
    assert all(isinstance(r, TransportError) and str(r).endswith("GET /slow: timed out waiting for the reply") for r in slow), (
        slow
    )
    assert all(not isinstance(r, BaseException) and r.status_code == 200 for r in fast), fast
    assert peer.all_closed()


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "GET"])
def test_a_request_whose_kept_alive_connection_closes_is_sent_once(peer: Peer, way: str, method: str) -> None:
    """aiohttp by itself sends a PUT, DELETE or GET again when its kept-alive connection closes
    before the answer; here every attempt is the retry policy's: with one attempt allowed the
    peer sees the request once, and a write's outcome is reported unknown."""
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE)
    peer.hang_up.add("/gone")
    send(t, way, "GET", "/warm", idempotent=True)  # in the event loop way, on a loop of its own
    with pytest.raises(TransportError, match=r": the connection closed without a reply"):
        if way == "threads":  # on the connection the first request left open
            t.send(method, "/gone", idempotent=False, write=method != "GET")
        else:

            async def main() -> None:
                await t.asend("GET", "/warm", idempotent=True)
                await t.asend(method, "/gone", idempotent=False, write=method != "GET")

            t.run(main)
    t.close()
    assert [s["path"] for s in peer.seen].count("/gone") == 1


@pytest.mark.parametrize("way", WAYS)
def test_an_answer_dripping_slower_than_the_timeout_is_a_lost_reply(way: str) -> None:
    """The timeout bounds the whole exchange, not only each read: an answer whose bytes keep
    coming, each well within the timeout, but whose whole would take far longer, ends as a read
    timeout, the same on both ways (issue 24: one way returned the answer, the other timed out)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
            for _ in range(40):  # one byte every 0.1 s: 4 s for the body, bounded
                time.sleep(0.1)
                conn.sendall(b" ")
        except OSError:
            pass  # the client gave up and closed
        finally:
            conn.close()
            listener.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}", vendor="tcaplus", retry=ONCE, timeout=0.5)
    with pytest.raises(TransportError, match=r"POST /w: timed out waiting for the reply; the outcome is unknown$"):
        send(t, way, "POST", "/w", idempotent=False, content=b"{}")
    t.close()
    th.join(10)


@pytest.mark.parametrize("way", WAYS)
def test_a_requests_per_second_budget_spaces_every_attempt(peer: Peer, way: str) -> None:
    """``requests_per_second``: attempts 1/N s apart however many are in flight, retries included."""
    t = HttpTransport(
        peer.url,
        vendor="bestproxy",
        retry=RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0),
        max_connections=4,
        requests_per_second=20,
    )
    peer.fail = 2  # two 503s: the two retries count against the budget too
    if way == "threads":
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: t.send("GET", f"/r{i}", idempotent=True), range(9)))
    else:

        async def main() -> list[Any]:
            return await asyncio.gather(*(t.asend("GET", f"/r{i}", idempotent=True) for i in range(9)))

        answers = t.run(main)
    assert [a.status_code for a in answers] == [200] * 9
    arrived = sorted(s["at"] for s in peer.seen)
    assert len(arrived) == 11
    gaps = [b - a for a, b in pairwise(arrived)]
    assert arrived[-1] - arrived[0] >= 10 * 0.05 * 0.9, gaps  # 11 attempts: at least 10 intervals of 50 ms


@pytest.mark.parametrize("way", WAYS)
def test_gzip_answers_are_decoded_and_bodies_encoded(peer: Peer, way: str) -> None:
    t = HttpTransport(peer.url + "/base/", vendor="jdb", retry=ONCE)
    r = send(
        t,
        way,
        "POST",
        "/apiRequest.do",
        idempotent=True,
        data={"dc": "d c", "x": "é+"},
        headers={"Accept-Encoding": "gzip"},
        write=False,
    )
    assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
    assert r.json() == {"ok": True, "path": "/base/apiRequest.do"}
    form = peer.seen[-1]
    assert form["body"] == b"dc=d+c&x=%C3%A9%2B"
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    send(t, way, "PUT", "/j", idempotent=True, json={"名": 1, "a": [1, 2]})
    assert peer.seen[-1]["body"] == '{"名":1,"a":[1,2]}'.encode()
    send(t, way, "GET", "/q", idempotent=True, params={"app_key": "k y", "n": 2})
    assert peer.seen[-1]["path"] == "/base/q?app_key=k+y&n=2"
    send(t, way, "GET", "/q", idempotent=True, raw_query="keys=%7B%22a%22%3A%201%7D")
    assert peer.seen[-1]["path"] == "/base/q?keys=%7B%22a%22%3A%201%7D"
    assert t.host == f"127.0.0.1:{peer.server_address[1]}"


@pytest.mark.parametrize("way", WAYS)
def test_a_form_is_encoded_again_for_every_attempt(peer: Peer, way: str) -> None:
    """A mapping that seals its fields when read (JDB) carries a fresh seal on each retry."""
    from reconciler.vendors.jdb.client import _Envelope

    seals = iter(["one", "two", "three"])
    t = HttpTransport(peer.url, vendor="jdb", retry=RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0))
    peer.fail = 1
    r = send(t, way, "POST", "/apiRequest.do", idempotent=True, data=_Envelope(("x",), lambda: {"x": next(seals)}), write=False)
    assert r.status_code == 200
    assert [s["body"] for s in peer.seen] == [b"x=one", b"x=two"]


def make_certificate(folder: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(folder / "key.pem"),
            "-out",
            str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize("way", WAYS)
def test_a_certificate_the_system_does_not_trust_is_refused_before_any_request(tmp_path: Path, way: str) -> None:
    """HTTPS verifies the server's certificate and host name: a self-signed server never sees a
    request (so never a credential), and the error names the cause."""
    import socket
    import ssl

    from reconciler.errors import TransportError

    make_certificate(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(1.0)
    received: list[bytes] = []
    handshakes = 0

    def serve() -> None:
        nonlocal handshakes
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # no further attempt within a second, or the listener closed
                return
            handshakes += 1
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    received.append(tls.recv(65536))
            except (ssl.SSLError, OSError):
                pass  # the client gave up during the handshake

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    # a policy that would retry a connection failure three times: a certificate is not retried
    retry = RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0)
    t = HttpTransport(f"https://127.0.0.1:{listener.getsockname()[1]}", vendor="bestproxy", retry=retry, timeout=5)
    with pytest.raises(TransportError, match=r": GET /gateway/whitelist-account/list: TLS certificate verification failed$"):
        send(t, way, "GET", "/gateway/whitelist-account/list", idempotent=True, params={"app_key": "CanaryKey"})
    th.join(10)
    listener.close()
    assert received == []
    assert handshakes == 1  # one attempt: another could only fail the same way


@pytest.mark.parametrize("way", WAYS)
def test_a_certificate_trusted_through_ssl_cert_file_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """An operator's own CA bundle (a corporate CA, a vendor's private endpoint): ``SSL_CERT_FILE``."""
    import ssl

    make_certificate(tmp_path)
    server = Peer()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        t = HttpTransport(f"https://127.0.0.1:{server.server_address[1]}", vendor="tcaplus", retry=ONCE, timeout=5)
        if way == "threads":
            assert t.send("GET", "/r", idempotent=True).json() == {"ok": True, "path": "/r"}
            assert t.send("POST", "/w", idempotent=False, json={"a": 1}).status_code == 200
        else:

            async def main() -> list[Any]:
                return [await t.asend("GET", "/r", idempotent=True), await t.asend("POST", "/w", idempotent=False, json={"a": 1})]

            got = t.run(main)
            assert got[0].json() == {"ok": True, "path": "/r"} and got[1].status_code == 200
        assert len(server.connections) == 1  # kept alive over TLS
    finally:
        server.shutdown()
        server.server_close()


def one_answer_server(answer: bytes) -> tuple[int, threading.Thread, list[bytes]]:
    """A peer that reads one request, writes ``answer`` as is and closes."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        got.append(conn.recv(65536))
        conn.sendall(answer)
        conn.close()
        listener.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return listener.getsockname()[1], th, got


def answering_server(answer: bytes, requests: int) -> tuple[int, threading.Thread, list[bytes], list[int]]:
    """A peer that answers each of ``requests`` requests with ``answer`` as is, keeping each
    connection open for the next request unless the answer ends when the connection closes (no
    length): what it got, and how many connections it accepted (``[n]``)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    got: list[bytes] = []
    accepted = [0]
    close_delimited = b"Content-Length" not in answer and b"Transfer-Encoding" not in answer

    def serve() -> None:
        conns = []
        try:
            while len(got) < requests:
                conn, _ = listener.accept()
                conns.append(conn)
                accepted[0] += 1
                conn.settimeout(10)
                while len(got) < requests:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:  # the client closed this connection: the next request comes on another
                        break
                    got.append(data)
                    conn.sendall(answer)
                    if close_delimited:
                        conn.close()
                        break
        except OSError:
            pass
        finally:
            for conn in conns:
                conn.close()
            listener.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return listener.getsockname()[1], th, got, accepted


@pytest.mark.parametrize(
    "answer, body, kept",
    [
        (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n', {"a": 1}, True),
        (b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"until": "close"}', {"until": "close"}, False),
        (b'HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\n{"v": 0}', {"v": 0}, False),
    ],
)
@pytest.mark.parametrize("way", WAYS)
def test_chunked_close_delimited_and_http_1_0_answers(answer: bytes, body: dict[str, Any], kept: bool, way: str) -> None:
    """Each answer is read whole; its connection carries the next request only when the answer
    allows it (HTTP/1.1 without "Connection: close"), as the peer sees: one connection or two.
    The HTTP/1.0 peer leaves its connection open: the client is the one that must not reuse it."""
    port, th, got, accepted = answering_server(answer, 2)
    t = HttpTransport(f"http://127.0.0.1:{port}", vendor="tcaplus", retry=ONCE, timeout=5)
    if way == "threads":
        answers = [t.send("GET", "/x", idempotent=True, headers={"x-a": "1"}) for _ in range(2)]
    else:

        async def main() -> list[Any]:
            return [await t.asend("GET", "/x", idempotent=True, headers={"x-a": "1"}) for _ in range(2)]

        answers = t.run(main)
    t.close()
    th.join(10)
    assert [(r.status_code, r.json()) for r in answers] == [(200, body)] * 2
    assert got[0].startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:") and b"\r\nx-a: 1\r\n" in got[0]
    assert accepted[0] == (1 if kept else 2)


@pytest.mark.parametrize("way", WAYS)
def test_an_answer_cut_short_is_a_lost_reply(way: str) -> None:
    from reconciler.errors import TransportError

    port, th, _ = one_answer_server(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"partial":')
    t = HttpTransport(f"http://127.0.0.1:{port}", vendor="tcaplus", retry=ONCE, timeout=5)
    with pytest.raises(TransportError, match=r"POST /w: the connection closed without a reply; the outcome is unknown$"):
        send(t, way, "POST", "/w", idempotent=False, content=b"{}")
    th.join(5)


@pytest.mark.parametrize("way", WAYS)
def test_interim_answers_are_skipped_and_the_final_one_read(way: str) -> None:
    port, th, _ = one_answer_server(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b'HTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{"v": 1}'
    )
    t = HttpTransport(f"http://127.0.0.1:{port}", vendor="tcaplus", retry=ONCE, timeout=5)
    r = send(t, way, "POST", "/w", idempotent=False, content=b"{}")
    assert r.status_code == 201 and r.json() == {"v": 1} and r.headers.get("Link") is None
    th.join(5)


@pytest.mark.parametrize("way", WAYS)
def test_two_answers_in_one_read_are_neither_trusted(way: str) -> None:
    # the late copy of an earlier answer, then this request's (tests/test_stale_replies.py runs it
    # against the emulators' late_duplicate_replies knob)
    port, th, _ = one_answer_server(
        b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"v": 1}HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"v": 2}'
    )
    t = HttpTransport(f"http://127.0.0.1:{port}", vendor="tcaplus", retry=ONCE, timeout=5)
    with pytest.raises(
        TransportError,
        match=r"POST /w: more than one reply on the connection \(a late duplicate\?\): "
        r"neither is trusted; the outcome is unknown$",
    ):
        send(t, way, "POST", "/w", idempotent=False, content=b"{}")
    th.join(5)


@pytest.mark.parametrize("way", WAYS)
def test_an_answer_arriving_on_an_idle_connection_is_never_taken_for_the_next(way: str) -> None:
    """A late copy of an answer that arrives on its own, while the kept-alive connection sits
    idle: the next request is not written on that connection (it would read the copy as its
    answer) but on a new one, so a write is sent once and gets its own answer."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    listener.settimeout(10)
    got: list[bytes] = []
    duplicated = threading.Event()

    def answer(conn: socket.socket, n: int) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        got.append(data)
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": %d}' % n)

    def serve() -> None:
        first, _ = listener.accept()
        first.settimeout(10)
        answer(first, 1)
        time.sleep(0.05)
        first.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": 1}')  # the late copy, alone
        duplicated.set()
        second, _ = listener.accept()  # the next request comes on a new connection
        second.settimeout(10)
        answer(second, 2)
        assert first.recv(65536) == b""  # and nothing more was written on the first
        first.close()
        second.close()
        listener.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    t = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}", vendor="tcaplus", retry=ONCE, timeout=5)
    if way == "threads":
        first = t.send("GET", "/r", idempotent=True).json()
        assert duplicated.wait(10)
        time.sleep(0.1)  # the copy is read by the transport's loop meanwhile
        second = t.send("POST", "/w", idempotent=False, json={"a": 1}).json()
    else:

        async def main() -> tuple[Any, Any]:
            one = (await t.asend("GET", "/r", idempotent=True)).json()
            assert await asyncio.to_thread(duplicated.wait, 10)
            await asyncio.sleep(0.1)
            return one, (await t.asend("POST", "/w", idempotent=False, json={"a": 1})).json()

        first, second = t.run(main)
    t.close()
    th.join(10)
    assert (first, second) == ({"n": 1}, {"n": 2})
    assert [g.split(b" ", 2)[:2] for g in got] == [[b"GET", b"/r"], [b"POST", b"/w"]]  # the write sent once


@pytest.mark.parametrize("way", WAYS)
def test_a_line_break_or_control_character_never_reaches_the_wire(peer: Peer, way: str) -> None:
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE)
    for kwargs in (
        {"headers": {"x-a": "1\r\nx-injected: 2"}},
        {"raw_query": "a=1 HTTP/1.1\r\nX: y"},
        {"headers": {"x-b": "nul\x00"}},
    ):
        with pytest.raises(ValueError, match="control character or space"):
            send(t, way, "GET", "/x", idempotent=True, **kwargs)
    assert peer.seen == []


def test_an_answer_is_read_as_json_loads_reads_its_bytes() -> None:
    """``Response.json`` scans a UTF-8 body that starts with its value directly; every body must
    still give what ``json.loads(bytes)`` gives, values and errors alike: byte order marks, UTF-16,
    an encoded lone surrogate (json.loads decodes with surrogatepass), trailing data, empty."""
    from reconciler.clients.http import Response

    bodies = [
        b'{"a": 1, "b": [1.5, "x", null, true]}',
        b'{"a": 1}\r\n',
        b"[1, 2]",
        b'  {"a": 1}',
        b'{"a": 1} x',
        b'{"a": 1}{}',
        '\ufeff{"a": 1}'.encode("utf-8"),
        '{"a": "\u00e9"}'.encode("utf-16"),
        '{"a": "\u00e9"}'.encode("utf-16-le"),
        '{"a": "\u00e9\u4e2d"}'.encode("utf-8"),
        b'{"a": "\xed\xa0\x80"}',
        b'{"a": "\xff"}',
        b'{"a": }',
        b"",
        b"{",
        b'{"a": NaN}',
        b'{"n": 123456789012345678901234567890}',
        b"[" * 50_000 + b"]" * 50_000,
    ]
    for body in bodies:
        try:
            want: object = json.loads(body)
        except (ValueError, RecursionError) as exc:
            want = (type(exc), str(exc))
        try:
            got: object = Response(200, {}, body).json()
        except (ValueError, RecursionError) as exc:
            got = (type(exc), str(exc))
        assert repr(got) == repr(want), body[:40]


MIB = 1024 * 1024


def _json_of_size(n: int) -> bytes:
    """A JSON document of exactly ``n`` bytes."""
    return b'{"pad": "' + b"x" * (n - 11) + b'"}'


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("coding", ["identity", "gzip", "deflate", "raw deflate", "until close"])
def test_an_answer_over_the_size_limit_fails_once_and_plainly(
    peer: Peer, way: str, coding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory stays bounded whatever a server sends: a body over the limit (as received, or once
    decoded: 2 MiB from a few KB of gzip) ends the exchange with one clear error, and it is not
    asked again (another attempt would get the same). A body at the limit is read whole."""
    from reconciler.clients import bodies
    from reconciler.errors import TransportError

    monkeypatch.setattr(bodies, "MAX_REPLY_BYTES", MIB)
    retrying = RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0)

    def encoded(body: bytes) -> tuple[bytes, dict[str, str]]:
        if coding == "gzip":
            return gzip.compress(body), {"Content-Encoding": "gzip"}
        if coding == "deflate":
            return zlib.compress(body), {"Content-Encoding": "deflate"}
        if coding == "raw deflate":
            c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            return c.compress(body) + c.flush(), {"Content-Encoding": "deflate"}
        if coding == "until close":
            return body, {"Connection": "close"}
        return body, {}

    peer.raw = encoded(_json_of_size(2 * MIB))
    t = HttpTransport(peer.url, vendor="tcaplus", retry=retrying)
    with pytest.raises(TransportError) as err:
        send(t, way, "GET", "/big", idempotent=True)
    assert "the reply is larger than the 1 MiB limit" in str(err.value)
    assert len(peer.seen) == 1  # not retried

    peer.raw = encoded(_json_of_size(MIB))
    assert len(send(t, way, "GET", "/fits", idempotent=True).json()["pad"]) == MIB - 11
    t.close()


@pytest.mark.parametrize("way", WAYS)
def test_a_gzip_answer_of_several_members_is_read_whole(peer: Peer, way: str) -> None:
    """As gzip.decompress reads it: members one after another (RFC 1952 allows several)."""
    peer.raw = (gzip.compress(b'{"a": ') + gzip.compress(b"[1, 2]}"), {"Content-Encoding": "gzip"})
    t = HttpTransport(peer.url, vendor="tcaplus", retry=ONCE)
    assert send(t, way, "GET", "/m", idempotent=True).json() == {"a": [1, 2]}


@pytest.mark.parametrize("way", WAYS)
def test_a_write_answered_over_the_size_limit_is_an_unknown_outcome(
    peer: Peer, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/configuration.md: the write may have been done, so the error says the outcome is
    unknown, as for any lost reply; it is sent once."""
    from reconciler.clients import bodies
    from reconciler.errors import TransportError

    monkeypatch.setattr(bodies, "MAX_REPLY_BYTES", MIB)
    peer.raw = (_json_of_size(2 * MIB), {})
    t = HttpTransport(peer.url, vendor="tcaplus", retry=RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0))
    with pytest.raises(TransportError) as err:
        send(t, way, "POST", "/add", idempotent=False, json={"x": 1})
    assert "the reply is larger than the 1 MiB limit; the outcome is unknown" in str(err.value)
    assert len(peer.seen) == 1

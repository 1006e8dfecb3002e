"""The emulators' HTTP server (``reconciler/sandbox/base.py``), spoken to over raw sockets.

What the vendor clients never send but a server must take: pipelined requests, HTTP/1.0,
``Expect: 100-continue``, chunked bodies, malformed and oversized requests; and what the fault
knobs promise at the connection level: the latency knob without a thread per waiting request, a
dropped reply, a client that leaves before its answer, and ``stop()`` with connections open.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest

from reconciler.sandbox.base import Emulator, Request, Response
from reconciler.sandbox.wire import BODY_MAX, EmulatorServer


class Echo(Emulator):
    """Answers every request with what it received; ``POST /write`` counts a write."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def handle(self, req: Request) -> Response:
        if req.path == "/write":
            self.writes += 1
        if req.path == "/bye":
            return Response.json({}, headers={"Connection": "close"})
        if req.path == "/bug":
            raise RuntimeError("an emulator bug")
        return Response.json(
            {
                "method": req.method,
                "path": req.path,
                "query": req.raw_query,
                "headers": req.headers,
                "body": req.body.decode("latin-1"),
            }
        )


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Echo()) as srv:
        yield srv


def connect(server: EmulatorServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer(f: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One answer read off a connection: status, lower-cased headers, body."""
    status = f.readline()
    assert status, "the connection closed without an answer"
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status.split()[1]), headers, f.read(int(headers.get("content-length", 0)))


def closed(sock: socket.socket, f: BinaryIO) -> bool:
    """Whether the server closed the connection (nothing more to read; a reset, when it closed with
    bytes of the request still unread, as after refusing an over-long chunked body, counts too)."""
    try:
        return f.read() == b""
    except ConnectionResetError:
        return True


def ask(server: EmulatorServer, raw: bytes) -> tuple[int, dict[str, str], Any, bool]:
    """Send raw bytes on a new connection; the answer (body as JSON when it is), and whether the
    server closed the connection after it."""
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(raw)
        status, headers, body = answer(f)
        sock.settimeout(0.5)
        try:
            gone = closed(sock, f)
        except TimeoutError:
            gone = False
    parsed = json.loads(body) if headers.get("content-type", "").startswith("application/json") else body
    return status, headers, parsed, gone


def test_a_request_reaches_the_emulator_as_sent(server: EmulatorServer) -> None:
    status, headers, body, gone = ask(
        server, b"POST /a/b?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: V\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert status == 200 and not gone
    assert body["method"] == "POST" and body["path"] == "/a/b" and body["query"] == "x=1&y=%20"
    assert body["headers"]["x-mixed-case"] == "V" and body["body"] == "hello"
    assert headers["content-length"] == str(len(json.dumps(body, separators=(",", ":"))))


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: EmulatorServer) -> None:
    server.emulator.set_faults({"latency_ms": 20})
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"".join(f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(5)))
        assert [json.loads(answer(f)[2])["path"] for _ in range(5)] == ["/0", "/1", "/2", "/3", "/4"]
        sock.sendall(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")  # still kept alive
        assert json.loads(answer(f)[2])["path"] == "/again"
    assert server.emulator.stats["GET /4"] == 1


def test_http_1_0_is_answered_then_closed_unless_kept_alive(server: EmulatorServer) -> None:
    status, _, body, gone = ask(server, b"GET /old HTTP/1.0\r\n\r\n")
    assert status == 200 and body["path"] == "/old" and gone
    status, _, _, gone = ask(server, b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert status == 200 and not gone


def test_connection_close_either_way_closes_after_the_answer(server: EmulatorServer) -> None:
    status, _, _, gone = ask(server, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status == 200 and gone
    status, headers, _, gone = ask(server, b"GET /bye HTTP/1.1\r\nHost: h\r\n\r\n")  # the emulator's answer says close
    assert status == 200 and headers["connection"] == "close" and gone


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: EmulatorServer) -> None:
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n" and f.readline() == b"\r\n"
        sock.sendall(b"abc")
        status, _, body = answer(f)
    assert status == 200 and json.loads(body)["body"] == "abc"


def test_a_chunked_body_is_read(server: EmulatorServer) -> None:
    status, _, body, gone = ask(
        server, b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert status == 200 and body["body"] == "abcde" and not gone


# aiohttp's parser refuses a malformed head with 400 (the long target and header lines, and the
# 101st header line, too: http.server's 414 and 431 are not kept) in an HTTP/1.0 answer, which
# closes the connection without saying so; the refusals made by the wire itself (501, 413, 505)
# say "Connection: close"
@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n", 400),
        (b"this is not http\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nBad Header Name: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n", 400),
        (b"PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (BODY_MAX + 1), 413),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (BODY_MAX + 1)
            + b"a" * (BODY_MAX + 1)
            + b"\r\n0\r\n\r\n",
            413,
        ),
    ],
    ids=[
        "bad length",
        "not http",
        "bad header",
        "long target",
        "long header",
        "too many headers",
        "unsupported method",
        "body too large",
        "chunked body too large",
    ],
)
def test_a_bad_request_is_refused_and_the_connection_closed(server: EmulatorServer, raw: bytes, status: int) -> None:
    got, headers, _, gone = ask(server, raw)
    assert (got, gone) == (status, True)
    if status != 400:
        assert headers["connection"] == "close"
    assert not server.emulator.stats  # nothing reached the emulator
    assert ask(server, b"GET /fine HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 200  # and the server serves on


def test_a_hundred_header_lines_are_taken(server: EmulatorServer) -> None:
    status, _, body, _ = ask(server, b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(99)) + b"\r\n")
    assert status == 200 and len(body["headers"]) == 100


def test_a_head_that_never_ends_is_refused(server: EmulatorServer) -> None:
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n")
        try:
            for i in range(2_000):  # 100 headers would be refused earlier: one long line, in pieces
                sock.sendall(b"X-Long: " if i == 0 else b"a" * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert answer(f)[0] == 400


def test_a_bad_request_after_an_answered_one_is_refused_and_the_connection_closed(server: EmulatorServer) -> None:
    # (sent together with the request before it, in one segment, aiohttp answers the bad one only)
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        assert json.loads(answer(f)[2])["path"] == "/first"
        sock.sendall(b"nonsense\r\n\r\n")
        assert answer(f)[0] == 400 and closed(sock, f)


def test_latency_is_waited_out_without_a_thread_per_request(server: EmulatorServer) -> None:
    """200 requests wait for their answers at once (all handled, none answered) on the server's
    event loop, not on a thread each; then all are answered. The answers are held by the
    ``hold_replies`` knob and released by the test, so nothing here races a clock."""
    emu = server.emulator
    emu.set_faults({"latency_ms": 200, "hold_replies": ["*"]})
    threads = threading.active_count()
    socks = [connect(server) for _ in range(200)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(f"GET /slow/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        deadline = time.monotonic() + 60
        while sum(emu.stats.values()) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting = (sum(emu.stats.values()), sum(emu.answered.values()))
        peak = threading.active_count()
        emu.set_faults({"hold_replies": []})
        for i, sock in enumerate(socks):
            with sock.makefile("rb") as f:
                assert json.loads(answer(f)[2])["path"] == f"/slow/{i}"
    finally:
        emu.set_faults({"hold_replies": []})
        for sock in socks:
            sock.close()
    assert waiting == (200, 0)  # all 200 handled and waiting at once
    # a thread per waiting request would add 200; threads other tests left may end meanwhile
    assert peak - threads < 20, (threads, peak)


def test_a_request_is_handled_when_it_arrives_and_answered_after_the_latency(server: EmulatorServer) -> None:
    """The latency knob is a response time: the work is done at once and only the answer waits,
    so the emulator's own work is never added to the latency a benchmark measures against."""
    emu = server.emulator
    assert isinstance(emu, Echo)
    emu.set_faults({"latency_ms": 3000})
    with connect(server) as sock, sock.makefile("rb") as f:
        started = time.monotonic()
        sock.sendall(b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        while emu.writes == 0 and time.monotonic() < started + 1.5:
            time.sleep(0.01)
        assert emu.writes == 1  # the write took effect on arrival, long before the latency passed ...
        assert select.select([sock], [], [], 0)[0] == []  # ... and its answer still waits
        assert emu.stats["POST /write"] == 1 and emu.answered["POST /write"] == 0
        assert answer(f)[0] == 200
        assert emu.answered["POST /write"] == 1
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")  # the next request waits for its own latency
        while emu.stats["GET /next"] == 0 and time.monotonic() < started + 10:
            time.sleep(0.01)
        assert emu.stats["GET /next"] == 1 and emu.answered["GET /next"] == 0  # handled, answer held back
        assert select.select([sock], [], [], 0)[0] == []
        assert json.loads(answer(f)[2])["path"] == "/next" and emu.answered["GET /next"] == 1


def test_a_held_answer_waits_until_the_knob_releases_it(server: EmulatorServer) -> None:
    """``hold_replies``: a matching request is handled when it arrives (it takes effect) and its
    answer is sent only once the knob no longer names it; other requests are answered as usual."""
    emu = server.emulator
    emu.set_faults({"hold_replies": ["/write"]})
    started = time.monotonic()
    with connect(server) as held, held.makefile("rb") as f:
        held.sendall(b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        while emu.stats["POST /write"] == 0 and time.monotonic() < started + 10:
            time.sleep(0.01)
        status, _, body, _ = ask(server, b"GET /other HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        assert status == 200 and body["path"] == "/other"  # not held: another name
        time.sleep(0.2)
        assert emu.stats["POST /write"] == 1 and emu.answered["POST /write"] == 0
        assert select.select([held], [], [], 0)[0] == []  # nothing sent yet
        emu.set_faults({"hold_replies": []})
        assert answer(f)[0] == 200 and emu.answered["POST /write"] == 1
    with pytest.raises(ValueError, match="hold_replies"):
        emu.set_faults({"hold_replies": "/write"})


def test_a_late_duplicate_comes_whole_in_the_same_write_as_the_next_answer(server: EmulatorServer) -> None:
    """``late_duplicate_replies``: the copy of an answer is sent just before the answer to the next
    request, in one write, so a client finds both answers together (one read on loopback gets
    both); a connection that closes after its answer never gets a copy."""
    server.emulator.set_faults({"late_duplicate_replies": 2})
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        first = answer(f)
        assert json.loads(first[2])["path"] == "/one"
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: h\r\n\r\n")
        data = sock.recv(1 << 20)  # one read: the late copy and the new answer arrived as one
    copy, _, rest = data.partition(b"\r\n\r\n")
    assert copy.startswith(b"HTTP/1.1 200 OK\r\n") and rest.startswith(first[2])
    assert json.loads(rest[len(first[2]) :].partition(b"\r\n\r\n")[2])["path"] == "/two"
    assert server.emulator.faults.late_duplicate_replies == 0  # the copy of /two's answer went nowhere
    server.emulator.set_faults({"late_duplicate_replies": 1})
    status, _, body, gone = ask(server, b"GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert status == 200 and body["path"] == "/three" and gone
    assert server.emulator.faults.late_duplicate_replies == 1  # not spent on a connection that closes


def test_a_dropped_reply_takes_effect_and_the_connection_closes_without_an_answer(server: EmulatorServer) -> None:
    emu = server.emulator
    assert isinstance(emu, Echo)
    emu.set_faults({"drop_next_writes": 1})
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
        assert f.read() == b""
    assert emu.writes == 1 and emu.stats["POST /write"] == 1
    assert ask(server, b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")[0] == 200


def test_a_client_that_leaves_before_its_answer_is_not_an_error(
    server: EmulatorServer, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = server.emulator
    assert isinstance(emu, Echo)
    emu.set_faults({"latency_ms": 100})
    with connect(server) as sock:
        sock.sendall(b"POST /write HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    deadline = time.monotonic() + 5
    while emu.writes == 0 and time.monotonic() < deadline:  # the write still takes effect
        time.sleep(0.02)
    assert emu.writes == 1
    assert ask(server, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 200
    assert capfd.readouterr().err == ""


def test_an_emulator_bug_is_reported_and_the_server_serves_on(server: EmulatorServer, capfd: pytest.CaptureFixture[str]) -> None:
    with connect(server) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET /bug HTTP/1.1\r\nHost: h\r\n\r\n")
        assert f.read() == b""
    assert "RuntimeError: an emulator bug" in capfd.readouterr().err
    assert ask(server, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 200


def test_stop_closes_open_connections_and_does_not_wait_for_delayed_answers() -> None:
    server = EmulatorServer(Echo()).start()
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    server.emulator.set_faults({"latency_ms": 30_000})
    idle, waiting = connect(server), connect(server)
    waiting.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    for sock in (idle, waiting):
        with sock, sock.makefile("rb") as f:
            try:
                assert f.read() == b""
            except ConnectionResetError:
                pass
    with pytest.raises(OSError):
        connect(server).close()


def test_the_cli_and_the_vendor_registry_load_no_emulator_server() -> None:
    """The server (aiohttp's web server) is loaded when a sandbox starts, not by every command."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, json, reconciler.cli; from reconciler import vendor; vendor.vendors(); "
        "print(json.dumps(sorted(m for m in ('reconciler.sandbox.wire', 'aiohttp.web') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert json.loads(out.stdout) == []

"""The emulators' wire: aiohttp's web server, request in, :class:`~reconciler.sandbox.base.Emulator`
call, answer out, and the fault knobs that act on the connection rather than on the answer.

One aiohttp application per emulator (one catch-all route), on an event loop in its own daemon
thread (the emulators are started from synchronous tests and from ``reconciler sandbox serve``),
listening on a socket bound when the server is made. A request is handled when it arrives (the
emulator's synchronous, fast SQLite work under ``emu.lock``) and only its answer waits out the
latency knob, on the loop (``asyncio.sleep``: thousands of delayed answers need no thread each).

aiohttp does the HTTP/1.1: keep-alive (HTTP/1.0 closes unless ``Connection: keep-alive``;
``Connection: close`` closes after the answer), pipelined requests answered one at a time in order
(the next one "arrives" when the answer before it is out), ``Expect: 100-continue``, chunked
request bodies, the body bound (64 MiB, 413); a malformed head (bad syntax, HTTP/1.1 without
``Host`` on recent versions, a request line or header line over 65,536 bytes, more than 100
header lines) is refused by its parser with 400 and the connection closed (a bad request pipelined
in one segment behind a good one is refused without the good one being answered). Here: methods
other than GET, POST, PUT and DELETE refused (501), HTTP/2+ (505), a declared body over 64 MiB
refused before it is read (413), every refusal closing the connection; ``//path`` read as
``/path``; request bodies passed on as sent (no decompression).

The knobs that act on the wire: a dropped reply (the connection closed without an answer, the
request having taken effect), a late duplicate reply (:class:`_WithLateCopy`, the one raw write),
and an emulator bug (reported on stderr, the connection closed). Not kept from the hand-written
server this replaced: a client that half-closes its side (``shutdown(SHUT_WR)``) after its request
no longer gets the answer (aiohttp closes on end of input; no client of ours does that).
"""

from __future__ import annotations

import asyncio
import logging
import select
import selectors
import socket
import sys
import threading
import time
import traceback
import weakref
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import http_exceptions, web

from reconciler.sandbox.base import Emulator, Request, Response

LINE_MAX = 65_536  # request target, one header line (http.server's limit)
HEADERS_MAX = 100  # header lines (http.server's limit)
BODY_MAX = 64 << 20  # one request body (JDB's biggest, 50,000 players, is a few MB)
_FD_SETSIZE = 1024  # select() takes descriptors below this
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_REASONS = {int(s): s.phrase for s in HTTPStatus}


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every malformed request it refuses ("Error handling request") at error level:
    a client's mistake, answered 400 and closed, is not the emulator's to report. Anything else
    aiohttp logs still goes through."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, http_exceptions.HttpProcessingError)


_LOG = logging.getLogger("reconciler.sandbox.wire")
_LOG.addFilter(_QuietBadRequests())


class _Silence(web.StreamResponse):
    """No answer: the connection was closed (a dropped reply) or aborted (an emulator bug) by the
    handler; aiohttp then writes nothing and does not keep the connection."""

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def keep_alive(self) -> bool:
        return False


class _WithLateCopy(web.StreamResponse):
    """An answer preceded by a late copy of the answer before it on the same connection
    (``late_duplicate_replies``), both in ONE write of the transport.

    Raw because it cannot be done through aiohttp.web: a response writes its status line,
    headers and body itself, and nothing can be put before them in the same write; written
    separately, the late copy could arrive alone, and the client would read a whole, well-framed
    answer with nothing after it, which no client can tell from its own answer. The knob promises
    the case a client can see (more than one answer on the connection), so the two go out as one
    write, encoded here (:func:`_encode`)."""

    def __init__(self, data: bytes, *, keep: bool) -> None:
        super().__init__()
        self._data = data
        self._keep = keep

    async def prepare(self, request: web.BaseRequest) -> None:
        if request.transport is not None and not request.transport.is_closing():
            request.transport.write(self._data)
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None

    @property
    def keep_alive(self) -> bool:
        return self._keep


def _encode(resp: Response) -> tuple[bytes, bool]:
    """An answer as HTTP/1.1 bytes (for :class:`_WithLateCopy` only); and whether it asks to close
    the connection."""
    head = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, '')}\r\n"]
    close = False
    for k, v in resp.headers.items():
        head.append(f"{k}: {v}\r\n")
        if k.lower() == "connection" and v.lower() == "close":
            close = True
    head.append(f"Content-Length: {len(resp.body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + resp.body, close


def _refusal(status: int, message: str = "") -> web.Response:
    resp = web.Response(status=status, text=f"{status} {_REASONS.get(status, '')}: {message or _REASONS.get(status, '')}\n")
    resp.force_close()
    return resp


class _Wire:
    """The request handler of one emulator's server (every request reaches :meth:`handle`)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        # per connection (its transport): the late copy owed before its next answer
        self.late: weakref.WeakKeyDictionary[asyncio.BaseTransport, bytes] = weakref.WeakKeyDictionary()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.version.major != 1:
            return _refusal(505, f"Invalid HTTP version ({request.version.major}.{request.version.minor})")
        if request.method not in _METHODS:
            return _refusal(501, f"Unsupported method ({request.method!r})")
        if (request.content_length or 0) > BODY_MAX:
            return _refusal(413)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # a chunked body past BODY_MAX (client_max_size)
            return _refusal(413)
        target = request.raw_path
        if target.startswith("//"):
            target = "/" + target.lstrip("/")
        parts = urlsplit(target)
        req = Request(
            method=request.method,
            path=parts.path,
            raw_query=parts.query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        keep = request.keep_alive
        if req.path.startswith("/_sandbox/"):
            return self._reply(request, self.emu.answer_admin(req), keep)
        loop = asyncio.get_running_loop()
        due = loop.time() + self.emu.due()
        try:
            resp = self.emu.answer_vendor(req, time.time())
        except Exception:  # noqa: BLE001 - an emulator bug: reported, the connection closed
            return self._crashed(request)
        if resp is None:
            # the request took effect; its reply is lost on the way back
            request.protocol.force_close()
            return _Silence()
        wait = due - loop.time()
        if wait > 0:
            # a client that leaves meanwhile cancels this wait (handler_cancellation): its
            # request took effect, its answer goes nowhere
            await asyncio.sleep(wait)
        while self.emu.held(req):  # the hold_replies knob: until a test releases it
            await asyncio.sleep(0.005)
        duplicate = self.emu.record_answer(req, kept_alive=keep)
        return self._reply(request, resp, keep, duplicate=duplicate)

    def _reply(self, request: web.Request, resp: Response, keep: bool, *, duplicate: bool = False) -> web.StreamResponse:
        """``resp`` as aiohttp's answer; after a late copy of the answer before, when one is owed
        on this connection; with ``duplicate``, a copy of ``resp`` is owed before the next one."""
        transport = request.transport
        late = self.late.pop(transport, b"") if transport is not None else b""
        if late or duplicate:
            data, close = _encode(resp)
            keep = keep and not close
            if duplicate and keep and transport is not None:
                self.late[transport] = data
            if late:
                return _WithLateCopy(late + data, keep=keep)
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "connection"}
        out = web.Response(status=resp.status, body=resp.body, headers=headers)
        if not keep or resp.headers.get("Connection", "").lower() == "close":  # as the emulator's answer says
            out.force_close()
        return out

    def _crashed(self, request: web.Request) -> web.StreamResponse:
        """An emulator bug: reported on stderr (as socketserver does), the connection closed."""
        print("-" * 40, file=sys.stderr)
        print("Exception occurred during processing of request from", request.remote, file=sys.stderr)
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)
        if request.transport is not None:
            request.transport.abort()
        request.protocol.force_close()
        return _Silence()


def _new_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire on time. Linux's ``epoll_wait`` takes whole milliseconds,
    rounded up, so a timer (the latency knob) fired up to a millisecond late: a 5 ms knob answered
    after 5.5-6 ms. The epoll descriptor is itself readable when an event is ready, and ``select``
    on it waits to the microsecond; then epoll is asked without waiting."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()  # kqueue (macOS, BSD) takes nanoseconds already

    class PreciseEpollSelector(selectors.EpollSelector):
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0 and self.fileno() < _FD_SETSIZE:
                if not select.select([self.fileno()], [], [], timeout)[0]:
                    return []
                timeout = 0
            return super().select(timeout)

    return asyncio.SelectorEventLoop(PreciseEpollSelector())


class EmulatorServer:
    """Runs one emulator on ``host:port`` (port 0 picks a free port) on an event loop in a daemon
    thread. The port is bound when the server is made; ``start`` begins answering."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0):
        self.emulator = emulator
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
        except BaseException:
            self._sock.close()
            raise
        self._address: tuple[str, int] = self._sock.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        return int(self._address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=BODY_MAX)
        app.router.add_route("*", "/{path:.*}", _Wire(self.emulator).handle)
        return app

    def start(self) -> "EmulatorServer":
        loop = self._loop = _new_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()
        runner = self._runner = web.AppRunner(
            self._app(),
            handle_signals=False,
            access_log=None,
            logger=_LOG,
            handler_cancellation=True,  # a client gone: its answer's wait ends
            shutdown_timeout=1.0,
            max_line_size=LINE_MAX,
            max_field_size=LINE_MAX,
            max_headers=HEADERS_MAX,
            lingering_time=0,  # a refused request's unread body is not waited for: closed at once
            auto_decompress=False,  # the body reaches the emulator as sent
        )

        async def serve() -> None:
            await runner.setup()
            await web.SockSite(runner, self._sock, backlog=128).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # noqa: BLE001 - re-raised by start()
                started.append(exc)
                ready.set()
                loop.close()
                return
            started.append(None)
            ready.set()
            try:
                loop.run_forever()  # until stop()
                loop.run_until_complete(self._shutdown(runner))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.emulator.name}-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if started[0] is not None:
            raise started[0]
        return self

    @staticmethod
    async def _shutdown(runner: web.AppRunner) -> None:
        server: Any = runner.server
        for conn in server.connections if server is not None else ():
            if conn.transport is not None:
                conn.transport.abort()  # delayed answers are not sent
        await runner.cleanup()

    def stop(self) -> None:
        """Stop answering, close every connection (delayed answers are not sent) and the emulator."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._sock.close()
        self.emulator.close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The HTTP transport every vendor client uses: one retry policy, typed transport errors.

Retry rules (one place, STYLE.md §7):

- a failure to *connect* is always retried — the request never left this machine;
- a lost reply or read timeout, HTTP 429 and 5xx are retried only when the caller says the
  request is safe to repeat (``idempotent=True``). A non-idempotent write that lost its reply
  surfaces as :class:`~reconciler.errors.TransportError`; the caller resolves the unknown outcome
  by looking the object up before trying again (DESIGN.md principle 2);
- a success (2xx) whose body the caller cannot read (cut short, not JSON, not the API's shape:
  the ``shape`` argument) is a lost reply too: it says nothing of what happened;
- ``Retry-After`` (delta-seconds or an HTTP date) is honoured within the retry budget
  (:attr:`RetryPolicy.timeout` from the first attempt): a wait that fits what is left of the
  budget is made before the next attempt; a longer one is not waited at all — the request fails
  at once, naming the vendor, the host and the wait asked for (:meth:`HttpTransport._retry_hook`,
  the one place this is decided).

Error texts never include URLs, query strings or bodies: they may carry credentials.

The wire: a small keep-alive pool of sockets (one per concurrent caller, at most
``max_connections``; TLS verified against the system's certificates), each request written as one
HTTP/1.1 message and each answer parsed by ``httptools`` (the C parser uvicorn uses). These APIs
need requests with a JSON or form body and nothing else (no cookies, redirects, auth flows or
HTTP/2), and at fleet scale the client's CPU per request is what bounds a run: with eight threads,
httpx's models and httpcore's h11 state machine cost about 1.0 ms of CPU per request here,
``http.client`` (email-package header parsing) about 0.3-0.4 ms, this path about 0.3 ms with the
vendor client's own work included (docs/performance.md, "The HTTP client"). Retries and their
waits stay with stamina.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import functools
import math
import gzip
import importlib.metadata
import io
import json as jsonlib
import logging
import re
import select
import socket
import ssl
import threading
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, TypeVar
from urllib.parse import urlencode

import httptools

from reconciler.errors import ApiError, TransportError
from reconciler.urls import split_base_url

log = logging.getLogger("reconciler.http")
T = TypeVar("T")

DISTRIBUTION = "gameops-reconciler"


@functools.cache
def user_agent() -> str:
    """``User-Agent`` of every request: the product and its version, ``gameops-reconciler/0.1.0``
    (the installed distribution's version; ``reconciler.__version__`` when it is not installed)."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from reconciler import __version__ as version
    return f"{DISTRIBUTION}/{version}"

_stamina_quiet = False


def retry_context(**kwargs: Any) -> Any:
    """``stamina.retry_context(**kwargs)``. stamina and tenacity (21 modules, ~10 ms) are imported
    on first use: a run whose requests all succeed at once never loads them."""
    global _stamina_quiet
    import stamina

    if not _stamina_quiet:
        # stamina logs every scheduled retry as a warning; ours are one debug line per attempt
        # (shown with --debug) in HttpTransport.send, naming the vendor, host, operation and cause
        stamina.instrumentation.set_on_retry_hooks([])
        _stamina_quiet = True
    return stamina.retry_context(**kwargs)


class ConnectFailed(Exception):
    """Internal: the connection could not be opened; nothing was sent. ``lasting``: another
    attempt seconds later cannot succeed (a certificate that fails verification), so none is made."""

    def __init__(self, cause: str, *, lasting: bool = False):
        self.cause = cause
        self.lasting = lasting
        super().__init__(cause)


def connect_failed(exc: BaseException) -> ConnectFailed:
    return ConnectFailed(describe_connect_error(exc), lasting=isinstance(exc, ssl.SSLCertVerificationError))


class ReplyLost(Exception):
    """Internal: the request was (or may have been) sent and no complete reply came back.
    ``lasting``: asking again would get the same (an answer over the size limit), so no retry."""

    def __init__(self, cause: str, *, lasting: bool = False):
        self.cause = cause
        self.lasting = lasting
        super().__init__(cause)


MAX_REPLY_BYTES = 64 * 1024 * 1024
"""The largest answer body read, as received and once decoded (memory stays bounded whatever a
server sends, a decompression bomb included). The largest answers are whole lists (BestProxy's
accounts, about 300 bytes each; TcaplusDB's pages are capped at 256 KB by the vendor)."""


class _TooLarge(Exception):
    """Internal: an answer's body passed :data:`MAX_REPLY_BYTES`."""


def reply_lost(exc: BaseException) -> ReplyLost:
    """The :class:`ReplyLost` of a failed exchange (httptools wraps a callback's exception)."""
    if isinstance(exc, _TooLarge) or isinstance(exc.__context__, _TooLarge):
        return ReplyLost(f"the reply is larger than the {MAX_REPLY_BYTES // (1024 * 1024)} MiB limit", lasting=True)
    if isinstance(exc, _Extra) or isinstance(exc.__context__, _Extra):
        return ReplyLost(EXTRA_REPLY)
    return ReplyLost(describe_reply_error(exc))


def describe_connect_error(exc: BaseException) -> str:
    """Why a connection could not be opened, in plain words (never the URL)."""
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out connecting"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    return f"could not connect ({type(exc).__name__})"


EXTRA_REPLY = "more than one reply on the connection (a late duplicate?): neither is trusted"


class _Closed(Exception):
    """Internal: the server closed the connection before the reply was complete."""


def describe_reply_error(exc: BaseException) -> str:
    """Why a sent request got no complete reply, in plain words."""
    if isinstance(exc, TimeoutError):
        return "timed out waiting for the reply"
    if isinstance(exc, _Closed | ConnectionError):
        return "the connection closed without a reply"
    if isinstance(exc, httptools.HttpParserError):
        return f"an unreadable reply ({type(exc).__name__})"
    return f"no reply ({type(exc).__name__})"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 60.0
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.2


@dataclass(frozen=True)
class Clock:
    """The clocks and sleeps of the retry waits (tests give a fake one: nothing really waits)."""

    monotonic: Callable[[], float] = time.monotonic  # the retry budget
    wall: Callable[[], float] = time.time  # "now" for a Retry-After given as an HTTP date
    sleep: Callable[[float], None] = time.sleep  # a Retry-After wait, from threads
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the same on an event loop


REAL_CLOCK = Clock()


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """The wait a ``Retry-After`` value asks for, in seconds from ``now`` (epoch seconds): its
    delta-seconds, or its HTTP date minus ``now`` (0 for a date past); ``None`` when there is none
    or it is neither (the usual backoff applies then)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the date is UTC, as HTTP dates always are
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        return max(0.0, when.timestamp() - now)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class SentRequest:
    """What one attempt put on the wire (for :attr:`HttpTransport.on_request` observers)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lower case
    content: bytes


class Headers(dict[str, str]):
    """Answer headers by lower-case name (repeated headers joined with ``, ``)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass
class Response:
    """A complete HTTP answer: status, headers (case-insensitive ``get``), decoded body."""

    status_code: int
    headers: Headers
    content: bytes
    reason_phrase: str = ""
    _parsed: Any = field(default=None, repr=False, compare=False)  # (value,) once parsed

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not): ``json.loads(content)``, parsed once."""
        if self._parsed is None:
            self._parsed = (self._json(),)
        return self._parsed[0]

    def _json(self) -> Any:
        content = self.content
        if content[:1] in (b"{", b"["):  # UTF-8 starting with its value: scanned directly (nearly every answer)
            try:
                return json_value(content.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                pass
        return jsonlib.loads(content)  # the rest (a BOM, UTF-16, an error) as json.loads takes it


# json.loads's own scanner, without its per-call wrapping (typeshed does not declare the attribute)
_scan_json: Callable[[str, int], tuple[Any, int]] = jsonlib.JSONDecoder().scan_once  # type: ignore[attr-defined]


def json_value(text: str) -> Any:
    """``json.loads(text)``, for many small documents (answers, JSON Lines records): a text that
    starts with its value and has only JSON whitespace after it is scanned directly, which skips
    ``json.loads``'s per-call work (a tenth of a GetRecord's decoding); any other text (leading
    space, trailing data, a byte order mark, an error) goes through ``json.loads``, which raises
    what it raises."""
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return jsonlib.loads(text)
    if end == len(text) or not text[end:].strip(" \t\n\r"):
        return value
    return jsonlib.loads(text)


class RetryableStatus(Exception):
    """Internal: an HTTP status worth retrying (429/5xx) on an idempotent request."""

    def __init__(self, response: Response):
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle kept-alive connection was closed by the server (readable = EOF or junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # not in a request target
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # not in a header name or value (no CR/LF)
_SAFE_HEADERS: set[tuple[tuple[str, str], ...]] = set()  # header sets already checked (a client sends a few, often)
_HEADER_BLOCKS: dict[tuple[tuple[str, str], ...], str] = {}  # header set -> its lines on the wire


def _safe_headers(items: tuple[tuple[str, str], ...]) -> bool:
    """No control character in any header name or value (checked once per distinct header set)."""
    if items in _SAFE_HEADERS:
        return True
    if any(_UNSAFE_VALUE.search(f"{k}{v}") for k, v in items):
        return False
    if len(_SAFE_HEADERS) >= 1024:  # bounded: header sets that vary (signatures, lengths) are not kept long
        _SAFE_HEADERS.clear()
    _SAFE_HEADERS.add(items)
    return True


def _decode(body: bytes, encoding: str | None) -> bytes:
    """The body without its content coding, never more than :data:`MAX_REPLY_BYTES` of it."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "x-gzip"):
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as fh:  # every member, as gzip.decompress reads
            out = fh.read(MAX_REPLY_BYTES + 1)
    elif enc == "deflate":
        try:
            out = _inflate(body, zlib.MAX_WBITS)
        except zlib.error:
            out = _inflate(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    else:
        raise ValueError(f"unsupported Content-Encoding {enc!r}")
    if len(out) > MAX_REPLY_BYTES:
        raise _TooLarge()
    return out


def _inflate(body: bytes, wbits: int) -> bytes:
    """``zlib.decompress(body, wbits)``, stopping one byte past the limit."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, MAX_REPLY_BYTES + 1)
    if len(out) > MAX_REPLY_BYTES:
        return out
    out += d.flush()
    if not d.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


class _Extra(Exception):
    """Internal: another answer began after the complete one, on the same connection."""


class _Reply:
    """httptools callbacks: one answer's status, headers and body.

    A second answer after the complete one (a late duplicate of an earlier answer, or an answer
    nobody asked for) stops the parse (:class:`_Extra`): which of the two answers this request's
    is cannot be told, so neither is trusted."""

    __slots__ = ("headers", "body", "size", "reason", "complete", "headers_complete", "extra", "parser")

    def __init__(self) -> None:
        self.headers = Headers()
        self.body: list[bytes] = []
        self.size = 0
        self.reason = b""
        self.complete = False
        self.headers_complete = False
        self.extra = False
        self.parser: Any = None  # set once made: its status tells an interim (1xx) answer

    def _interim(self) -> bool:
        """Whether the answer just read is an interim one (``103 Early Hints``, an unasked ``100
        Continue``): it is forgotten and the final answer read after it (RFC 9110 §15.2)."""
        if self.parser is None or self.parser.get_status_code() >= 200:
            return False
        self.headers, self.body, self.size, self.reason, self.headers_complete = Headers(), [], 0, b"", False
        return True

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True
            raise _Extra()

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    @property
    def ends_at_close(self) -> bool:
        """An answer without a length: its body ends when the server closes the connection."""
        return self.headers_complete and "content-length" not in self.headers and "transfer-encoding" not in self.headers

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_REPLY_BYTES:  # the parser stops and raises (HttpParserCallbackError)
            raise _TooLarge()
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self._interim():
            self.complete = True


@dataclass
class _Pool:
    """Kept-alive connections (sockets) to one origin; at most ``size`` in use at once."""

    scheme: str
    host: str
    port: int
    timeout: float
    size: int
    context: ssl.SSLContext | None = None
    _idle: deque[socket.socket] = field(default_factory=deque)
    _slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.size)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                return self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return sock

    def acquire(self) -> socket.socket:
        self._slots.acquire()
        while True:
            try:
                sock = self._idle.pop()
            except IndexError:
                break
            if not _dropped(sock):
                return sock
            sock.close()
        try:
            return self._connect()
        except OSError as exc:
            self._slots.release()
            raise connect_failed(exc) from None
        except BaseException:
            self._slots.release()
            raise

    def release(self, sock: socket.socket, *, reusable: bool) -> None:
        if reusable:
            self._idle.append(sock)
        else:
            sock.close()
        self._slots.release()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class _AioReply(_Reply):
    """An answer read by the event loop: its future is resolved when the message is complete."""

    __slots__ = ("done",)

    def __init__(self, done: asyncio.Future[None]) -> None:
        super().__init__()
        self.done = done

    def on_message_complete(self) -> None:
        if self._interim():
            return
        self.complete = True
        if not self.done.done():
            self.done.set_result(None)


class _AioConn(asyncio.Protocol):
    """One kept-alive connection on an event loop: one request at a time, answers parsed by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reply: _AioReply | None = None
        self._parser: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reply = self._reply
        if reply is None or reply.complete:  # bytes nobody asked for: the connection is not reusable
            self.closed = True
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.closed = True
            if reply.complete:  # bytes after the complete answer, in the same read: it is not trusted
                reply.extra = True
            if not reply.done.done():
                reply.done.set_exception(exc)

    def eof_received(self) -> bool:
        self._lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        self.closed = True
        reply = self._reply
        if reply is not None and not reply.done.done():
            if reply.ends_at_close:
                reply.done.set_result(None)
            else:
                reply.done.set_exception(exc if isinstance(exc, OSError) else _Closed())

    async def exchange(self, data: bytes, loop: asyncio.AbstractEventLoop) -> tuple[_Reply, Any]:
        """Write one request and wait for its whole answer on ``loop``, the running one (its pool's
        watchdog ends the wait: :meth:`_AioPool.exchange`)."""
        assert self.transport is not None
        if self.closed:
            raise _Closed()
        reply = self._reply = _AioReply(loop.create_future())
        self._parser = reply.parser = httptools.HttpResponseParser(reply)
        self.transport.write(data)
        await reply.done
        return reply, self._parser

    def expire(self) -> None:
        """The answer took too long: the wait ends with ``TimeoutError`` and the connection closes."""
        reply = self._reply
        if reply is not None and not reply.done.done():
            reply.done.set_exception(TimeoutError("timed out"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class _AioPool:
    """:class:`_Pool` for one event loop: kept-alive connections, at most ``size`` in use at once."""

    loop: asyncio.AbstractEventLoop  # the one it serves (asyncio.get_running_loop() costs a getpid call)
    scheme: str
    host: str
    port: int
    timeout: float
    size: int
    context: ssl.SSLContext | None = None
    _idle: list[_AioConn] = field(default_factory=list)
    _slots: asyncio.Semaphore = field(init=False)
    # connections waiting for an answer -> when the wait ends; one watchdog timer checks them all
    # (a timer per request, or asyncio.timeout, cost as much CPU as parsing the answer)
    _waiting: dict[_AioConn, float] = field(default_factory=dict)
    _watch: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.size)

    async def exchange(self, conn: _AioConn, data: bytes) -> tuple[_Reply, Any]:
        """``conn.exchange(data)`` for at most :attr:`timeout` seconds (``TimeoutError`` then,
        raised within a twentieth of the timeout, at most a second, after it)."""
        loop = self.loop
        self._waiting[conn] = loop.time() + self.timeout
        if self._watch is None:
            self._watch = loop.call_later(self._tick, self._check)
        try:
            return await conn.exchange(data, loop)
        finally:
            self._waiting.pop(conn, None)

    @property
    def _tick(self) -> float:
        return min(1.0, max(0.005, self.timeout / 20))

    def _check(self) -> None:
        self._watch = None
        loop = self.loop
        now = loop.time()
        for conn, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[conn]
                conn.expire()
        if self._waiting:
            self._watch = loop.call_later(self._tick, self._check)

    async def acquire(self) -> _AioConn:
        await self._slots.acquire()
        while self._idle:
            conn = self._idle.pop()
            sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
            if not conn.closed and sock is not None and not _dropped(sock):
                return conn
            conn.close()
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await self.loop.create_connection(
                    _AioConn, self.host, self.port, ssl=self.context,
                    server_hostname=self.host if self.context is not None else None)
        except OSError as exc:  # TimeoutError and ssl.SSLError are OSErrors
            self._slots.release()
            raise connect_failed(exc) from None
        except BaseException:
            self._slots.release()
            raise
        sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def release(self, conn: _AioConn, *, reusable: bool) -> None:
        if reusable and not conn.closed:
            self._idle.append(conn)
        else:
            conn.close()
        self._slots.release()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self._idle:
            self._idle.pop().close()


def _tls_context() -> ssl.SSLContext:
    """Certificates and host names verified against the system's trusted certificates, or the
    bundle ``SSL_CERT_FILE`` / folder ``SSL_CERT_DIR`` name (read when a client is made)."""
    return ssl.create_default_context()


class _Budget:
    """At most ``rate`` requests per second: each attempt takes the next free slot, 1/rate seconds
    after the one before (threads and event loops of one transport share the budget)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Seconds to wait before sending; the slot is taken."""
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
            return at - now


class _Prepared:
    """One request as the caller asked for it, ready to be written for each attempt."""

    __slots__ = ("transport", "method", "path", "query", "target", "body", "headers", "form", "idempotent",
                 "is_write", "cause", "shape", "started", "owed", "refusal")

    def __init__(self, transport: HttpTransport, method: str, path: str, query: str, target: str, body: bytes | None,
                 headers: dict[str, str], form: Mapping[str, Any] | None, idempotent: bool, is_write: bool,
                 shape: Callable[[Any], bool] | None = None):
        self.transport, self.method, self.path, self.query, self.target = transport, method, path, query, target
        self.body, self.headers, self.form = body, headers, form
        self.idempotent, self.is_write = idempotent, is_write
        self.cause = ""
        self.shape = shape
        self.started = 0.0  # when the first attempt went out (the transport's clock)
        self.owed = 0.0  # seconds a Retry-After asked to wait before the next attempt
        self.refusal = ""  # why no attempt follows a Retry-After past the budget

    def wire(self, num: int) -> tuple[str, str, str, str, bytes | None, dict[str, str]]:
        """The arguments of one attempt (a form is sealed again for every attempt)."""
        if num > 1:
            t = self.transport
            log.debug("%s %s: %s %s: attempt %d after %s", t.vendor, t.host, self.method, self.path, num, self.cause)
        if self.form is not None:
            self.body = urlencode(self.form).encode("ascii")
        return self.method, self.target, self.path, self.query, self.body, self.headers

    def checked(self, resp: Response) -> Response:
        """``resp``, or :class:`RetryableStatus` for a status worth another attempt of this request,
        or :class:`ReplyLost` for a success (2xx) whose body is not the JSON the caller expects
        (``shape``): cut short or not JSON at all, it says nothing of what happened."""
        if self.idempotent and (resp.status_code == 429 or resp.status_code >= 500):
            self.cause = f"HTTP {resp.status_code}"
            raise RetryableStatus(resp)
        if self.shape is not None and 200 <= resp.status_code < 300:
            try:
                readable = self.shape(resp.json())
                why = "not the answer's shape"
            except (ValueError, RecursionError):
                readable, why = False, "not JSON"
            if not readable:
                raise ReplyLost(f"an unreadable reply (HTTP {resp.status_code}, {why})")
        return resp


class HttpTransport:
    """A thread-safe HTTP client bound to one vendor base URL.

    ``request_counts`` counts requests per ``METHOD path`` (benchmarks print it);
    ``on_request`` observers see every attempt as it is sent (tests read the wire format there).
    """

    def __init__(
        self,
        base_url: str,
        *,
        vendor: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 8,
        error_cls: type[ApiError] = ApiError,
        transport_error_cls: type[TransportError] = TransportError,
        requests_per_second: float | None = None,
    ):
        self.vendor = vendor
        self.user_agent = user_agent()  # sent with every request unless the caller names its own
        self.clock = REAL_CLOCK  # the retry budget's clock and the Retry-After waits (tests: a fake one)
        self._budget = _Budget(requests_per_second) if requests_per_second else None
        self.retry = retry or RetryPolicy()
        self.error_cls = error_cls
        self.transport_error_cls = transport_error_cls
        self.timeout = timeout
        self.max_connections = max(1, max_connections)
        self.on_request: list[Callable[[SentRequest], None]] = []
        self.request_counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._pool: _Pool | None = None
        self._aio_pools: dict[asyncio.AbstractEventLoop, _AioPool] = {}  # by event loop (:meth:`run`)
        self.base_url = base_url

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        """Point the transport at another origin (closes the kept-alive connections)."""
        try:  # the parse the endpoint check judges (reconciler/urls.py): one host for both
            parts = split_base_url(url)
        except ValueError as exc:
            raise ValueError(f"{self.vendor}: base_url: {exc}") from None
        old = self._pool
        self._base_url = url.rstrip("/")
        self._prefix = parts.path
        shown = f"[{parts.host}]" if ":" in parts.host else parts.host
        self._host = f"{shown}:{parts.port}" if parts.explicit_port else shown
        self._scheme, self._conn_host, self._port = parts.scheme, parts.host, parts.port
        self._context = _tls_context() if parts.scheme == "https" else None
        self._pool = _Pool(parts.scheme, parts.host, parts.port, self.timeout, self.max_connections, self._context)
        if old is not None:
            old.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    @property
    def host(self) -> str:
        """``host:port`` of the base URL (no path, no query) for error messages."""
        return self._host

    def _wire(self, method: str, target: str, path: str, query: str, body: bytes | None,
              headers: dict[str, str]) -> bytes:
        """Count the request, show it to the observers, and build it as one HTTP/1.1 message."""
        with self._count_lock:
            self.request_counts[f"{method} {path}"] += 1
        if self.on_request:
            sent = SentRequest(method, path, query, {k.lower(): v for k, v in headers.items()}, body or b"")
            for hook in self.on_request:
                hook(sent)
        items = tuple(headers.items())
        block = _HEADER_BLOCKS.get(items)
        if block is None:
            if len(_HEADER_BLOCKS) >= 1024:  # bounded, as _SAFE_HEADERS
                _HEADER_BLOCKS.clear()
            block = _HEADER_BLOCKS[items] = "".join(f"{k}: {v}\r\n" for k, v in items)
        length = f"Content-Length: {len(body or b'')}\r\n" if body is not None or method in ("POST", "PUT", "PATCH") else ""
        return f"{method} {target} HTTP/1.1\r\nHost: {self._host}\r\n{block}{length}\r\n".encode("latin-1") + (body or b"")

    def _answer(self, method: str, target: str, reply: _Reply, parser: Any) -> tuple[Response, bool]:
        """The complete answer and whether its connection may be kept alive."""
        if reply.extra:  # another answer came with it (the event loop's read; threads raise at once)
            raise ReplyLost(EXTRA_REPLY)
        # (httptools' should_keep_alive() is reset once the message is complete)
        got = dict.get  # the names are stored in lower case: no Headers.get (it lowers the name)
        connection = (got(reply.headers, "connection") or "").lower()
        reusable = reply.complete and "close" not in connection and (
            parser.get_http_version() == "1.1" or "keep-alive" in connection)
        try:
            content = _decode(b"".join(reply.body), got(reply.headers, "content-encoding"))
        except _TooLarge as exc:
            raise reply_lost(exc) from None
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise ReplyLost(f"an undecodable reply ({type(exc).__name__})") from None
        resp = Response(parser.get_status_code(), reply.headers, content, reply.reason.decode("latin-1"))
        # the request line as sent, query included (``--debug`` shows it; the log record factory
        # masks credentials such as BestProxy's ``app_key=`` before any handler sees it)
        log.debug('HTTP Request: %s %s://%s%s "HTTP/1.1 %d %s"', method, self._scheme, self._host, target,
                  resp.status_code, resp.reason_phrase)
        return resp, reusable

    def _attempt(self, method: str, target: str, path: str, query: str, body: bytes | None,
                 headers: dict[str, str]) -> Response:
        """One request on a kept-alive connection, read to the end (httptools parses the answer)."""
        if self._budget is not None and (wait := self._budget.delay()) > 0:
            time.sleep(wait)
        pool = self._pool
        assert pool is not None
        data = self._wire(method, target, path, query, body, headers)
        sock = pool.acquire()
        reusable = False
        try:
            reply = _Reply()
            parser = reply.parser = httptools.HttpResponseParser(reply)
            try:
                sock.sendall(data)
                while not reply.complete:
                    chunk = sock.recv(65536)
                    if not chunk:
                        if reply.ends_at_close:
                            break
                        raise _Closed()
                    parser.feed_data(chunk)
            except (OSError, _Closed, httptools.HttpParserError) as exc:
                raise reply_lost(exc) from None
            resp, reusable = self._answer(method, target, reply, parser)
        finally:
            pool.release(sock, reusable=reusable)
        return resp

    async def _aattempt(self, method: str, target: str, path: str, query: str, body: bytes | None,
                        headers: dict[str, str]) -> Response:
        """:meth:`_attempt` on the running event loop's connections."""
        if self._budget is not None and (wait := self._budget.delay()) > 0:
            await asyncio.sleep(wait)
        pool = self._aio_pool()
        data = self._wire(method, target, path, query, body, headers)
        conn = await pool.acquire()
        reusable = False
        try:
            try:
                reply, parser = await pool.exchange(conn, data)
            except (OSError, _Closed, httptools.HttpParserError) as exc:
                raise reply_lost(exc) from None
            resp, reusable = self._answer(method, target, reply, parser)
        finally:
            pool.release(conn, reusable=reusable)
        return resp

    def _retry_hook(self, req: _Prepared) -> Callable[[Exception], bool | float]:
        """Whether another attempt of ``req`` may follow ``exc`` (stamina's ``on``); notes the
        cause for the next attempt's debug line.

        The one place a ``Retry-After`` is judged: a wait that fits what is left of the retry
        budget is owed before the next attempt (made through :attr:`clock`, stamina itself then
        waits 0); a longer one ends the retries at once (:meth:`_final` names it)."""
        budget = self.retry.timeout

        def hook(exc: Exception) -> bool | float:
            if isinstance(exc, ConnectFailed | ReplyLost):
                req.cause = exc.cause
            if isinstance(exc, ConnectFailed):
                return not exc.lasting
            if not req.idempotent or (isinstance(exc, ReplyLost) and exc.lasting):
                return False
            if isinstance(exc, RetryableStatus):
                clock = self.clock
                wait = retry_after_seconds(exc.response.headers.get("Retry-After"), clock.wall())
                if wait is None:
                    return True
                left = budget - (clock.monotonic() - req.started)
                if wait > left:
                    from reconciler.vendor import title  # the vendor as people write it (the registry)

                    name = title(self.vendor)
                    req.refusal = (f"{name} {self._host} asked to wait {math.ceil(wait)} s (Retry-After), "
                                   f"more than the {max(0, round(left))} s retry budget left")
                    return False
                req.owed = wait
                return 0.0
            return isinstance(exc, ReplyLost)

        return hook

    def _wait_owed(self, req: _Prepared) -> float:
        """The Retry-After wait owed before this attempt (taken: it is made once)."""
        wait, req.owed = req.owed, 0.0
        if wait > 0:
            log.debug("%s %s: %s %s: waiting %.3g s (Retry-After)", self.vendor, self._host, req.method, req.path, wait)
        return wait

    def send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        raw_query: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool | None = None,
        shape: Callable[[Any], bool] | None = None,
    ) -> Response:
        """Send one request with the retry policy; return the final response (any status).

        ``raw_query`` is appended verbatim (already percent-encoded) for APIs that need ``%20``;
        ``params`` are form-encoded into the query. The body is ``json`` (compact UTF-8 JSON),
        ``data`` (a form, encoded again for every attempt: a mapping may seal its fields afresh)
        or raw ``content``. ``write`` (default: any method but GET) decides whether a lost reply
        is reported as an unknown outcome. ``shape`` (given the parsed JSON, whether it is an
        answer of the API): a success whose body is cut short, not JSON or not of that shape is
        an unreadable reply, handled as a lost one — asked again when the request is idempotent,
        else an unknown outcome of a write. Errors name the vendor, the host, the operation and
        the cause.
        """
        req = self._prepare(method, path, idempotent=idempotent, raw_query=raw_query, params=params, json=json,
                            data=data, content=content, headers=headers, write=write, shape=shape)
        # the first attempt goes out directly: stamina's retry context (tenacity objects, hook
        # inspection) costs more CPU than the request itself, and is only needed after a failure
        req.started = self.clock.monotonic()
        try:
            return req.checked(self._attempt(*req.wire(1)))
        except (RetryableStatus, ConnectFailed, ReplyLost) as exc:
            if self._retry_hook(req)(exc) is False:
                return self._final(req, exc)
            first: Exception = exc
        try:
            for attempt in self._attempts(req):
                with attempt:
                    if attempt.num == 1:  # that first failure, so stamina waits and counts as it would
                        raise first
                    if wait := self._wait_owed(req):
                        self.clock.sleep(wait)
                    return req.checked(self._attempt(*req.wire(attempt.num)))
        except (RetryableStatus, ConnectFailed, ReplyLost) as exc:
            return self._final(req, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        raw_query: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool | None = None,
        shape: Callable[[Any], bool] | None = None,
    ) -> Response:
        """:meth:`send` on the running event loop (the same retry policy, errors and wire), over
        connections of that loop's own (see :meth:`run`)."""
        req = self._prepare(method, path, idempotent=idempotent, raw_query=raw_query, params=params, json=json,
                            data=data, content=content, headers=headers, write=write, shape=shape)
        # the first attempt goes out directly: stamina's retry context (tenacity objects, hook
        # inspection) costs more CPU than the request itself, and is only needed after a failure
        req.started = self.clock.monotonic()
        try:
            return req.checked(await self._aattempt(*req.wire(1)))
        except (RetryableStatus, ConnectFailed, ReplyLost) as exc:
            if self._retry_hook(req)(exc) is False:
                return self._final(req, exc)
            first: Exception = exc
        try:
            async for attempt in self._attempts(req):
                with attempt:
                    if attempt.num == 1:  # that first failure, so stamina waits and counts as it would
                        raise first
                    if wait := self._wait_owed(req):
                        await self.clock.asleep(wait)
                    return req.checked(await self._aattempt(*req.wire(attempt.num)))
        except (RetryableStatus, ConnectFailed, ReplyLost) as exc:
            return self._final(req, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(self, method: str, path: str, *, idempotent: bool, raw_query: str | None,
                 params: Mapping[str, Any] | None, json: Any, data: Mapping[str, Any] | None,
                 content: bytes | None, headers: Mapping[str, str] | None, write: bool | None,
                 shape: Callable[[Any], bool] | None = None) -> _Prepared:
        query = raw_query if raw_query is not None else (urlencode(params) if params else "")
        target = self._prefix + path + ("?" + query if query else "")
        if _UNSAFE.search(target) or (headers and not _safe_headers(tuple(headers.items()))):
            raise ValueError(f"{self.vendor}: {method} {path}: a control character or space in the request line or a header")
        hdrs: dict[str, str] = dict(headers or {})
        if not any(k.lower() == "user-agent" for k in hdrs):
            hdrs["User-Agent"] = self.user_agent
        body = content
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        is_write = method != "GET" if write is None else write
        return _Prepared(self, method, path, query, target, body, hdrs, data, idempotent, is_write, shape)

    def _attempts(self, req: _Prepared) -> Any:
        """stamina's attempts, the first of them the one already made at ``req.started``."""
        p = self.retry
        left = max(0.001, p.timeout - (self.clock.monotonic() - req.started))
        return retry_context(on=self._retry_hook(req), attempts=p.attempts, timeout=left,
                                     wait_initial=p.wait_initial, wait_max=p.wait_max, wait_jitter=p.wait_jitter)

    def _final(self, req: _Prepared, exc: Exception) -> Response:
        """The answer once retries are spent: the last retryable status, or the transport error."""
        op = f"{req.method} {req.path}"  # never the query string: it may carry a credential (app_key)
        if isinstance(exc, RetryableStatus):
            if req.refusal:  # a Retry-After past the retry budget: failed at once, not waited
                raise self.transport_error_cls(f"{op}: HTTP {exc.response.status_code}: {req.refusal}") from None
            return exc.response
        if isinstance(exc, ConnectFailed):
            # the request never left this machine: nothing was written
            raise self.transport_error_cls(f"{self._host}: {op}: {exc.cause}") from None
        assert isinstance(exc, ReplyLost)
        unknown = "; the outcome is unknown" if req.is_write else ""
        raise self.transport_error_cls(f"{self._host}: {op}: {exc.cause}{unknown}") from None

    # -- the event loop's connections ---------------------------------------------------------
    def _aio_pool(self) -> _AioPool:
        loop = asyncio.get_running_loop()
        pool = self._aio_pools.get(loop)  # asked per request: no lock once the loop has its pool
        if pool is not None:
            return pool
        with self._count_lock:
            pool = self._aio_pools.get(loop)
            if pool is None:
                pool = self._aio_pools[loop] = _AioPool(loop, self._scheme, self._conn_host, self._port, self.timeout,
                                                              self.max_connections, self._context)
            return pool

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main()`` on a new event loop in this thread and close that loop's connections after.

        Many requests in flight on one thread cost far less CPU than as many threads each blocked
        on its own socket (no thread wake-up and GIL hand-off per answer): 0.16-0.18 against
        0.22-0.33 ms per request here (docs/performance.md, "One event loop")."""

        async def wrapper() -> T:
            try:
                return await main()
            finally:
                with self._count_lock:
                    pool = self._aio_pools.pop(asyncio.get_running_loop(), None)
                if pool is not None:
                    pool.close()

        return asyncio.run(wrapper())

    @property
    def total_requests(self) -> int:
        return sum(self.request_counts.values())

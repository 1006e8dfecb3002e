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

The wire is aiohttp's client: one request path, on an event loop (:meth:`HttpTransport.asend`).
Each event loop that sends has its own ``ClientSession`` (a keep-alive pool of at most
``max_connections`` connections; TLS verified against the system's certificates or
``SSL_CERT_FILE``; no cookies, no redirects followed). Synchronous callers (the BestProxy and JDB
clients, driven from threads) go through :meth:`HttpTransport.send`, a thin facade that runs the
same coroutine on the transport's own event loop in one background thread (both in
:mod:`~reconciler.clients.loops`). What this module adds to aiohttp is what it does not do for us:

- one timeout per attempt, per phase: connecting, each read, and the whole exchange, each at most
  ``timeout`` seconds (a slowly dripping answer ends at ``timeout`` like a silent one);
- bodies read in chunks up to :data:`MAX_REPLY_BYTES`, as received and once decoded (aiohttp's own
  decompression is off; gzip and deflate are undone here, bounded, so a decompression bomb is
  refused);
- no stale answer: a connection on which an answer nobody asked for is waiting is closed and never
  written on, and an answer that arrived together with another one is not trusted (the request's
  outcome is unknown: :data:`EXTRA_REPLY`);
- proxies from the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, either case, as
  ``urllib.request.getproxies`` and ``proxy_bypass`` read them — what aiohttp's ``trust_env``
  reads), resolved once per base URL (:func:`env_proxy`); a proxy is never set from a file;
- the retry policy (stamina), the rate budget, a ``User-Agent`` and the error texts.

This module is the request path (:class:`HttpTransport`); the rest lives beside it and every name
is importable from here too: :mod:`~reconciler.clients.responses` (what an attempt sent and got
back, the transport's failures and their causes), :mod:`~reconciler.clients.bodies` (bounded
reading and decoding, :data:`MAX_REPLY_BYTES`: patch it there), :mod:`~reconciler.clients.proxies`
(:func:`env_proxy`), :mod:`~reconciler.clients.retry` (:class:`RetryPolicy`, :class:`Clock`,
``Retry-After``, stamina), :mod:`~reconciler.clients.connections` (aiohttp's connections, no stale
answer, the facade's loop thread), :mod:`~reconciler.clients.loops` (each event loop's session,
:meth:`~HttpTransport.run`, the :meth:`~HttpTransport.send` facade), :mod:`~reconciler.clients.budget`
(the rate budget) and :mod:`~reconciler.clients.prepared` (one request as asked).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json as jsonlib
import logging
import math
import ssl
import threading
import zlib
from collections import Counter
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from reconciler.clients import bodies
from reconciler.clients.bodies import MAX_REPLY_BYTES as MAX_REPLY_BYTES
from reconciler.clients.bodies import _decode, _read_body, _TooLarge
from reconciler.clients.budget import _Budget
from reconciler.clients.connections import _EXCHANGE, _Exchange, _LoopThread, _Resent, _Session, _tls_context, _Unasked
from reconciler.clients.loops import _EventLoops
from reconciler.clients.prepared import _UNSAFE, _Prepared, _safe_headers
from reconciler.clients.proxies import env_proxy as env_proxy
from reconciler.clients.responses import EXTRA_REPLY as EXTRA_REPLY
from reconciler.clients.responses import UNASKED_REPLY as UNASKED_REPLY
from reconciler.clients.responses import ConnectFailed as ConnectFailed
from reconciler.clients.responses import ReplyLost as ReplyLost
from reconciler.clients.responses import Response as Response
from reconciler.clients.responses import RetryableStatus as RetryableStatus
from reconciler.clients.responses import SentRequest as SentRequest
from reconciler.clients.responses import describe_connect_error as describe_connect_error
from reconciler.clients.responses import describe_reply_error as describe_reply_error
from reconciler.clients.responses import json_value as json_value
from reconciler.clients.retry import REAL_CLOCK as REAL_CLOCK
from reconciler.clients.retry import Clock as Clock
from reconciler.clients.retry import RetryPolicy as RetryPolicy
from reconciler.clients.retry import retry_after_seconds as retry_after_seconds
from reconciler.clients.retry import retry_context as retry_context
from reconciler.errors import ApiError, TransportError
from reconciler.urls import split_base_url

log = logging.getLogger("reconciler.http")

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


class HttpTransport(_EventLoops):
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
        self._sessions: dict[asyncio.AbstractEventLoop, _Session] = {}  # by event loop
        self._facade: _LoopThread | None = None  # send()'s loop, started on first use
        self._timeouts = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout, sock_read=timeout)
        self.base_url = base_url

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        """Point the transport at another origin (closes :meth:`send`'s kept-alive connections)."""
        try:  # the parse the endpoint check judges (reconciler/urls.py): one host for both
            parts = split_base_url(url)
        except ValueError as exc:
            raise ValueError(f"{self.vendor}: base_url: {exc}") from None
        self._base_url = url.rstrip("/")
        self._prefix = parts.path
        shown = f"[{parts.host}]" if ":" in parts.host else parts.host
        self._host = f"{shown}:{parts.port}" if parts.explicit_port else shown
        self._scheme = parts.scheme
        self._origin = f"{parts.scheme}://{shown}:{parts.port}"
        self._context = _tls_context() if parts.scheme == "https" else None
        # the environment's proxy for this origin (the trusted side's; never from a file). The
        # endpoint check judged the vendor host above, and that host is what the proxy is asked for
        self._proxy, self._proxy_headers = env_proxy(parts.scheme, parts.host)
        self.close()

    @property
    def host(self) -> str:
        """``host:port`` of the base URL (no path, no query) for error messages."""
        return self._host

    @property
    def proxy(self) -> str | None:
        """``host:port`` of the proxy requests go through (from the environment), or ``None``."""
        if self._proxy is None:
            return None
        return f"{self._proxy.host}:{self._proxy.port}"

    @property
    def total_requests(self) -> int:
        return sum(self.request_counts.values())

    # -- one attempt --------------------------------------------------------------------------
    def _observe(self, method: str, path: str, query: str, body: bytes | None, headers: dict[str, str]) -> None:
        """Count the request and show it to the observers."""
        with self._count_lock:
            self.request_counts[f"{method} {path}"] += 1
        if self.on_request:
            sent = SentRequest(method, path, query, {k.lower(): v for k, v in headers.items()}, body or b"")
            for hook in self.on_request:
                hook(sent)

    async def _attempt(
        self, method: str, target: str, path: str, query: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        """One request on the running loop's session, its answer read to the end (at most
        :data:`MAX_REPLY_BYTES`, as received and once decoded)."""
        entry = self._session()
        async with entry.slots:  # at most max_connections in flight: the timeouts start once a slot is had
            # the rate budget's slot is taken with a connection in hand (slots taken while waiting for one go out together)
            if self._budget is not None and (wait := self._budget.delay()) > 0:
                await asyncio.sleep(wait)
            self._observe(method, path, query, body, headers)
            url = URL(self._origin + target, encoded=True)
            # a kept-alive connection found with an answer waiting on it is closed unwritten
            # (_Request.send) and the request goes on another: nothing was sent on that one
            for _ in range(self.max_connections + 1):
                try:
                    resp, content = await self._exchange(entry.session, method, url, body, headers)
                    break
                except _Unasked:
                    log.debug("%s %s: %s %s: %s; closed, not written on", self.vendor, self._host, method, path, UNASKED_REPLY)
            else:
                raise ConnectFailed(UNASKED_REPLY)
        try:
            content = _decode(content, resp.headers.get("Content-Encoding"))
        except _TooLarge:
            raise ReplyLost(
                f"the reply is larger than the {bodies.MAX_REPLY_BYTES // (1024 * 1024)} MiB limit", lasting=True
            ) from None
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise ReplyLost(f"an undecodable reply ({type(exc).__name__})") from None
        answer = Response(resp.status, resp.headers, content, resp.reason or "")
        # the request line as sent, query included (``--debug`` shows it; the log record factory
        # masks credentials such as BestProxy's ``app_key=`` before any handler sees it)
        log.debug(
            'HTTP Request: %s %s://%s%s "HTTP/1.1 %d %s"',
            method,
            self._scheme,
            self._host,
            target,
            answer.status_code,
            answer.reason_phrase,
        )
        return answer

    async def _exchange(
        self, session: aiohttp.ClientSession, method: str, url: URL, body: bytes | None, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """One exchange on one connection: the answer and its body as received. A failure is a
        :class:`ConnectFailed` or a :class:`ReplyLost` (:class:`_Unasked`: nothing was sent)."""
        exchange = _Exchange()
        token = _EXCHANGE.set(exchange)
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as resp:
                content = await _read_body(resp)
                if exchange.another_answer():
                    # another answer came with this one (a late duplicate of the one before, then
                    # this request's): which is this request's cannot be told, so neither is
                    # trusted (aiohttp closes a connection with answers left on it)
                    exchange.conn.close()
                    raise ReplyLost(EXTRA_REPLY)
            return resp, content
        except (ReplyLost, ConnectFailed, _Unasked):
            raise
        except _TooLarge:
            raise ReplyLost(
                f"the reply is larger than the {bodies.MAX_REPLY_BYTES // (1024 * 1024)} MiB limit", lasting=True
            ) from None
        except _Resent:  # the first sending's connection closed before its answer
            raise ReplyLost("the connection closed without a reply") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise self._failure(exc, exchange.sent) from None
        finally:
            _EXCHANGE.reset(token)

    def _failure(self, exc: BaseException, sent: bool) -> ConnectFailed | ReplyLost:
        """The :class:`ConnectFailed` or :class:`ReplyLost` of an exception aiohttp raised."""
        via = f" (proxy {self.proxy})" if self._proxy is not None else ""
        if isinstance(exc, aiohttp.ClientHttpProxyError):  # the proxy refused the tunnel: nothing reached the vendor
            return ConnectFailed(f"the proxy {self.proxy} refused the connection (HTTP {exc.status})")
        if isinstance(exc, aiohttp.ClientProxyConnectionError):
            return ConnectFailed(f"{describe_connect_error(exc)}{via}")
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return ConnectFailed(describe_connect_error(exc), lasting=isinstance(exc, aiohttp.ClientConnectorCertificateError))
        if not sent:  # the whole-exchange timeout while connecting, a TLS error through a proxy tunnel
            if isinstance(exc, asyncio.TimeoutError):
                return ConnectFailed(f"timed out connecting{via}")
            return ConnectFailed(
                f"{describe_connect_error(exc)}{via}",
                lasting=isinstance(exc, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError),
            )
        return ReplyLost(describe_reply_error(exc))

    def _retry_hook(self, req: _Prepared) -> Callable[[Exception], bool | float]:
        """Whether another attempt of ``req`` may follow ``exc`` (stamina's ``on``); notes the
        cause for the next attempt's debug line.

        The one place a ``Retry-After`` is judged: a wait that fits what is left of the retry
        budget is owed before the next attempt, plus up to ``wait_jitter`` within the budget (made
        through :attr:`clock`; stamina then waits 0); a longer one ends the retries (:meth:`_final`)."""
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
                    req.refusal = (
                        f"{name} {self._host} asked to wait {math.ceil(wait)} s (Retry-After), "
                        f"more than the {max(0, round(left))} s retry budget left"
                    )
                    return False
                req.owed = min(left, wait + self.retry.wait_jitter * clock.jitter())  # clients told alike part
                return 0.0
            return isinstance(exc, ReplyLost)

        return hook

    def _wait_owed(self, req: _Prepared) -> float:
        """The Retry-After wait owed before this attempt (taken: it is made once)."""
        wait, req.owed = req.owed, 0.0
        if wait > 0:
            log.debug("%s %s: %s %s: waiting %.3g s (Retry-After)", self.vendor, self._host, req.method, req.path, wait)
        return wait

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
        """:meth:`send` on the running event loop, over connections of that loop's own (see
        :meth:`run`): the one request path."""
        req = self._prepare(
            method,
            path,
            idempotent=idempotent,
            raw_query=raw_query,
            params=params,
            json=json,
            data=data,
            content=content,
            headers=headers,
            write=write,
            shape=shape,
        )
        # the first attempt goes out directly: stamina's retry context (tenacity objects, hook
        # inspection) costs more CPU than the request itself, and is only needed after a failure
        req.started = self.clock.monotonic()
        try:
            return req.checked(await self._attempt(*req.wire(1)))
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
                    return req.checked(await self._attempt(*req.wire(attempt.num)))
        except (RetryableStatus, ConnectFailed, ReplyLost) as exc:
            return self._final(req, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        raw_query: str | None,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        write: bool | None,
        shape: Callable[[Any], bool] | None = None,
    ) -> _Prepared:
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
        return retry_context(
            on=self._retry_hook(req),
            attempts=p.attempts,
            timeout=left,
            wait_initial=p.wait_initial,
            wait_max=p.wait_max,
            wait_jitter=p.wait_jitter,
        )

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

"""The HTTP transport every vendor client uses: one retry policy, typed transport errors.

Retry rules (one place, STYLE.md §7):

- a failure to *connect* is always retried — the request never left this machine;
- a lost reply or read timeout, HTTP 429 and 5xx are retried only when the caller says the
  request is safe to repeat (``idempotent=True``). A non-idempotent write that lost its reply
  surfaces as :class:`~reconciler.errors.TransportError`; the caller resolves the unknown outcome
  by looking the object up before trying again (DESIGN.md principle 2);
- ``Retry-After`` (seconds) is honoured.

Error texts never include URLs, query strings or bodies: they may carry credentials.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import httpx
import stamina

from reconciler.errors import ApiError, TransportError

log = logging.getLogger("reconciler.http")
_httpx_log = logging.getLogger("httpx")

# stamina logs every scheduled retry as a warning; ours are one debug line per attempt (shown
# with --debug) in HttpTransport.send, naming the vendor, host, operation and cause
stamina.instrumentation.set_on_retry_hooks([])


def describe_transport_error(exc: httpx.TransportError) -> str:
    """The cause of a failed request in plain words (never the URL: it may hold a credential)."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(x, socket.gaierror) for x in chain) or "name or service not known" in text \
                or "nodename nor servname" in text or "temporary failure in name resolution" in text:
            return "DNS lookup failed"
        if any(isinstance(x, ConnectionRefusedError) for x in chain) or "connection refused" in text:
            return "connection refused"
        return "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the reply"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "the connection closed without a reply"
    return f"no reply ({type(exc).__name__})"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 60.0
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.2


class RetryableStatus(Exception):
    """Internal: an HTTP status worth retrying (429/5xx) on an idempotent request."""

    def __init__(self, response: httpx.Response):
        self.response = response
        super().__init__(f"HTTP {response.status_code}")


class HttpTransport:
    """A thread-safe HTTP client bound to one vendor base URL.

    ``request_counts`` counts requests per ``METHOD path`` (benchmarks print it).
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
    ):
        self.vendor = vendor
        self.retry = retry or RetryPolicy()
        self.error_cls = error_cls
        self.transport_error_cls = transport_error_cls
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # the pool limits belong to the transport: a Client ignores ``limits`` when given one
        self._transport = httpx.HTTPTransport(retries=0, limits=limits)
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, limits=limits, transport=self._transport)
        # The hot path (``_exchange``) builds each request once, from these, and hands it to the
        # keep-alive pool: no base-URL merge, client-header merge or auth/redirect flow per request.
        self._base_url = self.client.base_url
        self._base = str(self._base_url).rstrip("/")
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self.request_counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    @property
    def host(self) -> str:
        """``host:port`` of the base URL (no path, no query) for error messages."""
        url = self.client.base_url
        return f"{url.host}:{url.port}" if url.port else str(url.host)

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        """One request on the keep-alive pool, with the client's event hooks, read to the end.

        What ``Client.send`` does for us, without its per-request auth, redirect and cookie
        machinery (these APIs use none of it): about a fifth of httpx's CPU per request (0.29 ->
        0.23 ms on loopback, one thread; docs/performance.md). The client has no proxy mounts (given a transport, httpx does not read
        proxies from the environment), so ``Client.send`` would pick this same transport.
        """
        hooks = self.client.event_hooks
        for hook in hooks["request"]:
            hook(request)
        resp = self._transport.handle_request(request)
        resp.request = request
        # the line httpx's Client logs for every request (``--debug`` shows it, redacted)
        _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, resp.http_version,
                        resp.status_code, resp.reason_phrase)
        try:
            for hook in hooks["response"]:
                hook(resp)
            resp.read()
        finally:
            resp.close()
        return resp

    def _retry_hook(self, idempotent: bool):
        def hook(exc: Exception) -> bool | float:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                return True
            if not idempotent:
                return False
            if isinstance(exc, RetryableStatus):
                after = exc.response.headers.get("Retry-After")
                if after and after.isdigit():
                    return float(after)
                return True
            return isinstance(exc, httpx.TransportError)

        return hook

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
    ) -> httpx.Response:
        """Send one request with the retry policy; return the final response (any status).

        ``raw_query`` is appended verbatim (already percent-encoded) for APIs that need ``%20``.
        ``write`` (default: any method but GET) decides whether a lost reply is reported as an
        unknown outcome. Errors name the vendor, the host, the operation and the cause.
        """
        url = path if raw_query is None else f"{path}?{raw_query}"
        p = self.retry
        is_write = method != "GET" if write is None else write
        op = f"{method} {path}"  # never the query string: it may carry a credential (app_key)
        cause = ""
        try:
            for attempt in stamina.retry_context(
                on=self._retry_hook(idempotent),
                attempts=p.attempts,
                timeout=p.timeout,
                wait_initial=p.wait_initial,
                wait_max=p.wait_max,
                wait_jitter=p.wait_jitter,
            ):
                if attempt.num > 1:
                    log.debug("%s %s: %s: attempt %d after %s", self.vendor, self.host, op, attempt.num, cause)
                with attempt:
                    with self._count_lock:
                        self.request_counts[f"{method} {path}"] += 1
                    if self.client.base_url is not self._base_url:  # changed after construction
                        self._base_url = self.client.base_url
                        self._base = str(self._base_url).rstrip("/")
                    try:
                        resp = self._exchange(httpx.Request(
                            method, self._base + url, params=params, json=json, data=data, content=content,
                            headers=headers, extensions=self._extensions,
                        ))
                    except httpx.TransportError as exc:
                        cause = describe_transport_error(exc)
                        raise
                    if idempotent and (resp.status_code == 429 or resp.status_code >= 500):
                        cause = f"HTTP {resp.status_code}"
                        raise RetryableStatus(resp)
                    return resp
        except RetryableStatus as exc:
            return exc.response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # the request never left this machine: nothing was written
            raise self.transport_error_cls(f"{self.host}: {op}: {describe_transport_error(exc)}") from None
        except httpx.TransportError as exc:
            unknown = "; the outcome is unknown" if is_write else ""
            raise self.transport_error_cls(f"{self.host}: {op}: {describe_transport_error(exc)}{unknown}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def total_requests(self) -> int:
        return sum(self.request_counts.values())

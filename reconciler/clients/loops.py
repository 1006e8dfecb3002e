"""The event loops of the HTTP transport (:mod:`reconciler.clients.http`) and its synchronous facade.

The request path is a coroutine (:meth:`HttpTransport.asend`). Each event loop that sends has its
own ``ClientSession`` (a keep-alive pool of at most ``max_connections`` connections, made here on
the loop's first request); :meth:`~_EventLoops.run` runs a caller's coroutine on a new loop in its
thread and closes that loop's connections after. Synchronous callers (the BestProxy and JDB
clients, driven from threads) go through :meth:`~_EventLoops.send`: the same coroutine on the
transport's own event loop in one background thread (:class:`~reconciler.clients.connections._LoopThread`),
started on first use and stopped by :meth:`~_EventLoops.close` or when the transport is collected.
:class:`~reconciler.clients.http.HttpTransport` is made with this mixin; nothing else uses it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from typing import Any, Awaitable, Callable, Coroutine, Mapping, TypeVar

import aiohttp

from reconciler.clients.connections import _LoopThread, _Request, _Session
from reconciler.clients.responses import Response

T = TypeVar("T")


class _EventLoops:
    """The transport's event loops: each loop's session, :meth:`run`, and the :meth:`send` facade."""

    # set by HttpTransport (its __init__ and base_url)
    vendor: str
    max_connections: int
    _context: ssl.SSLContext | None
    _timeouts: aiohttp.ClientTimeout
    _sessions: dict[asyncio.AbstractEventLoop, _Session]
    _facade: _LoopThread | None
    _count_lock: threading.Lock
    asend: Callable[..., Coroutine[Any, Any, Response]]  # the request path (HttpTransport.asend)

    def close(self) -> None:
        """Close :meth:`send`'s connections and stop its loop (a later :meth:`send` starts them again)."""
        facade, self._facade = self._facade, None
        if facade is not None:
            self._finalizer.detach()
            _LoopThread.stop(facade, self._sessions)

    # -- the event loops' sessions ------------------------------------------------------------
    def _session(self) -> _Session:
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)  # asked per request: no lock once the loop has its session
        if entry is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, limit_per_host=0, ssl=self._context if self._context is not None else True
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeouts,
                auto_decompress=False,  # bodies are decoded here, bounded (_decode)
                trust_env=False,  # the proxy is resolved once per base URL (env_proxy), never .netrc
                cookie_jar=aiohttp.DummyCookieJar(),
                # only what the caller asks for: no Accept-Encoding it cannot read, no guessed Content-Type
                skip_auto_headers=("Accept-Encoding", "Content-Type"),
                request_class=_Request,
            )
            entry = self._sessions[loop] = _Session(session, asyncio.Semaphore(self.max_connections))
        return entry

    def _send_loop(self) -> _LoopThread:
        facade = self._facade
        if facade is None:
            with self._count_lock:
                facade = self._facade
                if facade is None:
                    facade = self._facade = _LoopThread(f"http-{self.vendor}")
                    # the loop and its connections end with the transport, or at exit
                    self._finalizer = weakref.finalize(self, _LoopThread.stop, facade, self._sessions)
        return facade

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run ``main()`` on a new event loop in this thread and close that loop's connections after.

        Many requests in flight on one loop cost far less CPU than as many threads each waiting on
        its own answer (no thread wake-up and GIL hand-off per answer)."""

        async def wrapper() -> T:
            try:
                return await main()
            finally:
                entry = self._sessions.pop(asyncio.get_running_loop(), None)
                if entry is not None:
                    await entry.session.close()

        return asyncio.run(wrapper())

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
        # the same coroutine as asend, on the transport's own loop (one background thread)
        return self._send_loop().call(
            self.asend(
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
        )

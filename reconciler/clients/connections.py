"""The connections of the HTTP transport (:mod:`reconciler.clients.http`) on aiohttp: no stale
answer (a kept-alive connection with an answer nobody asked for waiting on it is closed unwritten,
an answer that came with another is noticed: :class:`_Request`, :class:`_Exchange`), one session
per event loop (:class:`_Session`), the event loop thread of the synchronous facade
(:class:`_LoopThread`) and the TLS settings (:func:`_tls_context`).
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Coroutine, TypeVar

import aiohttp

T = TypeVar("T")


class _Unasked(Exception):
    """Internal: an answer was waiting on a kept-alive connection before anything was written on it."""


class _Resent(Exception):
    """Internal: aiohttp was about to send the request again by itself (it repeats a PUT, DELETE
    or GET whose kept-alive connection closed): every attempt is the retry policy's to make."""


@dataclass
class _Exchange:
    """What aiohttp did with one attempt, as :class:`_Request` saw it: ``sent``, the request
    reached a connection and was written on it; ``conn``, that connection's protocol; ``extra``,
    the next request to take that connection found an answer waiting on it."""

    sent: bool = False
    conn: Any = None
    extra: bool = False

    def another_answer(self) -> bool:
        """Whether another answer came on the connection after this one: one is waiting on it
        now, and no other request has taken the connection since (aiohttp hands a connection
        back to its pool as soon as an answer's last byte arrives), or the next request to take
        it found one waiting."""
        conn = self.conn
        if self.extra:
            return True
        return conn is not None and getattr(conn, "_reconciler_exchange", None) is self and len(conn) > 0


_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("reconciler_http_exchange", default=None)


class _Request(aiohttp.ClientRequest):
    """aiohttp's request, which looks at the connection it is about to be written on.

    A kept-alive connection on which an answer is already waiting (a late duplicate of an earlier
    answer, or one nobody asked for) is closed and nothing is written on it: that answer would be
    read as this request's (:class:`_Unasked`, a failure to connect: another attempt goes out on a
    new connection). The connection's protocol is noted (:class:`_Exchange`) so that the answer,
    once read, can be checked for another one behind it."""

    async def send(self, conn: Any) -> Any:  # aiohttp.client_reqrep.Connection -> ClientResponse
        proto = conn.protocol
        if proto is not None and len(proto):  # parsed answers queued on the connection, none of them asked for
            before = getattr(proto, "_reconciler_exchange", None)
            if before is not None:  # the request before may have read a late copy as its answer
                before.extra = True
            proto.close()  # not written on; aiohttp also closes a connection whose request failed
            raise _Unasked()
        exchange = _EXCHANGE.get()
        if exchange is not None and exchange.sent:
            raise _Resent()
        if exchange is not None and proto is not None:
            exchange.sent, exchange.conn = True, proto
            proto._reconciler_exchange = exchange  # the request now using this connection
        return await super().send(conn)


@dataclass
class _Session:
    """One event loop's aiohttp session and the bound on its requests in flight."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore


class _LoopThread:
    """An event loop running in one daemon thread: :meth:`HttpTransport.send`'s."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result in this thread."""
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("HttpTransport.send() called on the transport's own event loop: await asend() there")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (KeyboardInterrupt): the request does not go on alone
            raise

    @staticmethod
    def stop(facade: _LoopThread, sessions: dict[asyncio.AbstractEventLoop, _Session]) -> None:
        """Close the loop's session (its connections), stop the loop and its thread."""
        entry = sessions.pop(facade.loop, None)
        if facade.loop.is_closed():
            return
        if threading.current_thread() is facade.thread:  # collected on its own loop: stop it there
            facade.loop.call_soon(facade.loop.stop)
            return
        if entry is not None and facade.thread.is_alive():
            closing = asyncio.run_coroutine_threadsafe(entry.session.close(), facade.loop)
            try:
                closing.result(5)
            except Exception:  # noqa: BLE001 - closing: nothing more to do about a connection that will not close
                pass
        facade.loop.call_soon_threadsafe(facade.loop.stop)
        facade.thread.join(5)
        if not facade.thread.is_alive():
            facade.loop.close()


def _tls_context() -> ssl.SSLContext:
    """Certificates and host names verified against the system's trusted certificates, or the
    bundle ``SSL_CERT_FILE`` / folder ``SSL_CERT_DIR`` name (read when a client is made)."""
    return ssl.create_default_context()

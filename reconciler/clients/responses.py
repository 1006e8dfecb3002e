"""What one attempt of the HTTP transport (:mod:`reconciler.clients.http`) sent and got back.

The answer (:class:`Response`, its JSON read by :func:`json_value`), what went on the wire
(:class:`SentRequest`, for observers) and the ways an attempt fails inside the transport: no
connection (:class:`ConnectFailed`), no complete reply (:class:`ReplyLost`), a status worth another
attempt (:class:`RetryableStatus`), with their causes in plain words (never a URL).
"""

from __future__ import annotations

import json as jsonlib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import aiohttp


class ConnectFailed(Exception):
    """Internal: the connection could not be opened; nothing was sent. ``lasting``: another
    attempt seconds later cannot succeed (a certificate that fails verification), so none is made."""

    def __init__(self, cause: str, *, lasting: bool = False):
        self.cause = cause
        self.lasting = lasting
        super().__init__(cause)


class ReplyLost(Exception):
    """Internal: the request was (or may have been) sent and no complete reply came back.
    ``lasting``: asking again would get the same (an answer over the size limit), so no retry."""

    def __init__(self, cause: str, *, lasting: bool = False):
        self.cause = cause
        self.lasting = lasting
        super().__init__(cause)


def describe_connect_error(exc: BaseException) -> str:
    """Why a connection could not be opened, in plain words (never the URL)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate verification failed"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):  # socket.timeout and aiohttp's ConnectionTimeoutError are TimeoutErrors
        return "timed out connecting"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate verification failed"
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed"
    return f"could not connect ({type(exc).__name__})"


EXTRA_REPLY = "more than one reply on the connection (a late duplicate?): neither is trusted"
UNASKED_REPLY = "an answer nobody asked for was waiting on the kept-alive connection (a late duplicate?)"


def describe_reply_error(exc: BaseException) -> str:
    """Why a sent request got no complete reply, in plain words."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and aiohttp's timeouts are TimeoutErrors
        return "timed out waiting for the reply"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | ConnectionError):
        return "the connection closed without a reply"
    if isinstance(exc, aiohttp.ClientResponseError):  # a status line or header aiohttp's parser refused
        return "an unreadable reply (bad HTTP framing)"
    if isinstance(exc, aiohttp.ClientOSError):
        return "the connection closed without a reply"
    return f"no reply ({type(exc).__name__})"


@dataclass(frozen=True)
class SentRequest:
    """What one attempt put on the wire (for :attr:`HttpTransport.on_request` observers)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # names in lower case
    content: bytes


@dataclass
class Response:
    """A complete HTTP answer: status, headers (case-insensitive ``get``), decoded body."""

    status_code: int
    headers: Mapping[str, str]
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

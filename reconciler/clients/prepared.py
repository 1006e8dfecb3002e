"""One request of the HTTP transport (:mod:`reconciler.clients.http`) as the caller asked for
it (:class:`_Prepared`): its request line and headers checked for control characters, written
again for each attempt, and each answer checked (a status worth another attempt, a success whose
body is not the API's).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlencode

from reconciler.clients.responses import ReplyLost, Response, RetryableStatus

if TYPE_CHECKING:
    from reconciler.clients.http import HttpTransport

log = logging.getLogger("reconciler.http")


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # not in a request target
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # not in a header name or value (no CR/LF)
_SAFE_HEADERS: set[tuple[tuple[str, str], ...]] = set()  # header sets already checked (a client sends a few, often)


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


class _Prepared:
    """One request as the caller asked for it, ready to be written for each attempt."""

    __slots__ = (
        "transport",
        "method",
        "path",
        "query",
        "target",
        "body",
        "headers",
        "form",
        "idempotent",
        "is_write",
        "cause",
        "shape",
        "started",
        "owed",
        "refusal",
    )

    def __init__(
        self,
        transport: HttpTransport,
        method: str,
        path: str,
        query: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        form: Mapping[str, Any] | None,
        idempotent: bool,
        is_write: bool,
        shape: Callable[[Any], bool] | None = None,
    ):
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

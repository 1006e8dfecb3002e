"""The one redaction point for logs: every log record of the process passes through it.

Two layers, so that a credential cannot reach a log line even with ``--debug``:

1. **Live secret values.** Every secret the run resolves (provider credentials, manifest secrets)
   and every value derived from one that goes on the wire (the TcaplusDB password's MD5 header,
   the JDB key and IV, a TOTP code) is :func:`register`-ed. Each occurrence in a log message, in
   its raw, percent-encoded (``%XX`` and ``+``) or JSON-escaped form, becomes ``***``.
2. **Credential-bearing names.** Whatever follows a credential parameter or header name
   (``app_key=``, ``"password": "..."``, ``x-tcaplus-pwd-md5: ...``, ``verify_code``, ``totp``,
   JDB's ``x=`` envelope, ``key``/``iv``) is replaced too, for values never registered.

:func:`install` puts :func:`redact` into the log record factory, so records from
``stamina`` and our own loggers (the request lines of ``--debug`` included) are redacted before any handler formats them, and
:func:`redact` is applied by the CLI to the tracebacks ``--debug`` prints.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from collections.abc import Callable
from urllib.parse import quote, quote_plus

MASK = "***"

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None

# plus any vendor header that names a password, key, token or secret (x-<vendor>-pwd-md5, x-api-key, ...)
_NAMES = (
    r"app_key|appkey|password|passwd|pwd|verify_code|totp_secret|totp|secret|token|key|iv|x|authorization"
    r"|x-[a-z0-9-]*(?:pwd|passwd|password|key|token|secret)[a-z0-9-]*"
)
# name=value (query strings, forms), "name": "value" (JSON), name: value (headers, reprs)
_BY_NAME = re.compile(
    rf"""(?ix)
    (?P<pre>(?<![A-Za-z0-9_-])(?:{_NAMES})
        (?:=|["']?\s*:\s*["']?|["']?\s*,\s*b?["']))   # = | ": " | ', b'  (httpcore header tuples)
    (?P<val>[^&\s"',;)\]}}]+)
    """
)


def register(value: str | None) -> None:
    """Redact ``value`` (and its encoded forms) from every log line from now on. Cheap: the
    pattern is rebuilt only when a log line is next redacted."""
    global _pattern
    if not value or len(value) < 3:
        return
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    with _lock:
        if forms <= _values:
            return
        _values.update(f for f in forms if f)
        _pattern = None  # rebuilt lazily


def registered() -> int:
    return len(_values)


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _values:
            ordered = sorted(_values, key=len, reverse=True)  # longest first: no partial leftovers
            _pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return _pattern


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-named value masked."""
    pattern = _compiled()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _BY_NAME.sub(lambda m: m.group("pre") + MASK, text)


_installed = False


def install() -> None:
    """Redact every log record of the process when it is created (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the raw template only
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return record

    logging.setLogRecordFactory(factory)

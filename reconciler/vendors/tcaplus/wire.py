"""TcaplusDB RESTful API v1.0 on the wire: what a request says and what an answer means (no I/O).

The answers' types (:class:`VersionedRecord`, :class:`PartkeyPage`, :class:`WriteResult`) and the
write headers' values (:class:`ResultFlag`, :class:`VersionCheck`); ``keys``/``select`` as compact
JSON percent-encoded by hand (spaces as ``%20``, never ``+``, as the manual demands); an answer's
JSON decoded, or its non-zero ``ErrorCode`` raised as the typed error of :mod:`.errors`. The
client (:mod:`.client`) sends what this module builds and reads its answers through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from reconciler.clients.http import HttpTransport, Response
from reconciler.vendors.tcaplus.errors import TcaplusError, TcaplusServerError, error_class


class ResultFlag(IntEnum):
    """``x-tcaplus-result-flag``: what a write answers in ``Record``."""

    STATUS_ONLY = 0  # no record
    REQUEST = 1  # the request's values (FieldInc: the incremented fields' new values)
    LATEST = 2  # the whole record after the write
    BEFORE = 3  # the whole record before the write


class VersionCheck(IntEnum):
    """``x-tcaplus-data-version-check`` — the manual applies it to AddRecord and SetRecord only."""

    MATCH = 1  # write only if the stored version equals the given one; then +1 (else -7949)
    OVERWRITE = 2  # store the given version
    INCREMENT = 3  # ignore versions; +1


@dataclass(frozen=True)
class VersionedRecord:
    """A record as read, with its ``RecordVersion``."""

    version: int
    record: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What a write answered: the record's new version and ``Record`` per the result flag."""

    version: int
    record: dict[str, Any] | None = None
    return_values: Any = None


@dataclass(frozen=True)
class PartkeyPage:
    """One PartkeyGetRecord answer."""

    records: list[VersionedRecord] = field(default_factory=list)
    remain: int = 0
    total: int = 0


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Compact JSON: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` without building
an encoder for every call (a plan encodes the keys of every record)."""


def _query(**params: Any) -> str:
    """``name=<compact JSON, percent-encoded with %20 for spaces>`` joined by ``&``; None skipped."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list):  # a ``select``: the same few lists for every record of a table
            parts.append(f"{name}={_encoded_list(tuple(value))}")
            continue
        text = value if isinstance(value, str) else _json(value)
        parts.append(f"{name}={_percent(text)}")
    return "&".join(parts)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_PERCENT = {c: f"%{c:02X}" for c in range(128) if chr(c) not in _UNRESERVED}


def _percent(text: str) -> str:
    """``quote(text, safe='')``: every byte but the unreserved ones as ``%XX`` (so a space is
    ``%20``, never ``+``). ASCII text through one ``str.translate`` (C speed: a plan encodes the
    keys of every record); anything else through ``quote``."""
    if text.isascii():
        return text.translate(_PERCENT)
    return quote(text, safe="")


@lru_cache(maxsize=256)
def _encoded_list(value: tuple[Any, ...]) -> str:
    return _percent(_json(list(value)))


def _partkey_request(
    table: str, index: str, keys: Mapping[str, Any], select: Sequence[str] | None, limit: int | None, offset: int | None
) -> tuple[Any, ...]:
    query = _query(
        keys=dict(keys),
        select=list(select) if select else None,
        limit=str(limit) if limit is not None else None,
        offset=str(offset) if offset is not None else None,
    )
    return ("PartkeyGetRecord", table, "GET", True, query, None, {"x-tcaplus-index-name": index})


def _write_request(
    target: str,
    table: str,
    method: str,
    body: dict[str, Any],
    idempotent: bool,
    flag: ResultFlag,
    return_values: Any,
    check: VersionCheck | None,
    version: int | None,
) -> tuple[Any, ...]:
    headers = {"x-tcaplus-result-flag": str(int(flag))}
    if check is not None:
        headers["x-tcaplus-data-version-check"] = str(int(check))
        headers["x-tcaplus-data-version"] = str(version if version is not None else -1)
    if return_values is not None:
        body = {"ReturnValues": return_values, **body}
    return target, table, method, idempotent, None, body, headers


def _versioned(payload: dict[str, Any]) -> VersionedRecord:
    return VersionedRecord(int(payload.get("RecordVersion", 0)), dict(payload.get("Record") or {}))


def _page(payload: dict[str, Any]) -> PartkeyPage:
    records = [
        VersionedRecord(int(item.get("RecordVersion", 0)), dict(item.get("Record") or {}))
        for item in payload.get("MultiRecords") or []
    ]
    return PartkeyPage(records, int(payload.get("RemainNum") or 0), int(payload.get("TotalNum") or 0))


def _written(payload: dict[str, Any]) -> WriteResult:
    record = payload.get("Record")
    return WriteResult(
        int(payload.get("RecordVersion", -1)), record if isinstance(record, dict) else None, payload.get("ReturnValues")
    )


def _answer_shape(payload: Any) -> bool:
    """Whether a success's body is a TcaplusDB answer (an object with an integer ``ErrorCode``);
    a cut or non-JSON one is an unreadable reply (a read is asked again, a write is unknown)."""
    return isinstance(payload, dict) and isinstance(payload.get("ErrorCode"), int)


def _payload(resp: Response, transport: HttpTransport, target: str, table: str) -> dict[str, Any]:
    """The JSON answer when ``ErrorCode`` is 0, else the typed error (built from code and message),
    naming the host (``host:port``) and the operation (``AddRecord <table>``)."""
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("ErrorCode"), int):
        cls = TcaplusServerError if resp.status_code >= 500 else TcaplusError
        raise cls(
            "the answer is not TcaplusDB JSON", http_status=resp.status_code, host=transport.host, operation=f"{target} {table}"
        )
    code = payload["ErrorCode"]
    if code == 0 and resp.status_code < 400:
        return payload
    message = str(payload.get("ErrorMsg") or "error")
    raise error_class(code, resp.status_code)(
        message, code=code, http_status=resp.status_code, host=transport.host, operation=f"{target} {table}"
    )

"""TcaplusDB's vocabulary as the emulator speaks it: the documented error codes and texts, the
limits of one answer, the request path and header forms, a failure that answers with a code, one
routed call, and how a table's ``.proto`` is named (:data:`TableSource`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.sandbox.base import Request
from reconciler.vendors.tcaplus.protoschema import RecordIssue, TableSchema, load_table

SUCCEED = 0
RECORD_NOT_FOUND = 261
AUTH_FAILED = -279
RECORD_EXISTS = -1293
INVALID_PARAMETER = -1811
OPERATION_MISMATCH = -2067
SERIALIZATION_ERROR = -2323
DESERIALIZATION_ERROR = -2579
NO_PRIMARY_KEY = -5395
INVALID_VERSION = -7949
INVALID_REQUEST = -11539
TABLE_NOT_FOUND = -12819
INDEX_NOT_FOUND = -34565
SYSTEM_BUSY = -1037

# code -> (HTTP status, message) — the manual's "Return codes" table (plus the two decisions above)
ERRORS: dict[int, tuple[int, str]] = {
    DESERIALIZATION_ERROR: (400, "Data deserialization error"),
    AUTH_FAILED: (401, "Authentication error"),
    INVALID_REQUEST: (400, "Invalid request"),
    OPERATION_MISMATCH: (400, "Operation type mismatch"),
    INVALID_PARAMETER: (400, "Invalid parameter"),
    NO_PRIMARY_KEY: (400, "No primary key is set"),
    SERIALIZATION_ERROR: (400, "Data serialization error"),
    INVALID_VERSION: (400, "Invalid data version number"),
    RECORD_EXISTS: (400, "The record already exists"),
    RECORD_NOT_FOUND: (404, "The record does not exist"),
    INDEX_NOT_FOUND: (404, "The index does not exist"),
    TABLE_NOT_FOUND: (404, "The table does not exist"),
    SYSTEM_BUSY: (500, "Internal system error"),
}

MAX_BATCH_RECORDS = 1024
PARTKEY_MAX_BYTES = 256 * 1024  # one PartkeyGetRecord answer (the Python SDK manual, reference/tcaplus.md)
_PATH = re.compile(r"^/ver1\.0/apps/([^/]+)/zones/([^/]+)/tables/([^/]+)/records/?$")
_VERSION = re.compile(r"^Tcaplus\d+(\.\d+)*$")
_IDL_TYPES = ("protobuf", "pb")
_NO_VALUES = object()


class _Failure(Exception):
    """Answer the request with a documented error code."""

    def __init__(self, code: int, detail: str = "", *, status: int | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status or ERRORS[code][0]


@dataclass
class _Call:
    """One vendor request after routing and authentication."""

    req: Request
    table: TableSchema
    return_values: Any = _NO_VALUES

    def result_flag(self) -> int:
        flag = _int_header(self.req, "x-tcaplus-result-flag", 0)
        if flag not in (0, 1, 2, 3):
            raise _Failure(INVALID_PARAMETER, "x-tcaplus-result-flag must be 0, 1, 2 or 3")
        return flag


@dataclass
class _Stored:
    version: int
    record: dict[str, Any]


def _int_header(req: Request, name: str, default: int) -> int:
    raw = req.header(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise _Failure(INVALID_PARAMETER, f"{name} must be an integer") from None


def _describe(issue: RecordIssue) -> str:
    where = ".".join(str(p) for p in issue.path)
    return f"{where}: {issue.message}" if where else issue.message


TableSource = str | Path | tuple[str | Path, str]
"""A table's ``.proto`` file, or ``(file, message)`` when the message is not named like the table."""


def _load_table(name: str, source: TableSource) -> TableSchema:
    if isinstance(source, tuple):
        path, message = source
        return load_table(path, name, message=message)
    return load_table(source, name)

"""Emulator of the TcaplusDB RESTful API v1.0 (protobuf tables).

Written from ``reference/seeds/tcaplus-restful-api-v1.txt`` (the contract) and
``reference/tcaplus.md``, independently of the client. One app and one zone (table group) per
emulator; tables come from ``.proto`` files (:mod:`reconciler.vendors.tcaplus.protoschema`)::

    GET    /ver1.0/apps/{AppId}/zones/{ZoneId}/tables/{TableName}/records?keys=..&select=..
           Tcaplus.GetRecord | Tcaplus.FieldGetRecord | Tcaplus.PartkeyGetRecord
    POST   .../records   Tcaplus.AddRecord
    PUT    .../records   Tcaplus.SetRecord | Tcaplus.FieldSetRecord | Tcaplus.FieldIncRecord
    DELETE .../records   Tcaplus.DeleteRecord (JSON body)

Wire format
-----------
- The operation is the ``x-tcaplus-target`` header; its HTTP method must match the table above,
  else ``-2067`` (operation type mismatch). Required headers: ``x-tcaplus-target``,
  ``x-tcaplus-version`` (``Tcaplus<digits and dots>``), ``x-tcaplus-pwd-md5`` and
  ``x-tcaplus-idl-type`` (``protobuf`` or ``pb``, any case); a missing or malformed one is
  ``-11539`` (invalid request).
- Authentication: ``x-tcaplus-pwd-md5`` must be the hex MD5 of the app password (any case) and the
  AppId in the path must be this emulator's, else ``-279`` / HTTP 401. Checked right after the path.
- Query values are percent-decoded. The manual asks for ``%20`` for a space and says nothing of
  ``+``: by default ``+`` stays a literal plus (so a client that sends ``+`` for a space is caught);
  the knob ``plus_as_space=True`` decodes it as a space (form-style), the other possible answer. ``keys`` is a JSON
  object, ``select`` a JSON array of (dotted) field paths. Bodies are ``{"ReturnValues": ..,
  "Record": {..}}`` (+ ``"FieldPath": [..]``); ``ReturnValues`` is echoed verbatim, also on errors.
- Success: ``{"ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": n, ["ReturnValues"],
  ["Record"]}``; PartkeyGetRecord: ``MultiRecords: [{RecordVersion, Record}]``, ``RemainNum``,
  ``TotalNum``. DeleteRecord answers exactly like the manual's sample: ``{"ErrorCode": 0,
  "Record": {}, "RecordVersion": -1, ["ReturnValues"]}`` (no ``ErrorMsg``).
- Errors: ``{"ErrorCode": code, "ErrorMsg": text, ["ReturnValues"]}`` with the manual's HTTP
  status: 400 for -2579 -11539 -2067 -1811 -5395 -2323 -7949 -1293, 401 for -279, 404 for 261 and
  -34565, 500 for internal errors.

Semantic decisions where the manual is silent
---------------------------------------------
- Unknown zone or table: ``-12819`` (``API_ERR_TABLE_IS_NOT_EXIST``, reference/tcaplus.md §1.4) with
  HTTP 404; unknown path: ``-11539`` with HTTP 404.
- Record problems: a missing primary-key field is ``-5395``; an unknown field, a wrong JSON type or
  an out-of-range integer is ``-2579`` (the JSON cannot be turned into the protobuf message); a
  whole-record write (Add/Set) missing a proto2 ``required`` field is ``-2323`` (the message cannot
  be serialised). Bad header values, bad ``select``/``FieldPath`` paths, bad ``limit``/``offset``
  and FieldIncRecord on a non-integer field or beyond the type's range are ``-1811``.
- Version check (``x-tcaplus-data-version-check`` 1/2/3 with ``x-tcaplus-data-version``): applied
  to AddRecord and SetRecord only, as the manual states ("These tags are only applicable to
  Tcaplus.AddRecord and Tcaplus.SetRecord"); other writes ignore them. A version ``<= 0`` or no
  policy header: the stored version goes up by 1. Policy 1 on an existing record: the versions must
  match (else ``-7949``), then +1; on a missing record (SetRecord inserting) there is nothing to
  compare and the new record gets version 1. Policy 2 stores the client's version. Policy 3: +1.
  New records start at version 1. FieldSet/FieldInc add 1.
- ``x-tcaplus-result-flag`` (default 0): 0 = no ``Record``; 1 = the request's ``Record`` (FieldInc:
  the keys and the incremented fields' new values); 2 = the whole record after the write; 3 = the
  whole record before it (``{}`` when there was none). DeleteRecord returns ``{}`` for 1 and 2.
- Reads: GetRecord returns the record as stored (fields never written are absent), or only the
  key fields plus the ``select`` paths when ``select`` is given; FieldGetRecord requires a non-empty
  ``select``. A missing record is 261 / HTTP 404.
- PartkeyGetRecord: ``x-tcaplus-index-name`` names a ``tcaplus_index`` of the table (missing:
  ``-1811``, unknown: ``-34565``); ``keys`` must hold exactly that index's fields. Matches come in
  insertion order; ``offset`` (default 0) skips, ``limit`` (default and cap 1024, the documented
  batch limit) bounds one answer, and so does its size: records are added while the answer's
  records stay within 256 KB (the Python SDK manual's cap; the first record always comes back);
  ``RemainNum = TotalNum - offset - returned``. No match at all is 261 / HTTP 404. Matches are
  found through an index of the stored records, so a page costs what it returns.
- FieldSetRecord needs ``FieldPath`` (``-1811`` "Missing FieldPath when call FieldOperate Target."),
  every path must have a value in ``Record`` and may not be a primary-key field; the record must
  exist (261). FieldIncRecord increments the ``FieldPath`` fields, or without ``FieldPath`` every
  non-key leaf of ``Record``; the record must exist (261); an absent stored field counts as 0.
- The ``error_rate``/``fail_next`` fault answers HTTP 500 ``{"ErrorCode": -1037, "ErrorMsg":
  "Internal system error: system busy"}`` (-1037 is ``SVR_ERR_FAIL_SYSTEM_BUSY``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote
from typing import Any

from reconciler.vendors.tcaplus.protoschema import (
    INCREMENTABLE_TYPES,
    INT_RANGES,
    FLOAT_TYPES,
    MessageType,
    RecordIssue,
    TableSchema,
    load_table,
    validate_keys,
    validate_record,
)
from reconciler.sandbox.base import Emulator, Request, Response

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


class TcaplusEmulator(Emulator):
    """TcaplusDB RESTful API v1.0 for one app and zone; ``tables`` maps table names to their
    ``.proto`` (see :data:`TableSource`). Records persist in SQLite."""

    name = "tcaplus"

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        app_id: int,
        zone_id: int,
        password: str,
        tables: Mapping[str, TableSource],
        plus_as_space: bool = False,
    ):
        self.plus_as_space = plus_as_space
        self.app_id = app_id
        self.zone_id = zone_id
        self._password_md5 = hashlib.md5(password.encode("utf-8")).hexdigest()
        self.tables = {name: _load_table(name, source) for name, source in tables.items()}
        self.partkey_max_bytes = PARTKEY_MAX_BYTES
        self._operations: dict[str, tuple[str, Callable[[_Call], Response]]] = {
            "Tcaplus.GetRecord": ("GET", self._get_record),
            "Tcaplus.FieldGetRecord": ("GET", self._field_get_record),
            "Tcaplus.PartkeyGetRecord": ("GET", self._partkey_get_record),
            "Tcaplus.AddRecord": ("POST", self._add_record),
            "Tcaplus.SetRecord": ("PUT", self._set_record),
            "Tcaplus.FieldSetRecord": ("PUT", self._field_set_record),
            "Tcaplus.FieldIncRecord": ("PUT", self._field_inc_record),
            "Tcaplus.DeleteRecord": ("DELETE", self._delete_record),
        }
        super().__init__(state_dir)

    def __repr__(self) -> str:  # never show the password hash
        return f"TcaplusEmulator(app_id={self.app_id}, zone_id={self.zone_id}, tables={sorted(self.tables)})"

    # -- storage ------------------------------------------------------------------------------
    def init_db(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS tcaplus_records ("
            " app INTEGER NOT NULL, zone INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL,"
            " version INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (app, zone, tbl, pk))"
        )
        # PartkeyGetRecord reads through this index (index key -> record row), so a page costs
        # what it returns, not a decode of the whole table. Rebuilt at start from the stored
        # records, so it always follows the tables' current ``tcaplus_index`` options.
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS tcaplus_index_keys ("
            " app INTEGER NOT NULL, zone INTEGER NOT NULL, tbl TEXT NOT NULL, idx TEXT NOT NULL,"
            " ikey TEXT NOT NULL, pk TEXT NOT NULL, PRIMARY KEY (app, zone, tbl, idx, ikey, pk))"
        )
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM tcaplus_index_keys WHERE app=? AND zone=?", (self.app_id, self.zone_id))
            for table in self.tables.values():
                if not table.indexes:
                    continue
                rows = self.db.execute(
                    "SELECT data FROM tcaplus_records WHERE app=? AND zone=? AND tbl=?", (self.app_id, self.zone_id, table.name)
                )
                for row in rows.fetchall():
                    self._index(table, json.loads(row["data"]))

    def _key_text(self, table: TableSchema, fields: tuple[str, ...], record: Mapping[str, Any]) -> str:
        values = [float(record[k]) if table.fields[k].type in FLOAT_TYPES else record[k] for k in fields]
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    def _index(self, table: TableSchema, record: Mapping[str, Any]) -> None:
        if not table.indexes:
            return
        pk = self._pk(table, record)
        self.db.executemany(
            "INSERT OR IGNORE INTO tcaplus_index_keys (app, zone, tbl, idx, ikey, pk) VALUES (?, ?, ?, ?, ?, ?)",
            [(self.app_id, self.zone_id, table.name, name, self._key_text(table, fields, record), pk)
             for name, fields in table.indexes.items()],
        )

    def _unindex(self, table: TableSchema, record: Mapping[str, Any]) -> None:
        if table.indexes:
            self.db.execute("DELETE FROM tcaplus_index_keys WHERE app=? AND zone=? AND tbl=? AND pk=?",
                            (self.app_id, self.zone_id, table.name, self._pk(table, record)))

    def _pk(self, table: TableSchema, record: Mapping[str, Any]) -> str:
        return self._key_text(table, table.primary_key, record)

    def _load(self, table: TableSchema, record: Mapping[str, Any]) -> _Stored | None:
        row = self.db.execute(
            "SELECT version, data FROM tcaplus_records WHERE app=? AND zone=? AND tbl=? AND pk=?",
            (self.app_id, self.zone_id, table.name, self._pk(table, record)),
        ).fetchone()
        return _Stored(row["version"], json.loads(row["data"])) if row else None

    def _store(self, table: TableSchema, record: Mapping[str, Any], version: int) -> None:
        self.db.execute(
            "INSERT INTO tcaplus_records (app, zone, tbl, pk, version, data) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (app, zone, tbl, pk) DO UPDATE SET version=excluded.version, data=excluded.data",
            (self.app_id, self.zone_id, table.name, self._pk(table, record), version,
             json.dumps(record, ensure_ascii=False, separators=(",", ":"))),
        )
        self._index(table, record)  # index fields are key fields: an existing row keeps its entries

    def _remove(self, table: TableSchema, record: Mapping[str, Any]) -> None:
        self.db.execute(
            "DELETE FROM tcaplus_records WHERE app=? AND zone=? AND tbl=? AND pk=?",
            (self.app_id, self.zone_id, table.name, self._pk(table, record)),
        )
        self._unindex(table, record)

    def _scan(self, table: TableSchema) -> list[_Stored]:
        rows = self.db.execute(
            "SELECT version, data FROM tcaplus_records WHERE app=? AND zone=? AND tbl=? ORDER BY rowid",
            (self.app_id, self.zone_id, table.name),
        ).fetchall()
        return [_Stored(r["version"], json.loads(r["data"])) for r in rows]

    def records(self, table: str) -> list[tuple[int, dict[str, Any]]]:
        """Every stored ``(version, record)`` of ``table`` in insertion order (for tests)."""
        with self.lock:
            return [(s.version, s.record) for s in self._scan(self.tables[table])]

    def clear(self) -> None:
        """Delete every record of this app and zone (tests, sandbox resets)."""
        with self.lock:
            self.db.execute("DELETE FROM tcaplus_records WHERE app=? AND zone=?", (self.app_id, self.zone_id))
            self.db.execute("DELETE FROM tcaplus_index_keys WHERE app=? AND zone=?", (self.app_id, self.zone_id))

    # -- routing ------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        call: _Call | None = None
        try:
            call = self._route(req)
            _, operation = self._operations[req.header("x-tcaplus-target", "") or ""]
            return operation(call)
        except _Failure as failure:
            return self._error(failure, call)

    def operation(self, req: Request) -> str:
        target = req.header("x-tcaplus-target", "") or ""
        return target.removeprefix("Tcaplus.") or super().operation(req)

    def injected_error(self, req: Request) -> Response:
        return self._error(_Failure(SYSTEM_BUSY, "system busy"), None)

    def _route(self, req: Request) -> _Call:
        match = _PATH.match(req.path)
        if match is None:
            raise _Failure(
                INVALID_REQUEST, "unknown path (use /ver1.0/apps/{AppId}/zones/{ZoneId}/tables/{TableName}/records)",
                status=404,
            )
        app, zone, table_name = match.groups()
        self._authenticate(req, app)
        self._check_headers(req)
        table = self.tables.get(table_name)
        if zone != str(self.zone_id) or table is None:
            raise _Failure(TABLE_NOT_FOUND, f"no table {table_name!r} in zone {zone}")
        return _Call(req, table)

    def _authenticate(self, req: Request, app: str) -> None:
        given = (req.header("x-tcaplus-pwd-md5") or "").strip().lower()
        if app != str(self.app_id) or not hmac.compare_digest(given.encode(), self._password_md5.encode()):
            raise _Failure(AUTH_FAILED, "the AppId or the password MD5 is wrong")

    def _check_headers(self, req: Request) -> None:
        target = req.header("x-tcaplus-target")
        if target is None:
            raise _Failure(INVALID_REQUEST, "x-tcaplus-target is required")
        if target not in self._operations:
            raise _Failure(INVALID_REQUEST, f"unknown x-tcaplus-target {target!r}")
        method, _ = self._operations[target]
        if req.method != method:
            raise _Failure(OPERATION_MISMATCH, f"{target} is sent with {method}, not {req.method}")
        if not _VERSION.match((req.header("x-tcaplus-version") or "").strip()):
            raise _Failure(INVALID_REQUEST, "x-tcaplus-version is required (e.g. Tcaplus3.32.0)")
        if (req.header("x-tcaplus-idl-type") or "").strip().lower() not in _IDL_TYPES:
            raise _Failure(INVALID_REQUEST, "x-tcaplus-idl-type must be protobuf")

    def _error(self, failure: _Failure, call: _Call | None) -> Response:
        text = ERRORS[failure.code][1]
        body: dict[str, Any] = {"ErrorCode": failure.code, "ErrorMsg": f"{text}: {failure.detail}" if failure.detail else text}
        if call is not None and call.return_values is not _NO_VALUES:
            body["ReturnValues"] = call.return_values
        return Response.json(body, status=failure.status)

    def _reply(self, call: _Call, version: int, record: Any = None, *, message: bool = True) -> Response:
        body: dict[str, Any] = {"ErrorCode": SUCCEED}
        if message:
            body["ErrorMsg"] = "Succeed"
        if record is not None:
            body["Record"] = record
        body["RecordVersion"] = version
        if call.return_values is not _NO_VALUES:
            body["ReturnValues"] = call.return_values
        return Response.json(body)

    # -- request parts ------------------------------------------------------------------------
    def _query_value(self, call: _Call, name: str) -> str | None:
        """A query value, last one wins; ``+`` is a space only with the ``plus_as_space`` knob."""
        if self.plus_as_space:
            return call.req.query.get(name)
        value = None
        for part in call.req.raw_query.split("&"):
            key, _, raw = part.partition("=")
            if unquote(key) == name:
                value = unquote(raw)
        return value

    def _query_json(self, call: _Call, name: str) -> Any:
        raw = self._query_value(call, name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise _Failure(DESERIALIZATION_ERROR, f"{name} is not valid JSON") from None

    def _keys(self, call: _Call, fields: tuple[str, ...]) -> dict[str, Any]:
        keys = self._query_json(call, "keys")
        if keys is None:
            raise _Failure(NO_PRIMARY_KEY, "the keys parameter is required")
        issues = validate_keys(call.table, keys, fields=fields)
        missing = [i for i in issues if i.message.startswith("key field")]
        if missing:
            raise _Failure(NO_PRIMARY_KEY, _describe(missing[0]))
        if issues:
            raise _Failure(INVALID_PARAMETER, _describe(issues[0]))
        return dict(keys)

    def _select(self, call: _Call, *, required: bool) -> list[str]:
        select = self._query_json(call, "select")
        if select is None or select == []:
            if required:
                raise _Failure(INVALID_PARAMETER, "select (a JSON array of field paths) is required")
            return []
        if not isinstance(select, list) or not all(isinstance(p, str) for p in select):
            raise _Failure(INVALID_PARAMETER, "select must be a JSON array of field paths")
        self._check_paths(call.table, select, "select")
        return select

    def _check_paths(self, table: TableSchema, paths: list[str], what: str) -> None:
        for path in paths:
            if table.field_at(path) is None:
                raise _Failure(INVALID_PARAMETER, f"{what}: {path!r} is not a field path of {table.name}")

    def _body(self, call: _Call) -> dict[str, Any]:
        try:
            body = json.loads(call.req.body.decode("utf-8")) if call.req.body else None
        except (ValueError, UnicodeDecodeError):
            raise _Failure(DESERIALIZATION_ERROR, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise _Failure(DESERIALIZATION_ERROR, "the request body must be a JSON object")
        if "ReturnValues" in body:
            call.return_values = body["ReturnValues"]
        if not isinstance(body.get("Record"), dict):
            raise _Failure(INVALID_REQUEST, "Record (a JSON object) is required")
        return body

    def _record(self, call: _Call, body: Mapping[str, Any], *, whole: bool) -> dict[str, Any]:
        record: dict[str, Any] = body["Record"]
        missing = [k for k in call.table.primary_key if k not in record]
        if missing:
            raise _Failure(NO_PRIMARY_KEY, f"missing primary-key field(s): {', '.join(missing)}")
        issues = validate_record(call.table, record)
        if issues:
            raise _Failure(DESERIALIZATION_ERROR, _describe(issues[0]))
        if whole:
            issues = validate_record(call.table, record, require_required=True)
            if issues:
                raise _Failure(SERIALIZATION_ERROR, _describe(issues[0]))
        return record

    def _field_paths(self, call: _Call, body: Mapping[str, Any]) -> list[str] | None:
        paths = body.get("FieldPath")
        if paths is None:
            return None
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise _Failure(INVALID_PARAMETER, "FieldPath must be a non-empty JSON array of field paths")
        self._check_paths(call.table, paths, "FieldPath")
        keys = [p for p in paths if p in call.table.primary_key]
        if keys:
            raise _Failure(INVALID_PARAMETER, f"FieldPath: primary-key field {keys[0]!r} cannot be changed")
        return paths

    def _version_check(self, call: _Call, existing: _Stored | None) -> int:
        """The version the written record gets (AddRecord/SetRecord), or ``-7949``."""
        policy = _int_header(call.req, "x-tcaplus-data-version-check", 0)
        if policy not in (0, 1, 2, 3):
            raise _Failure(INVALID_PARAMETER, "x-tcaplus-data-version-check must be 1, 2 or 3")
        client = _int_header(call.req, "x-tcaplus-data-version", 0)
        current = existing.version if existing else 0
        if policy == 0 or client <= 0 or policy == 3:
            return current + 1
        if policy == 2:
            return client
        if existing is not None and existing.version != client:
            raise _Failure(INVALID_VERSION, f"the client version {client} is not the stored version {existing.version}")
        return current + 1

    # -- reads --------------------------------------------------------------------------------
    def _read_one(self, call: _Call, *, select_required: bool) -> Response:
        keys = self._keys(call, call.table.primary_key)
        select = self._select(call, required=select_required)
        stored = self._load(call.table, keys)
        if stored is None:
            raise _Failure(RECORD_NOT_FOUND)
        record = _project(stored.record, select, call.table.primary_key) if select else stored.record
        return self._reply(call, stored.version, record)

    def _get_record(self, call: _Call) -> Response:
        return self._read_one(call, select_required=False)

    def _field_get_record(self, call: _Call) -> Response:
        return self._read_one(call, select_required=True)

    def _partkey_get_record(self, call: _Call) -> Response:
        index_name = (call.req.header("x-tcaplus-index-name") or "").strip()
        if not index_name:
            raise _Failure(INVALID_PARAMETER, "x-tcaplus-index-name is required")
        fields = call.table.indexes.get(index_name)
        if fields is None:
            raise _Failure(INDEX_NOT_FOUND, f"{call.table.name} has no index {index_name!r}")
        keys = self._keys(call, fields)
        select = self._select(call, required=False)
        limit = self._query_int(call, "limit", MAX_BATCH_RECORDS, minimum=1)
        offset = self._query_int(call, "offset", 0, minimum=0)
        ikey = self._key_text(call.table, fields, keys)
        where = ("FROM tcaplus_index_keys i JOIN tcaplus_records r"
                 " ON r.app = i.app AND r.zone = i.zone AND r.tbl = i.tbl AND r.pk = i.pk"
                 " WHERE i.app=? AND i.zone=? AND i.tbl=? AND i.idx=? AND i.ikey=?")
        params = (self.app_id, self.zone_id, call.table.name, index_name, ikey)
        total = self.db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
        if not total:
            raise _Failure(RECORD_NOT_FOUND)
        rows = self.db.execute(f"SELECT r.version, r.data {where} ORDER BY r.rowid LIMIT ? OFFSET ?",
                               (*params, min(limit, MAX_BATCH_RECORDS), offset)).fetchall()
        items: list[dict[str, Any]] = []
        size = 0
        for row in rows:
            record = json.loads(row["data"])
            item = {"RecordVersion": row["version"],
                    "Record": _project(record, select, call.table.primary_key) if select else record}
            size += len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()) + 1
            if items and size > self.partkey_max_bytes:
                break  # one answer holds at most 256 KB of records (the first always fits)
            items.append(item)
        body = {
            "ErrorCode": SUCCEED,
            "ErrorMsg": "Succeed",
            "MultiRecords": items,
            "RemainNum": max(total - offset - len(items), 0),
            "TotalNum": total,
        }
        return Response.json(body)

    def _query_int(self, call: _Call, name: str, default: int, *, minimum: int) -> int:
        raw = call.req.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise _Failure(INVALID_PARAMETER, f"{name} must be an integer") from None
        if value < minimum:
            raise _Failure(INVALID_PARAMETER, f"{name} must be at least {minimum}")
        return value

    # -- writes -------------------------------------------------------------------------------
    def _add_record(self, call: _Call) -> Response:
        body = self._body(call)
        flag = call.result_flag()
        record = self._record(call, body, whole=True)
        if self._load(call.table, record) is not None:
            raise _Failure(RECORD_EXISTS)
        version = self._version_check(call, None)
        self._store(call.table, record, version)
        return self._reply(call, version, _written(flag, request=record, after=record, before={}))

    def _set_record(self, call: _Call) -> Response:
        body = self._body(call)
        flag = call.result_flag()
        record = self._record(call, body, whole=True)
        existing = self._load(call.table, record)
        version = self._version_check(call, existing)
        self._store(call.table, record, version)
        before = existing.record if existing else {}
        return self._reply(call, version, _written(flag, request=record, after=record, before=before))

    def _field_set_record(self, call: _Call) -> Response:
        body = self._body(call)
        flag = call.result_flag()
        record = self._record(call, body, whole=False)
        paths = self._field_paths(call, body)
        if paths is None:
            raise _Failure(INVALID_PARAMETER, "Missing FieldPath when call FieldOperate Target.")
        absent = [p for p in paths if not _has(record, p)]
        if absent:
            raise _Failure(INVALID_PARAMETER, f"FieldPath {absent[0]!r} has no value in Record")
        existing = self._require(call, record)
        updated = copy.deepcopy(existing.record)
        for path in paths:
            _put(updated, path, _take(record, path))
        self._store(call.table, updated, existing.version + 1)
        return self._reply(call, existing.version + 1, _written(flag, request=record, after=updated, before=existing.record))

    def _field_inc_record(self, call: _Call) -> Response:
        body = self._body(call)
        flag = call.result_flag()
        record = self._record(call, body, whole=False)
        paths = self._field_paths(call, body) or _leaf_paths(call.table.message, record, call.table.primary_key)
        if not paths:
            raise _Failure(INVALID_PARAMETER, "Record names no field to increment")
        existing = self._require(call, record)
        updated = copy.deepcopy(existing.record)
        changed = {k: record[k] for k in call.table.primary_key}
        for path in paths:
            value = self._increment(call.table, updated, record, path)
            _put(updated, path, value)
            _put(changed, path, value)
        self._store(call.table, updated, existing.version + 1)
        return self._reply(call, existing.version + 1, _written(flag, request=changed, after=updated, before=existing.record))

    def _increment(self, table: TableSchema, stored: dict[str, Any], request: Mapping[str, Any], path: str) -> int:
        f = table.field_at(path)
        assert f is not None  # paths were checked
        if f.is_repeated or f.type not in INCREMENTABLE_TYPES:
            kind = f"repeated {f.type}" if f.is_repeated else f.type
            raise _Failure(INVALID_PARAMETER, f"FieldIncRecord works on int32, int64, uint32 and uint64 fields; {path} is {kind}")
        if not _has(request, path):
            raise _Failure(INVALID_PARAMETER, f"FieldPath {path!r} has no value in Record")
        current = _take(stored, path) if _has(stored, path) else 0
        result = int(current) + int(_take(request, path))
        low, high = INT_RANGES[f.type]
        if not low <= result <= high:
            raise _Failure(INVALID_PARAMETER, f"{path}: {result} is out of range for {f.type}")
        return result

    def _delete_record(self, call: _Call) -> Response:
        body = self._body(call)
        flag = call.result_flag()
        record = self._record(call, body, whole=False)
        existing = self._require(call, record)
        self._remove(call.table, record)
        return self._reply(call, -1, existing.record if flag == 3 else ({} if flag else None), message=False)

    def _require(self, call: _Call, record: Mapping[str, Any]) -> _Stored:
        existing = self._load(call.table, record)
        if existing is None:
            raise _Failure(RECORD_NOT_FOUND)
        return existing


# -- record paths (the emulator's own, independent of any client code) ------------------------


def _written(flag: int, *, request: Any, after: Any, before: Any) -> Any:
    return {0: None, 1: request, 2: after, 3: before}[flag]


def _has(record: Mapping[str, Any], path: str) -> bool:
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _take(record: Mapping[str, Any], path: str) -> Any:
    current: Any = record
    for part in path.split("."):
        current = current[part]
    return current


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    current = record
    for part in parents:
        nested = current.get(part)
        if not isinstance(nested, dict):
            nested = current[part] = {}
        current = nested
    current[leaf] = copy.deepcopy(value)


def _project(record: Mapping[str, Any], paths: list[str], key_fields: tuple[str, ...]) -> dict[str, Any]:
    """The key fields plus the selected paths that have a value."""
    out: dict[str, Any] = {k: record[k] for k in key_fields if k in record}
    for path in paths:
        if _has(record, path):
            _put(out, path, _take(record, path))
    return out


def _leaf_paths(message: MessageType, record: Mapping[str, Any], skip: tuple[str, ...], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, value in record.items():
        if name in skip:
            continue
        f = message.fields[name]
        if f.message is not None and not f.is_repeated and isinstance(value, Mapping):
            paths += _leaf_paths(f.message, value, (), f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths

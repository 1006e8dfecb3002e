"""Reading one TcaplusDB request: query values (``+`` as a space only by the knob), ``keys`` and
``select``, the JSON body and its ``Record``, ``FieldPath``, the version check headers; and the
success answer every operation sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from reconciler.sandbox.base import Response
from reconciler.vendors.tcaplus.emulator.protocol import (
    _NO_VALUES,
    DESERIALIZATION_ERROR,
    INVALID_PARAMETER,
    INVALID_REQUEST,
    INVALID_VERSION,
    NO_PRIMARY_KEY,
    SERIALIZATION_ERROR,
    SUCCEED,
    _Call,
    _describe,
    _Failure,
    _int_header,
    _Stored,
)
from reconciler.vendors.tcaplus.emulator.store import TcaplusState
from reconciler.vendors.tcaplus.protoschema import TableSchema, validate_keys, validate_record


class RequestParts(TcaplusState):
    """The parts of a routed call, read and checked; the success answer."""

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

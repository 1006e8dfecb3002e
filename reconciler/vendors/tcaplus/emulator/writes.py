"""AddRecord, SetRecord, FieldSetRecord, FieldIncRecord and DeleteRecord, with versions and the
answer ``x-tcaplus-result-flag`` asks for.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from reconciler.sandbox.base import Response
from reconciler.vendors.tcaplus.emulator.paths import _has, _leaf_paths, _put, _take, _written
from reconciler.vendors.tcaplus.emulator.protocol import (
    INVALID_PARAMETER,
    RECORD_EXISTS,
    RECORD_NOT_FOUND,
    _Call,
    _Failure,
    _Stored,
)
from reconciler.vendors.tcaplus.emulator.requests import RequestParts
from reconciler.vendors.tcaplus.protoschema import INCREMENTABLE_TYPES, INT_RANGES, TableSchema


class WriteOperations(RequestParts):
    """The write operations."""

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

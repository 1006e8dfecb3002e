"""GetRecord, FieldGetRecord and PartkeyGetRecord (paged through an index, capped at
:data:`~.protocol.MAX_BATCH_RECORDS` records and :data:`~.protocol.PARTKEY_MAX_BYTES` per answer).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.sandbox.base import Response
from reconciler.vendors.tcaplus.emulator.paths import _project
from reconciler.vendors.tcaplus.emulator.protocol import (
    INDEX_NOT_FOUND,
    INVALID_PARAMETER,
    MAX_BATCH_RECORDS,
    RECORD_NOT_FOUND,
    SUCCEED,
    _Call,
    _Failure,
)
from reconciler.vendors.tcaplus.emulator.requests import RequestParts


class ReadOperations(RequestParts):
    """The read operations."""

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
        where = (
            "FROM tcaplus_index_keys i JOIN tcaplus_records r"
            " ON r.app = i.app AND r.zone = i.zone AND r.tbl = i.tbl AND r.pk = i.pk"
            " WHERE i.app=? AND i.zone=? AND i.tbl=? AND i.idx=? AND i.ikey=?"
        )
        params = (self.app_id, self.zone_id, call.table.name, index_name, ikey)
        total = self.db.execute(f"SELECT COUNT(*) {where}", params).fetchone()[0]
        if not total:
            raise _Failure(RECORD_NOT_FOUND)
        rows = self.db.execute(
            f"SELECT r.version, r.data {where} ORDER BY r.rowid LIMIT ? OFFSET ?",
            (*params, min(limit, MAX_BATCH_RECORDS), offset),
        ).fetchall()
        items: list[dict[str, Any]] = []
        size = 0
        for row in rows:
            record = json.loads(row["data"])
            item = {
                "RecordVersion": row["version"],
                "Record": _project(record, select, call.table.primary_key) if select else record,
            }
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

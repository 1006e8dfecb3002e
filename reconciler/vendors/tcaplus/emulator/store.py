"""The TcaplusDB emulator's state: one app and zone, its tables (read from their ``.proto`` files),
the records in SQLite with their versions, and the index keys that let PartkeyGetRecord read a page
without decoding the table.

Request parsing (:mod:`.requests`), the operations (:mod:`.reads`, :mod:`.writes`) and the HTTP
side (:mod:`.api`) are subclasses that read and write this state under the server's lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.base import Emulator
from reconciler.vendors.tcaplus.emulator.protocol import (
    PARTKEY_MAX_BYTES,
    TableSource,
    _load_table,
    _Stored,
)
from reconciler.vendors.tcaplus.protoschema import FLOAT_TYPES, TableSchema


class TcaplusState(Emulator):
    """The tables, stored records and index keys of the TcaplusDB emulator (see :class:`TcaplusEmulator`)."""

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
            [
                (self.app_id, self.zone_id, table.name, name, self._key_text(table, fields, record), pk)
                for name, fields in table.indexes.items()
            ],
        )

    def _unindex(self, table: TableSchema, record: Mapping[str, Any]) -> None:
        if table.indexes:
            self.db.execute(
                "DELETE FROM tcaplus_index_keys WHERE app=? AND zone=? AND tbl=? AND pk=?",
                (self.app_id, self.zone_id, table.name, self._pk(table, record)),
            )

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
            (
                self.app_id,
                self.zone_id,
                table.name,
                self._pk(table, record),
                version,
                json.dumps(record, ensure_ascii=False, separators=(",", ":")),
            ),
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

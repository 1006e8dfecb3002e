"""TcaplusRecords planning, per table: coalesced reads (prune scopes by index; the index keys that
declared records take, read to list unmanaged rows, serve those records too; the rest one by one),
diffs, prunes inside a scope and the undeclared rows listed as unmanaged."""

from __future__ import annotations

import json
from functools import partial
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.vendors.tcaplus.client import DEFAULT_PAGE_SIZE, TcaplusClient
from reconciler.vendors.tcaplus.wire import VersionedRecord
from reconciler.model import Action, Change, FieldDiff, KindPlan
from reconciler.kinds.base import Kind, Resource
from reconciler.kinds.context import RunContext
from reconciler.kinds.prune import Decision, undeclared
from reconciler.vendors.tcaplus.protoschema import TableSchema

from reconciler.vendors.tcaplus.records.spec import PruneSpec, TcaplusRecordsSpec
from reconciler.vendors.tcaplus.records.declared import _Declared, identity
from reconciler.vendors.tcaplus.records.compare import _equal_as_read, _leaf_diffs, _leaf_paths, _leaves


def prune_of(res: Resource[TcaplusRecordsSpec]) -> PruneSpec:
    """The ``prune`` scope of a document that declares one (the callers keep only those)."""
    assert res.spec.prune is not None, res.ref
    return res.spec.prune


def _holds(scope: Resource[TcaplusRecordsSpec]) -> bool:
    """A prune scope holds the rows read from it (its index keys are the read's)."""
    return True


MAX_INDEX_KEYSETS = 20
"""Distinct index keys of declared records read to find unmanaged rows (per table and index), at
least; more when the records are many (:data:`RECORDS_PER_KEYSET`)."""

RECORDS_PER_KEYSET = 64
"""Beyond :data:`MAX_INDEX_KEYSETS`, an index's keys are still read while there is one or fewer per
this many declared records: each key costs a page or a few (the row cap stops at the first page
that says more), and the rows read serve the declared records under it, which would otherwise cost
a GetRecord each (a 100,000-record restore in 100 regions: 100 reads instead of 100,000)."""


def keyset_limit(records: int) -> int:
    """How many keys of one index a plan reads for ``records`` declared records (see
    :data:`RECORDS_PER_KEYSET`)."""
    return max(MAX_INDEX_KEYSETS, records // RECORDS_PER_KEYSET)


def _index_keys(fields: tuple[str, ...], records: list[Mapping[str, Any]]) -> set[str]:
    return {json.dumps({f: r[f] for f in fields}, sort_keys=True) for r in records if all(f in r for f in fields)}


def index_keysets(
    schema: TableSchema,
    records: Iterable[Mapping[str, Any]],
    *,
    limit: int = MAX_INDEX_KEYSETS,
    among: Iterable[Mapping[str, Any]] | None = None,
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """``(index, keys)`` of every index for the key values ``records`` take, and warnings for
    indexes whose keys are more than ``limit`` (not read). With ``among`` (a shard's plan: every
    shard's records), the keys counted are those ``among`` take, so every shard decides alike."""
    records = list(records)
    counted = records if among is None else list(among)
    out: list[tuple[str, dict[str, Any]]] = []
    warnings = []
    for index, fields in sorted(schema.indexes.items()):
        found = _index_keys(fields, records)
        total = len(found) if among is None else len(_index_keys(fields, counted))
        if total > limit:
            warnings.append(
                f"{schema.name}: declared records take {total} keys of index {index}; rows under them "
                f"that no document declares are not listed (more than {limit})"
            )
            continue
        out.extend((index, json.loads(k)) for k in sorted(found))
    return out, warnings


_Rows = tuple[tuple[str, dict[str, Any]], list[VersionedRecord] | None]
"""An index key read for unmanaged rows, and what it holds (``None``: more than the cap)."""

MAX_UNMANAGED_ROWS = 10_000
"""Rows under one index key read to list unmanaged ones; beyond it the plan says it did not look."""


async def read_capped(
    client: TcaplusClient, table: str, index: str, keys: dict[str, Any], cap: int = MAX_UNMANAGED_ROWS
) -> list[VersionedRecord] | None:
    """Every record under an index key (paged), or ``None`` when the first page says there are
    more than ``cap``."""
    records: list[VersionedRecord] = []
    while True:
        page = await client.apartkey_get(table, index, keys, limit=DEFAULT_PAGE_SIZE, offset=len(records))
        if max(page.total, len(records) + len(page.records) + page.remain) > cap:
            return None
        records += page.records
        if page.remain <= 0 or not page.records:
            return records


def _concurrency(ctx: RunContext) -> int:
    return ctx.config.providers.tcaplus.concurrency if ctx.config.providers.tcaplus else 1


class _TablePlanner:
    """Plans one table: coalesced reads (prune scopes by index, the rest one by one), then diffs."""

    def __init__(
        self,
        kind: Kind[TcaplusRecordsSpec, TcaplusClient],
        client: TcaplusClient,
        ctx: RunContext,
        schema: TableSchema,
        kp: KindPlan,
        owns: Callable[[str], bool] = lambda identity: True,
    ):
        self.kind = kind
        self.owns = owns  # a sharded run: the records (identities) this shard plans
        self.client = client
        self.ctx = ctx
        self.schema = schema
        self.kp = kp
        # prune scopes by key names (see _covered), per list of scopes (kept alive beside it)
        self._scopes: dict[
            int,
            tuple[
                list[Resource[TcaplusRecordsSpec]],
                dict[tuple[str, ...], set[tuple[Any, ...]]],
                list[Resource[TcaplusRecordsSpec]],
            ],
        ] = {}

    def plan(self, declared: list[_Declared], prunes: list[Resource[TcaplusRecordsSpec]]) -> None:
        # a sharded run reads and plans only its own records; prune scopes are listed whole (an
        # index read cannot be split) and only the shard's own undeclared rows are deleted, never
        # a record any document declares (``declared`` is every document's)
        mine = [d for d in declared if self.owns(d.identity)]
        # every read of the table from one event loop (many requests in flight on one thread)
        scoped, live, rows = self.client.run(lambda: self._read(declared, mine, prunes))
        for d in sorted(mine, key=lambda d: d.identity):
            self._plan_record(d, live.get(d.identity))
        self._plan_prunes(declared, prunes, scoped)
        self._list_unmanaged(declared, rows)

    async def _read(
        self, declared: list[_Declared], mine: list[_Declared], prunes: list[Resource[TcaplusRecordsSpec]]
    ) -> tuple[dict[str, tuple[Resource[TcaplusRecordsSpec], VersionedRecord]], dict[str, VersionedRecord], list[_Rows]]:
        scoped = await self._read_scopes(prunes, declared)
        # the index keys read to list unmanaged rows hold every record under them: declared
        # records under a key read in full are known from its rows (present or absent), not read again
        rows = await self._read_unmanaged(mine, declared, prunes)
        return scoped, await self._read_declared(mine, prunes, scoped, rows), rows

    async def _read_unmanaged(
        self, mine: list[_Declared], declared: list[_Declared], prunes: list[Resource[TcaplusRecordsSpec]]
    ) -> list[_Rows]:
        """The rows under the index keys this shard's declared records take, outside prune scopes;
        whether an index is read is decided on every document's records (the same in every shard)."""
        outside = [d.record for d in declared if not self._covered(d, prunes)]
        keysets, skipped = index_keysets(
            self.schema, [d.record for d in mine if not self._covered(d, prunes)], limit=keyset_limit(len(outside)), among=outside
        )
        self.kp.warnings.extend(skipped)

        async def read(ik: tuple[str, dict[str, Any]]) -> _Rows:
            return ik, await read_capped(self.client, self.schema.name, ik[0], ik[1], MAX_UNMANAGED_ROWS)

        return await RunContext.amap(read, keysets, concurrency=_concurrency(self.ctx))

    def _list_unmanaged(self, declared: list[_Declared], rows: list[_Rows]) -> None:
        """Rows under the index keys declared records take (outside prune scopes) that no
        document declares: listed, never touched."""
        names = {d.identity for d in declared}
        seen: set[str] = set()
        for (index, keys), records in rows:
            if records is None:
                self.kp.warnings.append(
                    f"{self.schema.name}: more than {MAX_UNMANAGED_ROWS:,} rows under index {index} "
                    f"{json.dumps(keys)}; rows no document declares there are not listed"
                )
                continue
            for vr in records:
                key = identity(self.schema.name, self.schema.key_of(vr.record))
                if key not in names and key not in seen:
                    seen.add(key)
                    # rows read here lie outside every prune scope (those are read and pruned apart)
                    decision: Decision[Resource[TcaplusRecordsSpec]] = undeclared(
                        (),
                        holds=_holds,
                        outside=f"not declared; under index {index} {json.dumps(keys)}, outside every prune scope",
                    )
                    self.kp.unmanaged.append(decision.unmanaged(kind=self.kind.kind, vendor=self.kind.vendor, key=key))

    def _select(self, declared: list[_Declared]) -> list[str] | None:
        """Fields to read: the declared ones when every record is in declared mode."""
        if not declared or any(d.mode == "whole" for d in declared):
            return None
        paths: set[str] = set()
        for d in declared:
            paths.update(_leaf_paths(self.schema, d.record))
        return sorted(paths) or None

    async def _read_scopes(
        self, prunes: list[Resource[TcaplusRecordsSpec]], declared: list[_Declared]
    ) -> dict[str, tuple[Resource[TcaplusRecordsSpec], VersionedRecord]]:
        select = self._select(declared)

        async def read(res: Resource[TcaplusRecordsSpec]) -> list[VersionedRecord]:
            prune = prune_of(res)
            return await self.client.apartkey_get_all(
                self.schema.name, prune.index, prune.keys, select=select, concurrency=pages_at_once
            )

        # scopes are read side by side; the pages of one scope share what is left of the concurrency
        pages_at_once = max(1, _concurrency(self.ctx) // max(1, len(prunes)))

        out: dict[str, tuple[Resource[TcaplusRecordsSpec], VersionedRecord]] = {}
        for res, records in zip(prunes, await RunContext.amap(read, prunes, concurrency=_concurrency(self.ctx)), strict=True):
            for vr in records:
                out.setdefault(identity(self.schema.name, self.schema.key_of(vr.record)), (res, vr))
        return out

    def _covered(self, d: _Declared, prunes: list[Resource[TcaplusRecordsSpec]]) -> bool:
        """Whether a prune scope holds ``d`` (its index key values are the scope's)."""
        if not prunes:
            return False
        scopes = self._scopes.get(id(prunes))
        if scopes is None:  # by the scopes' key names: one set lookup per name set, not one per scope
            by_names: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}
            odd: list[Resource[TcaplusRecordsSpec]] = []
            for r in prunes:
                keys = prune_of(r).keys
                names = tuple(sorted(keys))
                values = tuple(keys[n] for n in names)
                try:
                    by_names.setdefault(names, set()).add(values)
                except TypeError:  # an unhashable value: compared one by one
                    odd.append(r)
            scopes = self._scopes[id(prunes)] = (prunes, by_names, odd)
        _, by_names, odd = scopes
        record = d.record
        for names, keysets in by_names.items():
            try:
                if tuple(record.get(n) for n in names) in keysets:
                    return True
            except TypeError:
                if any(all(record.get(k) == v for k, v in zip(names, vs, strict=True)) for vs in keysets):
                    return True
        return any(all(record.get(k) == v for k, v in prune_of(r).keys.items()) for r in odd)

    def _from_rows(self, rows: list[_Rows]) -> tuple[set[tuple[str, str]], dict[str, VersionedRecord]]:
        """The index keys read in full (``(index, keys as JSON)``) and the records read under them."""
        complete: set[tuple[str, str]] = set()
        found: dict[str, VersionedRecord] = {}
        for (index, keys), records in rows:
            if records is None:  # more than the cap: not read, so it tells nothing
                continue
            complete.add((index, json.dumps(keys, sort_keys=True)))
            for vr in records:
                found.setdefault(identity(self.schema.name, self.schema.key_of(vr.record)), vr)
        return complete, found

    def _under(self, d: _Declared, complete: set[tuple[str, str]]) -> bool:
        """Whether ``d`` lies under an index key read in full (its rows hold ``d`` if it exists)."""
        return any(
            all(f in d.record for f in fields)
            and (index, json.dumps({f: d.record[f] for f in fields}, sort_keys=True)) in complete
            for index, fields in self.schema.indexes.items()
        )

    async def _read_declared(
        self,
        declared: list[_Declared],
        prunes: list[Resource[TcaplusRecordsSpec]],
        scoped: dict[str, tuple[Resource[TcaplusRecordsSpec], VersionedRecord]],
        rows: list[_Rows],
    ) -> dict[str, VersionedRecord]:
        live = {d.identity: scoped[d.identity][1] for d in declared if d.identity in scoped}
        complete, found = self._from_rows(rows)
        missing = []
        for d in declared:
            if d.identity in scoped or self._covered(d, prunes):
                continue
            if d.identity in found:
                live[d.identity] = found[d.identity]
            elif not (complete and self._under(d, complete)):
                missing.append(d)

        async def read(d: _Declared) -> VersionedRecord | None:
            return await self.client.aget(self.schema.name, d.keys, select=d.select)

        for d, vr in zip(
            missing,
            await RunContext.amap(
                read, missing, concurrency=_concurrency(self.ctx), progress=(self.ctx, f"TcaplusDB {self.schema.name}: reading")
            ),
            strict=True,
        ):
            if vr is not None:
                live[d.identity] = vr
        return live

    def _plan_record(self, d: _Declared, live: VersionedRecord | None) -> None:
        if live is not None:
            self.kp.existing_in_scope += 1
            whole = d.mode == "whole"
            diffs = (
                []
                if _equal_as_read(d.record, live.record, whole=whole)
                else _leaf_diffs(self.schema, d.record, live.record, whole=whole, want=d.leaves)
            )
            if not diffs:  # the common case of a plan: nothing else to build
                self.kp.noops += 1
                return
        base: dict[str, Any] = dict(
            kind=self.kind.kind, vendor=self.kind.vendor, key=d.identity, resource=d.res.ref, source=d.where.source
        )
        data = {"table": self.schema.name, "mode": d.mode, "keys": d.keys, "record": d.record}
        if live is None:
            diffs = [FieldDiff(p, None, v) for p, v in d.leaves.items() if p not in self.schema.primary_key]
            self.kp.changes.append(
                Change(
                    action=Action.CREATE, diffs=diffs, precondition={"exists": False}, calls=["POST AddRecord"], data=data, **base
                )
            )
            return
        notes = [] if d.mode == "whole" else ["declared mode: undeclared fields of the live record are kept"]
        self.kp.changes.append(
            Change(
                action=Action.UPDATE,
                diffs=diffs,
                precondition={"record_version": live.version},
                calls=["GET GetRecord", "PUT SetRecord (x-tcaplus-data-version-check: 1)"],
                notes=notes,
                data=data,
                **base,
            )
        )

    def _plan_prunes(
        self,
        declared: list[_Declared],
        prunes: list[Resource[TcaplusRecordsSpec]],
        scoped: dict[str, tuple[Resource[TcaplusRecordsSpec], VersionedRecord]],
    ) -> None:
        names = {d.identity for d in declared}
        for key, (res, vr) in sorted(scoped.items()):
            if key not in names and self.owns(key):  # read from ``res``'s prune scope: it holds the record
                undeclared([res], holds=_holds).record(
                    self.kp, kind=self.kind.kind, vendor=self.kind.vendor, key=key, change=partial(self._delete, key, vr)
                )

    def _delete(self, key: str, vr: VersionedRecord, res: Resource[TcaplusRecordsSpec]) -> Change:
        prune = prune_of(res)
        diffs = [
            FieldDiff(p, v, None) for p, v in _leaves(self.schema.message, vr.record).items() if p not in self.schema.primary_key
        ]
        return Change(
            kind=self.kind.kind,
            vendor=self.kind.vendor,
            key=key,
            action=Action.DELETE,
            resource="",
            source=res.source,
            diffs=diffs,
            precondition={"record_version": vr.version},
            calls=["GET GetRecord", "DELETE DeleteRecord"],
            notes=[f"not declared; inside the prune scope of {res.ref} (index {prune.index})"],
            data={"table": self.schema.name, "keys": {k: vr.record[k] for k in self.schema.primary_key}},
        )

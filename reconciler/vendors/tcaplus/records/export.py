"""TcaplusRecords export (DR, adoption): records under the index keys it may read, as manifests and data files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.errors import UsageError
from reconciler.kinds.base import ExportDoc, ExportFile, ExportGroup, ExportRequest, Kind, KindExport, Resource
from reconciler.kinds.context import RunContext
from reconciler.vendors.tcaplus.protoschema import TableSchema, validate_keys

from reconciler.vendors.tcaplus.records.declared import _Declared, identity
from reconciler.vendors.tcaplus.records.plan import _concurrency, index_keysets, prune_of
from reconciler.vendors.tcaplus.records.spec import TcaplusRecordsSpec


# -- export -------------------------------------------------------------------------------------
REST_LIMITS = (
    "TcaplusRecords: TcaplusDB RESTful API v1.0 cannot list a table's records or an index's key values; "
    "only records under index keys that prune scopes declare, that --index names or that declared records "
    "take, and declared records (read by key), are exported"
)
INLINE_MAX = 20
"""Up to this many records are written inline; more go to a JSON Lines data file."""


def _slug(*parts: Any) -> str:
    text = "-".join(str(p) for p in parts)
    slug = "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug[:200] or "records"


class _Exporter:
    """One table's export: index reads (prune scopes, named keys, keys of declared records), then
    the declared records read by key; a document per read, records inline or in a data file."""

    def __init__(
        self,
        kind: Kind[TcaplusRecordsSpec, TcaplusClient],
        client: TcaplusClient,
        ctx: RunContext,
        schema: TableSchema,
        request: ExportRequest,
    ):
        self.kind, self.client, self.ctx, self.schema, self.request = kind, client, ctx, schema, request
        self.path = f"tcaplus/{schema.name}.yaml"
        self.names: set[str] = set()

    def _ordered(self, record: Mapping[str, Any]) -> dict[str, Any]:
        order = [*self.schema.primary_key, *(f for f in self.schema.message.fields if f not in self.schema.primary_key)]
        out = {k: record[k] for k in order if k in record and record[k] is not None}
        out.update((k, v) for k, v in record.items() if k not in out and v is not None)
        return out

    def _name(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.names:
            name, n = f"{wanted}-{n}", n + 1
        self.names.add(name)
        return name

    def export(self, declared: list[_Declared], resources: list[Resource[TcaplusRecordsSpec]], out: KindExport) -> None:
        names = {d.identity for d in declared}
        reads: list[tuple[str, dict[str, Any], Resource[TcaplusRecordsSpec] | None]] = []
        for r in resources:
            if r.spec.prune is not None:
                reads.append((r.spec.prune.index, dict(r.spec.prune.keys), r))
        for table, index, keys in self.request.extra.get("index_keys", []):
            if table == self.schema.name:
                if index not in self.schema.indexes:
                    raise UsageError(
                        f"--index {table}:{index}: table {table} has no index {index!r} "
                        f"(indexes: {', '.join(sorted(self.schema.indexes)) or 'none'})"
                    )
                issues = validate_keys(self.schema, keys, fields=self.schema.indexes[index])
                if issues:
                    raise UsageError(
                        f"--index {table}:{index}: "
                        + "; ".join(f"{'.'.join(map(str, i.path)) or 'keys'}: {i.message}" for i in issues)
                    )
                reads.append((index, keys, None))
        prunes = [r for r in resources if r.spec.prune is not None]
        outside = [
            d.record for d in declared if not any(all(d.record.get(k) == v for k, v in prune_of(r).keys.items()) for r in prunes)
        ]
        keysets, skipped = index_keysets(self.schema, outside)
        out.notes.extend(skipped)
        reads.extend((i, k, None) for i, k in keysets)
        unique: dict[str, tuple[str, dict[str, Any], Resource[TcaplusRecordsSpec] | None]] = {}
        for index, keys, owner in reads:
            unique.setdefault(json.dumps([index, keys], sort_keys=True), (index, keys, owner))
        results = self.client.run(
            lambda: RunContext.amap(
                lambda rd: self.client.apartkey_get_all(self.schema.name, rd[0], rd[1]),
                list(unique.values()),
                concurrency=_concurrency(self.ctx),
            )
        )
        claimed: dict[str, dict[str, Any]] = {}
        owner_of = {d.identity: d.res for d in declared}
        docs: list[tuple[ExportDoc, list[dict[str, Any]]]] = []
        for (index, keys, owner), records in zip(unique.values(), results, strict=True):
            rows, row_keys = [], []
            for vr in sorted(records, key=lambda v: identity(self.schema.name, self.schema.key_of(v.record))):
                key = identity(self.schema.name, self.schema.key_of(vr.record))
                if key in claimed or (self.request.unmanaged and key in names):
                    continue
                claimed[key] = vr.record
                rows.append(self._ordered(vr.record))
                row_keys.append(key)
            if not rows:
                continue
            spec: dict[str, Any] = {"table": self.schema.name}
            if owner is not None and not self.request.unmanaged:
                doc = ExportDoc(self.kind.kind, self._name(owner.name), spec, protected=owner.protected)
                spec["mode"] = owner.spec.mode
                spec["prune"] = {"index": index, "keys": keys}
                doc.comments.append(
                    f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord); the prune scope "
                    f"is copied from {owner.source}"
                )
            elif (
                len(declarers := {owner_of[k].name: owner_of[k] for k in row_keys if k in owner_of}) == 1
                and not self.request.unmanaged
            ):
                res = next(iter(declarers.values()))
                doc = ExportDoc(self.kind.kind, self._name(res.name), spec, protected=res.protected)
                spec["mode"] = res.spec.mode
                doc.comments.append(
                    f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord), the key of the "
                    f"records {res.source} declares"
                )
            else:
                doc = ExportDoc(self.kind.kind, self._name(_slug(self.schema.name, index, *keys.values())), spec)
                spec["mode"] = "whole"
                doc.comments.append(
                    f"records under index {index} {json.dumps(keys)} (PartkeyGetRecord)"
                    + ("" if not self.request.unmanaged else " that no manifest declares")
                )
            docs.append((doc, rows))
        if not self.request.unmanaged:
            by_res: dict[str, list[_Declared]] = {}
            for d in declared:
                if d.identity not in claimed:
                    by_res.setdefault(d.res.name, []).append(d)
            missing: list[str] = []
            groups = sorted(by_res.items())
            everyone = [d for _, ds in groups for d in ds]
            answers = iter(
                self.client.run(
                    lambda: RunContext.amap(
                        lambda d: self.client.aget(self.schema.name, d.keys), everyone, concurrency=_concurrency(self.ctx)
                    )
                )
            )
            for _, ds in groups:
                got = [next(answers) for _ in ds]
                rows = []
                for d, found in zip(ds, got, strict=True):
                    if found is None:
                        missing.append(d.identity)
                        continue
                    claimed[d.identity] = found.record
                    rows.append(self._ordered(found.record))
                if not rows:
                    continue
                owner = ds[0].res
                spec = {"table": self.schema.name, "mode": owner.spec.mode}
                doc = ExportDoc(self.kind.kind, self._name(owner.name), spec, protected=owner.protected)
                doc.comments.append(f"declared records read by key (GetRecord), as declared by {owner.source}")
                docs.append((doc, rows))
            if missing:
                out.notes.append(
                    f"TcaplusRecords: {len(missing)} declared record(s) of {self.schema.name} do not exist "
                    f"live and are not exported: {', '.join(missing[:10])}"
                )
        group = ExportGroup(
            self.path,
            header=[
                f"TcaplusDB table {self.schema.name}, exported from live state. RecordVersion is server-owned and left out.",
                "REST API v1.0 cannot list a table's records or an index's key values: this file holds only the records",
                "under the index keys listed in each document and declared records read by key.",
            ],
        )
        for doc, rows in docs:
            if len(rows) > INLINE_MAX:
                data = f"data/{doc.name}.jsonl"
                doc.spec["file"] = data
                doc.field_comments["file"] = f"{len(rows)} records, one JSON object per line"
                text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows)
                out.files.append(ExportFile(f"tcaplus/{data}", text, ref=doc.ref))
            else:
                doc.spec["records"] = rows
            if "prune" in doc.spec:  # keep the prune scope last, as people write it
                doc.spec["prune"] = doc.spec.pop("prune")
            group.docs.append(doc)
        out.groups.append(group)

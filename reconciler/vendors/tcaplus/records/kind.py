"""The TcaplusRecords kind: validation and the contract's hooks, delegating to this package's modules."""

from __future__ import annotations

from collections.abc import Callable

from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.model import Change, KindPlan, Outcome
from reconciler.errors import MAX_PROBLEMS_PER_FILE, InputError, Problem, more_problems, SecretError, UsageError
from reconciler.kinds.base import ExportRequest, Kind, KindExport, Resource, ScopeDecl, aoutcome_of
from reconciler.kinds.context import RunContext
from reconciler.manifest.yamlload import Path_
from reconciler.vendors.tcaplus.protoschema import TableSchema, validate_keys, validate_record

from reconciler.vendors.tcaplus.records.spec import PruneSpec, TcaplusRecordsSpec
from reconciler.vendors.tcaplus.records.declared import _DECLARED, _Declared, _data_path, _read_records, identity, table_schema
from reconciler.vendors.tcaplus.records.plan import _TablePlanner, _concurrency
from reconciler.vendors.tcaplus.records.writes import _Writer
from reconciler.vendors.tcaplus.records.export import REST_LIMITS, _Exporter


# -- the kind -----------------------------------------------------------------------------------


class TcaplusRecordsKind(Kind[TcaplusRecordsSpec, TcaplusClient]):
    """Seed records of TcaplusDB tables; see the module docstring."""

    kind = "TcaplusRecords"
    vendor = "tcaplus"
    Spec = TcaplusRecordsSpec
    apply_order = 30
    precondition_in_write = True
    progress_label = "TcaplusDB: writing"

    def keys(self, res: Resource[TcaplusRecordsSpec]) -> list[tuple[str, Path_]]:
        # A record's identity needs its table's primary key, i.e. the config, which this hook
        # does not see: duplicates across documents are found in check().
        return []

    # sharded runs: the unit is the record (table and primary key, its identity); each shard reads
    # and writes only its own records, so a restore of millions of records splits N ways
    shard_aware = True

    def declared_identities(self, resources: list[Resource[TcaplusRecordsSpec]], ctx: RunContext) -> set[str]:
        return {d.identity for res in resources for d in self._declared(res, ctx)[0]}

    @classmethod
    def make_client(cls, ctx: RunContext) -> TcaplusClient:
        p = ctx.config.providers.tcaplus
        if p is None:
            raise UsageError("providers.tcaplus is not configured in the config file")
        return TcaplusClient(
            p.base_url,
            app_id=p.app_id,
            zone_id=p.zone_id,
            password=ctx.config_secret(p.password),
            timeout=p.timeout,
            retry=ctx.retry_policy(p),
            max_connections=p.concurrency,
            requests_per_second=p.requests_per_second,
        )

    # -- check --------------------------------------------------------------------------------
    def check(self, resources: list[Resource[TcaplusRecordsSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        if not resources:
            return []
        problems = self._provider_problems(resources[0], ctx)
        if problems:
            return problems
        seen: dict[str, _Declared] = {}
        for res in resources:
            declared, found = self._declared(res, ctx)
            problems += found
            for d in declared:
                first = seen.setdefault(d.identity, d)
                if first is not d:
                    problems.append(
                        d.where.problem((), f"duplicate record {d.identity}: also declared at {first.where.source}", res.ref)
                    )
        return problems

    def _provider_problems(self, res: Resource[TcaplusRecordsSpec], ctx: RunContext) -> list[Problem]:
        p = ctx.config.providers.tcaplus
        if p is None:
            return [res.doc.problem(("kind",), "providers.tcaplus is not configured in the config file", resource=res.ref)]
        if ctx.config.doc is not None:
            ctx.resolve_secret(ctx.config.doc, ("providers", "tcaplus", "password"), p.password, resource="Config")
            return []
        try:
            ctx.config_secret(p.password)
        except SecretError as exc:
            return [res.doc.problem(("kind",), str(exc), resource=res.ref)]
        return []

    def _declared(self, res: Resource[TcaplusRecordsSpec], ctx: RunContext) -> tuple[list[_Declared], list[Problem]]:
        """The document's valid records, and every problem of the document (validated once per
        run: ``check`` and ``plan`` share the answer)."""
        done = _DECLARED.setdefault(ctx, {})
        found = done.get(id(res))
        if found is None or found[0] is not res:
            found = done[id(res)] = (res, *self._validate(res, ctx))
        return found[1], found[2]

    def _validate(self, res: Resource[TcaplusRecordsSpec], ctx: RunContext) -> tuple[list[_Declared], list[Problem]]:
        spec: TcaplusRecordsSpec = res.spec
        known = ctx.config.providers.tcaplus.tables if ctx.config.providers.tcaplus else {}
        if spec.table not in known:
            names = ", ".join(sorted(known)) or "none"
            return [], [res.problem(("table",), f"table {spec.table!r} is not in providers.tcaplus.tables (known: {names})")]
        try:
            schema = table_schema(ctx, spec.table)
        except InputError as exc:
            return [], exc.problems
        if spec.file is not None:
            ctx.track_file(_data_path(res), resource=res.ref)
        raw, read_problems = _read_records(res)  # cached: never mutate what it returns
        problems = [*read_problems, *self._prune_problems(res, schema)]
        declared = []
        mode, key_fields = str(spec.mode), schema.primary_key
        more = 0  # problems past the per-file cap: counted, not kept (bounded memory and output)
        for record, where in raw:
            issues = validate_record(schema, record, require_required=True)
            if issues:
                if len(problems) < MAX_PROBLEMS_PER_FILE:
                    problems += [where.problem(i.path, i.message, res.ref, key=i.on_key) for i in issues]
                else:
                    more += len(issues)
                continue
            keys = {k: record[k] for k in key_fields}
            declared.append(_Declared(res, schema, record, where, identity(schema.name, keys.values()), keys, mode))
        if more:
            problems.append(more_problems(raw[-1][1].file, more, res.ref))
        return declared, problems

    @staticmethod
    def _prune_problems(res: Resource[TcaplusRecordsSpec], schema: TableSchema) -> list[Problem]:
        prune: PruneSpec | None = res.spec.prune
        if prune is None:
            return []
        fields = schema.indexes.get(prune.index)
        if fields is None:
            names = ", ".join(sorted(schema.indexes)) or "none"
            return [res.problem(("prune", "index"), f"table {schema.name} has no index {prune.index!r} (indexes: {names})")]
        issues = validate_keys(schema, prune.keys, fields=fields)
        return [res.problem(("prune", "keys") + tuple(i.path), i.message, key=i.on_key) for i in issues]

    # -- plan ---------------------------------------------------------------------------------
    def plan(self, resources: list[Resource[TcaplusRecordsSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: TcaplusClient = ctx.client(type(self))
        kp = KindPlan()
        by_table: dict[str, list[_Declared]] = {}
        for res in resources:
            declared, problems = self._declared(res, ctx)
            if problems:
                raise InputError(problems)
            for d in declared:
                by_table.setdefault(d.schema.name, []).append(d)
        prunes = [r for r in resources if r.spec.prune is not None]
        for table in sorted({*by_table, *(r.spec.table for r in prunes)}):
            _TablePlanner(self, client, ctx, table_schema(ctx, table), kp, owns=lambda key: ctx.owns(self, key)).plan(
                by_table.get(table, []), [r for r in prunes if r.spec.table == table]
            )
        return kp

    # -- apply --------------------------------------------------------------------------------
    # thousands of one-record calls: driven from one event loop (Kind.streams), the engine
    # journals each change as it starts and reports it as it ends (``progress_label``)
    streams = True

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        done: dict[int, Outcome] = {}
        self.apply_stream(changes, ctx, started=lambda c: None, finished=lambda c, o: done.__setitem__(id(c), o))
        return [done.get(id(c)) or Outcome(c, "interrupted", "not started: the run was stopped") for c in changes]

    def apply_stream(
        self,
        changes: list[Change],
        ctx: RunContext,
        *,
        started: Callable[[Change], None],
        finished: Callable[[Change, Outcome], None],
    ) -> None:
        client: TcaplusClient = ctx.client(type(self))
        writer = _Writer(client, ctx)

        async def one(change: Change) -> None:
            if ctx.stop.is_set():  # stopped: start no new write
                return
            started(change)
            finished(change, await aoutcome_of(change, lambda: writer.apply(change)))

        client.run(lambda: RunContext.amap(one, changes, concurrency=_concurrency(ctx)))

    # -- export (DR, adoption) ----------------------------------------------------------------
    def export(
        self, resources: list[Resource[TcaplusRecordsSpec]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """Records of every configured table, one ``tcaplus/<table>.yaml`` each (see :class:`_Exporter`)."""
        declared: list[_Declared] = []
        for res in resources:
            found, problems = self._declared(res, ctx)
            if problems:
                raise InputError(problems)
            declared += found
        provider = ctx.config.providers.tcaplus
        assert provider is not None
        out = KindExport(notes=[REST_LIMITS])
        out.notes.extend(
            f"--index {table}:{index}: table {table} is not in this connection's tables; not read"
            for table, index, _ in request.extra.get("index_keys", [])
            if table not in provider.tables
        )
        client: TcaplusClient = ctx.client(type(self))
        for table in sorted(provider.tables):
            _Exporter(self, client, ctx, table_schema(ctx, table), request).export(
                [d for d in declared if d.schema.name == table], [r for r in resources if r.spec.table == table], out
            )
        return out

"""The FreeSpinEvent kind: the contract's hooks, delegating to the modules of this package."""

from __future__ import annotations

from typing import Any

from reconciler.vendors.jdb.client import JdbClient
from reconciler.model import Change, KindPlan, Outcome
from reconciler.errors import Problem, ReconcilerError, UsageError
from reconciler.kinds.base import ExportRequest, Kind, KindExport, Resource, ScopeDecl
from reconciler.kinds.context import RunContext
from reconciler.manifest.yamlload import Path_
from reconciler.vendors.jdb.free_spin_event.export import export_events
from reconciler.vendors.jdb.free_spin_event.plan import plan_events
from reconciler.vendors.jdb.free_spin_event.rules import bet_problems
from reconciler.vendors.jdb.free_spin_event.spec import (
    KIND,
    VENDOR,
    FreeSpinEventScope,
    FreeSpinEventSpec,
    read_players_file,
    spec_problems,
)
from reconciler.vendors.jdb.free_spin_event.writes import apply_changes


class FreeSpinEventKind(Kind[FreeSpinEventSpec, JdbClient]):
    """JDB free-spin reward events (see the module documentation)."""

    kind = KIND
    vendor = VENDOR
    Spec = FreeSpinEventSpec
    Scope = FreeSpinEventScope
    apply_order = 30

    def keys(self, res: Resource[FreeSpinEventSpec]) -> list[tuple[str, Path_]]:
        return [(res.name, ()), (f"{res.spec.agent}/{res.spec.name}", ("name",))]

    @classmethod
    def shard_unit(cls, key: str) -> str:
        # an event is one unit with its players: player bindings are part of the event's change
        # (never changes of their own), so they stay in the event's shard
        return key

    @classmethod
    def make_client(cls, ctx: RunContext) -> JdbClient:
        p = ctx.config.providers.jdb
        if p is None:
            raise UsageError("providers.jdb is not configured in the config file")
        return JdbClient(
            p.base_url,
            dc=p.dc,
            key=ctx.config_secret(p.key),
            iv=ctx.config_secret(p.iv),
            parent=p.parent,
            timeout=p.timeout,
            retry=ctx.retry_policy(p),
            max_connections=p.concurrency,
            report_tz=p.report_timezone,
            requests_per_second=p.requests_per_second,
        )

    # -- validation ------------------------------------------------------------------------
    def check(self, resources: list[Resource[FreeSpinEventSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        problems = self._provider_problems(resources or scopes, ctx)
        for r in resources:
            spec: FreeSpinEventSpec = r.spec
            problems.extend(r.problem(path, message) for path, message in spec_problems(spec))
            if spec.end <= ctx.options.now():
                ctx.warnings.append(
                    str(
                        r.problem(
                            ("endTime",),
                            f"{spec.endTime} is past: the event is expired; a missing "
                            "one is not created (plan shows it as expired, nothing to do)",
                        )
                    )
                )
            if spec.playersFile is not None and spec.players is None:
                problems.extend(self._file_problems(r, ctx))
            problems.extend(r.problem(("bet",), message) for message in bet_problems(spec, ctx))
        return problems

    @staticmethod
    def _file_problems(r: Resource[FreeSpinEventSpec], ctx: RunContext) -> list[Problem]:
        spec: FreeSpinEventSpec = r.spec
        path = r.doc.base_dir / str(spec.playersFile)
        ctx.track_file(path, resource=r.ref)
        players, found = read_players_file(path)
        out = [r.problem(("playersFile",), message) for message in found]
        if spec.autoCreatePlayerEnabled and not found and len(players) != 1:
            out.append(
                r.problem(
                    ("autoCreatePlayerEnabled",),
                    f"autoCreatePlayerEnabled needs exactly one player ({spec.playersFile} has {len(players)})",
                )
            )
        excluded = set(spec.excludedPlayers)
        if excluded:
            out.extend(
                r.problem(("excludedPlayers",), f"player '{p}' is also in {spec.playersFile}") for p in players if p in excluded
            )
        return out

    @staticmethod
    def _provider_problems(items: list[Any], ctx: RunContext) -> list[Problem]:
        if not items:
            return []
        p = ctx.config.providers.jdb
        first = items[0]
        if p is None:
            return [first.doc.problem(("kind",), "providers.jdb is not configured in the config file", resource=first.ref)]
        out = []
        for name, ref in (("key", p.key), ("iv", p.iv)):
            value = _config_secret(ctx, name, ref)
            if isinstance(value, Problem):
                out.append(value)
            elif value is not None and len(value.encode()) != 16:
                out.append(_config_problem(ctx, name, f"the JDB {name} behind {ref} must be 16 ASCII characters"))
        return out

    # -- plan, apply, export: the modules of this package ------------------------------------------
    def plan(self, resources: list[Resource[FreeSpinEventSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        return plan_events(resources, scopes, ctx, ctx.client(type(self)))

    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        return apply_changes(changes, ctx, ctx.client(type(self)))

    def export(
        self, resources: list[Resource[FreeSpinEventSpec]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """Events of every agent the manifests or ``request.extra["agents"]`` name (one Action 76 each, the
        plan's read window), one ``jdb/<agent>/free-spins.yaml`` per agent; see :func:`export_event`."""
        return export_events(resources, scopes, ctx, request, ctx.client(type(self)))


def _config_secret(ctx: RunContext, name: str, ref: str) -> str | Problem | None:
    doc = ctx.config.doc
    if doc is not None:
        return ctx.resolve_secret(doc, ("providers", "jdb", name), ref, resource="Config")
    try:
        return ctx.config_secret(ref)
    except ReconcilerError as exc:
        return Problem(str(ctx.config.path or "<config>"), 1, 1, "Config", f"providers.jdb.{name}", str(exc))


def _config_problem(ctx: RunContext, name: str, message: str) -> Problem:
    doc = ctx.config.doc
    if doc is not None:
        return doc.problem(("providers", "jdb", name), message, resource="Config")
    return Problem(str(ctx.config.path or "<config>"), 1, 1, "Config", f"providers.jdb.{name}", message)

"""Kind ``CacheRule``: one cache rule of an Acme Edge zone.

Identity = ``metadata.name`` (the rule's name at Acme). Compared fields: ``path``, ``ttlSeconds``,
``enabled``; ``version`` and ``updated_at`` are server-owned (shown as comments by an export,
never compared). Live state is read with one paginated list per connection. A create and an update
are the same idempotent ``PUT``; a delete is ``DELETE`` (a rule already gone counts as deleted).

Pruning: a ``PruneScope`` with ``target: CacheRule`` and ``match: {namePrefix: ...}`` deletes live
rules with that prefix that no manifest declares (its ``protect`` list keeps some); every other
undeclared rule is listed as unmanaged and left alone.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from reconciler.errors import Problem, UsageError
from reconciler.kinds.base import ExportDoc, ExportGroup, ExportRequest, Kind, KindExport, Resource, ScopeDecl, outcome_of
from reconciler.kinds.context import RunContext
from reconciler.kinds.prune import undeclared
from reconciler.model import Action, Change, FieldDiff, KindPlan, Outcome
from reconciler_acme.client import AcmeClient, LiveRule

RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # API.md "The cache rule": name
MAX_TTL = 31_536_000


class CacheRuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: StrictStr = Field(
        min_length=1,
        max_length=256,
        pattern=r"^/[\x21-\x7e]*$",
        description="request paths the rule matches: starts with /, printable ASCII, no spaces; * matches any characters",
    )
    ttlSeconds: StrictInt = Field(ge=0, le=MAX_TTL, description="how long the edge keeps an answer (0: never cached)")
    enabled: StrictBool = True


class CacheRuleScope(BaseModel):
    """Prune scope: live rules whose name starts with this prefix that no manifest declares are deleted."""

    model_config = ConfigDict(extra="forbid")
    namePrefix: StrictStr = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")


COMPARED = ("path", "ttlSeconds", "enabled")


def _view(rule: LiveRule) -> dict[str, Any]:
    """A live rule as the manifest writes it (server-owned fields left out)."""
    return {"path": rule.path, "ttlSeconds": rule.ttl_seconds, "enabled": rule.enabled}


class CacheRuleKind(Kind[CacheRuleSpec, AcmeClient]):
    kind = "CacheRule"
    vendor = "acme"
    Spec = CacheRuleSpec
    Scope = CacheRuleScope
    apply_order = 100

    @classmethod
    def make_client(cls, ctx: RunContext) -> AcmeClient:
        conn = ctx.config.providers.acme
        if conn is None:
            raise UsageError("providers.acme is not configured in the config file")
        return AcmeClient(
            conn.base_url,
            token=ctx.config_secret(conn.api_token),
            zone=conn.zone,
            timeout=conn.timeout,
            retry=ctx.retry_policy(conn),
            max_connections=conn.concurrency,
            requests_per_second=conn.requests_per_second,
        )

    def check(self, resources: list[Resource[CacheRuleSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        problems: list[Problem] = []
        first = (resources or scopes or [None])[0]
        if first is not None and ctx.config.providers.acme is None:
            problems.append(
                first.doc.problem(("kind",), "providers.acme is not configured in the config file", resource=first.ref)
            )
        elif first is not None and ctx.config.doc is not None:
            ctx.resolve_secret(
                ctx.config.doc, ("providers", "acme", "api_token"), ctx.config.providers.acme.api_token, resource="Config"
            )
        for r in resources:
            if not RULE_NAME.match(r.name):
                problems.append(
                    r.doc.problem(
                        ("metadata", "name"),
                        "an Acme rule name is 1-63 lower-case letters, digits and '-', starting with a letter or digit",
                        resource=r.ref,
                    )
                )
        return problems

    # -- plan ----------------------------------------------------------------------------------
    def plan(self, resources: list[Resource[CacheRuleSpec]], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client = ctx.client(type(self))
        live = {rule.name: rule for rule in client.list_rules()}
        kp = KindPlan()
        for r in resources:
            want = r.spec.model_dump()
            have = live.get(r.name)
            if have is None:
                kp.changes.append(
                    Change(
                        kind=self.kind,
                        vendor=self.vendor,
                        key=r.name,
                        action=Action.CREATE,
                        resource=r.ref,
                        source=r.source,
                        diffs=[FieldDiff(k, None, want[k]) for k in COMPARED],
                        precondition={"exists": False},
                        calls=["PUT /v1/zones/{zone}/cache-rules/{name}"],
                        data={"desired": want},
                    )
                )
                continue
            kp.existing_in_scope += 1
            seen = _view(have)
            diffs = [FieldDiff(k, seen[k], want[k]) for k in COMPARED if seen[k] != want[k]]
            if not diffs:
                kp.noops += 1
                continue
            kp.changes.append(
                Change(
                    kind=self.kind,
                    vendor=self.vendor,
                    key=r.name,
                    action=Action.UPDATE,
                    resource=r.ref,
                    source=r.source,
                    diffs=diffs,
                    precondition={"fingerprint": ctx.live_fingerprint(seen)},
                    calls=["PUT /v1/zones/{zone}/cache-rules/{name}"],
                    data={"desired": want},
                )
            )
        declared = {r.name for r in resources}
        for rule in sorted(live.values(), key=lambda x: x.name):
            if rule.name not in declared:
                self._undeclared(rule, scopes, ctx, kp)
        return kp

    def _undeclared(self, rule: LiveRule, scopes: list[ScopeDecl], ctx: RunContext, kp: KindPlan) -> None:
        """The shared decision (:func:`reconciler.kinds.prune.undeclared`): unmanaged, protected by
        the scope that holds the rule, or deleted."""
        name, seen = rule.name, _view(rule)
        decision = undeclared(scopes, holds=lambda s: name.startswith(s.spec.namePrefix), protects=lambda s: name in s.protect)
        decision.record(
            kp, kind=self.kind, vendor=self.vendor, key=name, change=lambda scope: self._delete(name, seen, scope, ctx)
        )

    def _delete(self, name: str, seen: dict[str, Any], scope: ScopeDecl, ctx: RunContext) -> Change:
        return Change(
            kind=self.kind,
            vendor=self.vendor,
            key=name,
            action=Action.DELETE,
            resource="",
            source=scope.ref,
            diffs=[FieldDiff(k, seen[k], None) for k in COMPARED],
            precondition={"fingerprint": ctx.live_fingerprint(seen)},
            calls=["DELETE /v1/zones/{zone}/cache-rules/{name}"],
            notes=[f"not declared; inside {scope.ref}"],
        )

    # -- apply ---------------------------------------------------------------------------------
    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        """One call per change; both are idempotent, so the transport repeats them after a lost reply."""
        client = ctx.client(type(self))

        def write(c: Change) -> Outcome:
            if ctx.stop.is_set():
                return Outcome(c, "interrupted", "not started: the run was stopped")
            if c.action is Action.DELETE:
                return outcome_of(c, lambda: client.delete_rule(c.key))
            d = c.data["desired"]
            return outcome_of(
                c, lambda: client.put_rule(c.key, path=d["path"], ttl_seconds=d["ttlSeconds"], enabled=d["enabled"])
            )

        conn = ctx.config.providers.acme
        return RunContext.map(write, changes, concurrency=conn.concurrency if conn is not None else 1)

    # -- export (DR, adoption) -----------------------------------------------------------------
    def export(
        self, resources: list[Resource[CacheRuleSpec]], scopes: list[ScopeDecl], ctx: RunContext, request: ExportRequest
    ) -> KindExport:
        """Every live rule as a document of ``acme/cache-rules.yaml`` (with ``request.unmanaged``:
        only the rules no manifest declares). Server-owned fields become a comment."""
        client = ctx.client(type(self))
        declared = {r.name: r for r in resources}
        docs = []
        for rule in sorted(client.list_rules(), key=lambda x: x.name):
            r = declared.get(rule.name)
            if request.unmanaged and r is not None:
                continue
            doc = ExportDoc(self.kind, rule.name, _view(rule), protected=bool(r and r.protected))
            doc.comments.append(f"server-owned, not restored: version {rule.version}, updated_at {rule.updated_at}")
            docs.append(doc)
        header = ["Acme Edge cache rules, exported from live state (GET cache-rules)."]
        return KindExport(groups=[ExportGroup("acme/cache-rules.yaml", docs, header)])

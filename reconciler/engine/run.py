"""Orchestration: plan from loaded manifests, safety checks, apply (live or from a saved plan).

Small functions, no god object: loading is in ``load.py``, rendering in ``render.py``, the plan
file format in ``planfile.py``; kinds do the vendor work.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from reconciler.engine.load import Loaded
from reconciler.model import Action, Change, Outcome, Plan, scope_label
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds import KINDS
from reconciler.kinds.base import RunContext

log = logging.getLogger("reconciler.engine")


def make_plan(loaded: Loaded, ctx: RunContext, *, kinds: set[str] | None = None) -> Plan:
    """Read live state for every kind in use and diff it against the manifests."""
    plan = Plan(environment=ctx.config.env)
    for kind_cls, conn, resources, scopes in loaded.parts():
        if kinds is not None and kind_cls.kind not in kinds:
            continue
        kp = kind_cls().plan(resources, scopes, ctx.bind(kind_cls.vendor, conn))
        for c in kp.changes:
            c.connection = conn
        for u in kp.unmanaged:
            u.connection = conn
        plan.changes.extend(kp.changes)
        plan.noops[kind_cls.kind] = plan.noops.get(kind_cls.kind, 0) + kp.noops
        plan.unmanaged.extend(kp.unmanaged)
        plan.warnings.extend(kp.warnings)
        plan.existing_in_scope[scope_label(kind_cls.kind, conn)] = kp.existing_in_scope
        plan.out_of_band.extend(kp.out_of_band)
        if f"{kind_cls.vendor}/{conn}" not in plan.connections:
            plan.connections.append(f"{kind_cls.vendor}/{conn}")
    plan.connections.sort()
    if ctx.options.targets:
        plan = filter_targets(plan, ctx.options.targets)
    plan.sort()
    return plan


def _matches(change: Change, target: str) -> bool:
    return target in (change.resource, change.address)


def filter_targets(plan: Plan, targets: tuple[str, ...]) -> Plan:
    """Keep only changes addressed by ``--target KIND/NAME`` (document name or object identity)."""
    kept = [c for c in plan.changes if any(_matches(c, t) for t in targets)]
    unmatched = [t for t in targets if not any(_matches(c, t) for c in plan.changes)]
    out = Plan(changes=kept, noops=plan.noops, unmanaged=[], warnings=list(plan.warnings),
               existing_in_scope=plan.existing_in_scope, environment=plan.environment, connections=plan.connections,
               out_of_band=[r for r in plan.out_of_band if r in targets])
    for t in unmatched:
        out.warnings.append(f"--target {t}: no change for it (already in the desired state, or no such resource)")
    return out


def check_safety(plan: Plan, ctx: RunContext) -> list[str]:
    """Threshold violations (octoDNS-style): too many updates/deletes of existing objects."""
    s = ctx.config.settings
    per_kind: dict[str, list[Change]] = defaultdict(list)  # per kind and named connection
    for c in plan.changes:
        if c.action is not Action.CREATE:
            per_kind[c.scope].append(c)
    out: list[str] = []
    for kind, changes in sorted(per_kind.items()):
        existing = plan.existing_in_scope.get(kind, 0)
        if existing < s.threshold_min_existing:
            continue
        touched = sum(c.impact for c in changes)
        ratio = touched / existing
        if ratio > s.max_change_ratio:
            out.append(
                f"{kind}: {touched} of {existing} existing objects would be updated, replaced or deleted "
                f"({ratio:.0%} > {s.max_change_ratio:.0%}); re-run with --force if this is intended"
            )
    return out


def apply_changes(changes: list[Change], ctx: RunContext) -> list[Outcome]:
    """Apply changes kind by kind in the kinds' apply order; a failing kind does not stop others."""
    by_kind: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for c in changes:
        by_kind[(c.kind, c.connection)].append(c)
    outcomes: list[Outcome] = []
    for kind_name, conn in sorted(by_kind, key=lambda k: (KINDS[k[0]].apply_order, k)):
        kind = KINDS[kind_name]()
        part = by_kind[(kind_name, conn)]
        try:
            outcomes.extend(kind.apply(part, ctx.bind(kind.vendor, conn)))
        except ReconcilerError as exc:
            # a kind-level failure (e.g. the listing before a batch failed): nothing of it applied
            outcomes.extend(Outcome(c, "failed", str(exc)) for c in part)
    return outcomes


def exit_code_for(outcomes: list[Outcome]) -> int:
    """0 all applied; 4 some failed (partial apply); 3 some stale (and none failed)."""
    statuses = {o.status for o in outcomes}
    if "failed" in statuses:
        return 4
    if "stale" in statuses:
        return 3
    return 0


def reconcile_saved(saved: list[Change], fresh: Plan) -> tuple[list[Change], list[Outcome]]:
    """Match a saved plan's changes against a fresh plan made from the same (digest-checked)
    manifests and config — for every kind, TcaplusDB included.

    A change is written only when the fresh plan holds the very same change (action, field diffs,
    payload) with the same precondition; what is written is the *fresh* change, so a plan file
    edited after review cannot add, widen or redirect a write. Everything else is not written:

    - the fresh plan needs no change for it: ``skipped`` (the live object already is what the
      unchanged manifests ask for, e.g. the plan was applied before — or the change was never one
      the manifests ask for);
    - the object left every prune scope or became protected: ``stale``;
    - the live object changed since the plan (another precondition) or the change would differ:
      ``stale``.

    Kinds whose writes carry the precondition (TcaplusDB ``x-tcaplus-data-version-check``) keep
    that check as a second guard for changes made between this comparison and the write.
    """
    fresh_by_addr = {c.address: c for c in fresh.changes}
    out_of_scope = {u.address for u in fresh.unmanaged}
    to_apply: list[Change] = []
    stale: list[Outcome] = []
    for c in saved:
        f = fresh_by_addr.get(c.address)
        if f is None and c.address in out_of_scope:
            stale.append(Outcome(c, "stale", "the object is outside every prune scope or protected: not deleted"))
        elif f is None:
            # the live object already is what the manifests (unchanged since the plan) ask for —
            # e.g. a re-run after a complete or partial apply: nothing to write, nothing to alert on
            stale.append(Outcome(c, "skipped", "already in the desired state"))
        elif f.precondition != c.precondition:
            stale.append(Outcome(c, "stale", _changed_since(c, f)))
        elif (f.kind, f.key, f.action, f.diffs, f.data) != (c.kind, c.key, c.action, c.diffs, c.data):
            stale.append(Outcome(c, "stale", "the change would differ from the reviewed plan"))
        else:
            to_apply.append(f)
    return to_apply, stale


def _changed_since(saved: Change, fresh: Change) -> str:
    if saved.action is Action.CREATE and fresh.action is not Action.CREATE:
        return "created by another writer since the plan"
    before, now = saved.precondition.get("record_version"), fresh.precondition.get("record_version")
    if before is not None and now is not None:
        verb = "deleted" if saved.action is Action.DELETE else "overwritten"
        return f"changed since the plan (version {before} -> {now}); not {verb}"
    return "live object changed since the plan was made"


def refuse_blocked(plan: Plan) -> None:
    """A change a kind marked blocked (needs an opt-in) stops the whole apply before any write."""
    blocked = [c for c in plan.changes if c.data.get("blocked")]
    if blocked:
        raise UsageError("; ".join(f"{c.address}: {c.data['blocked']}" for c in blocked))

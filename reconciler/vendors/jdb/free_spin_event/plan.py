"""FreeSpinEvent planning: per declared event a create, update, replace or nothing (money guards,
ended events never granted again silently), and the prune of undeclared events inside a scope."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from reconciler.vendors.jdb.client import JdbClient
from reconciler.model import Action, Change, FieldDiff, Gap, KindPlan
from reconciler.kinds.base import Resource, ScopeDecl
from reconciler.kinds.context import RunContext
from reconciler.kinds.prune import Verdict, undeclared
from reconciler.vendors.jdb.free_spin_event.compare import (
    DECLARED,
    ENDED,
    IMMUTABLE,
    NOT_RETURNED,
    _Live,
    _diff,
    _shown,
    desired_view,
    live_view,
)
from reconciler.vendors.jdb.free_spin_event.exposure import _grant, exposure
from reconciler.vendors.jdb.free_spin_event.changes import (
    _create_change,
    _event_ref,
    _live_currency,
    _precondition,
    _replace_change,
    _update_change,
)
from reconciler.vendors.jdb.free_spin_event.read import (
    LOOKBACK,
    _AgentRead,
    _Membership,
    _match,
    _membership,
    _probe_renames,
    _read,
    _read_players,
)
from reconciler.vendors.jdb.free_spin_event.rules import _provider_currency, declared_currency
from reconciler.vendors.jdb.free_spin_event.spec import KIND, PLAYER_READ_BUDGET, VENDOR, FreeSpinEventSpec, declared_players


SHOWN_ENDED = 20  # per kind plan: ended-event notices shown one by one; the rest are counted


# -- plan ------------------------------------------------------------------------------
def plan_events(
    resources: list[Resource[FreeSpinEventSpec]], scopes: list[ScopeDecl], ctx: RunContext, client: JdbClient
) -> KindPlan:
    """The kind's plan over every declared event and prune scope (one Action 76 per agent)."""
    now = ctx.options.now()
    kp = KindPlan()
    by_agent: dict[str, list[Resource[FreeSpinEventSpec]]] = defaultdict(list)
    for r in resources:
        by_agent[r.spec.agent].append(r)
    scopes_by_agent: dict[str, list[ScopeDecl]] = defaultdict(list)
    for s in scopes:
        scopes_by_agent[s.spec.agent].append(s)
    budget = [PLAYER_READ_BUDGET]
    unseen: dict[str, int] = defaultdict(int)
    for agent in sorted(set(by_agent) | set(scopes_by_agent)):
        agent_resources = sorted(by_agent[agent], key=lambda x: x.name)
        declared = {r.name: declared_players(r.spec, r.doc.base_dir) for r in agent_resources}
        read = _read(client, agent, agent_resources, now)
        _probe_renames(client, read, agent_resources, declared, ctx, budget)
        bound_to = {
            r.name: read.player_events.get(declared[r.name][0]) or set() if declared[r.name] else set() for r in agent_resources
        }
        matches, ended = _match(agent_resources, read.live, bound_to)
        _read_players(client, read, agent_resources, matches, ended, declared, ctx, budget)
        claimed = {id(m) for m in (*matches.values(), *ended.values()) if m is not None}
        unclaimed = [e for e in read.live if id(e) not in claimed]
        for r in agent_resources:
            _plan_one(r, declared[r.name], matches[r.name], ended[r.name], unclaimed, read, ctx, now, kp, unseen)
        _plan_prune(read, unclaimed, scopes_by_agent[agent], ctx, kp)
    _cap(kp, ": expired: ", SHOWN_ENDED, "expired event(s) with nothing to do")
    _cap(
        kp,
        ": terminated out of band: ",
        SHOWN_ENDED,
        "event(s) terminated out of band (plan --drift --format json lists them all)",
    )
    _cap(kp, "not bound again without spec.allowRebind", SHOWN_ENDED, "event(s) with declared players not bound again")
    if unseen:
        fields = ", ".join(f"{k} ({n} event(s))" for k, n in sorted(unseen.items()))
        how = (
            "a manifest changed since the baseline plan sends them again (an immutable one only when the "
            "baseline shows its value)"
            if ctx.options.baseline is not None
            else "a change to them in the manifests cannot be verified: plan with --last-applied PLANFILE (the last applied plan) "
            "to send the fields of changed manifests"
        )
        kp.warnings.append(
            f"FreeSpinEvent: JDB's replies do not carry {fields}: drift in them cannot be seen; {how} "
            "(docs/kinds/free-spin-event.md, 'What can be seen')"
        )
    for k, n in sorted(unseen.items()):
        _uncompared(
            kp, k, "JDB's replies (Action 76, Action 71) do not carry it: a change made outside the product cannot be seen", n
        )
    return kp


def _plan_one(
    r: Resource[FreeSpinEventSpec],
    declared: list[str],
    event: _Live | None,
    ended: _Live | None,
    unclaimed: list[_Live],
    read: _AgentRead,
    ctx: RunContext,
    now: datetime,
    kp: KindPlan,
    unseen: dict[str, int],
) -> None:
    spec: FreeSpinEventSpec = r.spec
    want = desired_view(spec)
    again = None if spec.grantAgainAfter is None else str(spec.grantAgainAfter)
    gone = event if event is not None and event.status == "EXPIRED" else ended
    if gone is not None:
        kp.existing_in_scope += event is not None
        if again == str(gone.event_id) and spec.end > now:
            kp.changes.append(_create_change(r, want, len(declared), unclaimed, ctx, read, again_of=gone))
        else:
            _report_ended(r, gone, want, now, kp)
        return
    if event is None:
        if spec.end <= now:
            kp.noops += 1
            kp.warnings.append(
                f"{r.source}: {r.ref}: expired: endTime {spec.endTime} is past and JDB has no such "
                "event; nothing to do (JDB creates only events that end in the future)"
            )
        else:
            kp.changes.append(_guard_retention(r, _create_change(r, want, len(declared), unclaimed, ctx, read), now))
        return
    kp.existing_in_scope += 1
    have = live_view(event.row)
    kp.live_exposure.append(_live_exposure(r, event, have, ctx))
    tz = spec.start.tzinfo
    diffs = [_diff(k, have[k], want[k], tz) for k in DECLARED if k in have and have[k] != want[k]]
    diffs += _unseen_diffs(r, want, have, ctx, unseen)
    m = _membership(spec, declared, event, read)
    _warn_players(r, event, m, kp)
    _gate_rebind(r, event, m, len(declared), ctx, kp)
    wrong_currency = _check_currency(r, event, ctx, kp)
    _players_unseen(r, declared, event, m, read, kp)
    if any(d.path in IMMUTABLE for d in diffs):
        kp.changes.append(_replace_change(r, want, event, diffs, len(declared), unclaimed, ctx))
    elif diffs or m.missing is None or m.missing or m.to_unbind:
        kp.changes.append(_update_change(r, want, event, diffs, m, len(declared), ctx))
    else:
        kp.noops += 1
        return
    if wrong_currency and not kp.changes[-1].data.get("blocked"):
        kp.changes[-1].data["blocked"] = wrong_currency


def _guard_retention(r: Resource[FreeSpinEventSpec], change: Change, now: datetime) -> Change:
    """A create of an event JDB does not show whose start is more than the retention past is
    blocked unless ``spec.createAfterRetention`` says it was never granted. JDB keeps an event 180
    days after it "expires" (Action 71); whether a stopped event expires at its end or when it was
    stopped is not written. If at the stop, an event with a long window stopped more than 180 days
    ago is gone while its window is open, and creating it again would silently grant again what
    someone stopped. An event stopped before it started (INACTIVE) is not caught here: see the
    docs (docs/kinds/free-spin-event.md, "Retention")."""
    spec: FreeSpinEventSpec = r.spec
    if spec.start >= now - LOOKBACK:
        return change
    days = LOOKBACK.days
    if spec.createAfterRetention:
        change.notes.append(
            f"spec.createAfterRetention: startTime {spec.startTime} is more than {days} days past and JDB shows no "
            "such event; created as one never granted"
        )
        return change
    reason = (
        f"startTime {spec.startTime} is more than {days} days past and JDB shows no such event: JDB forgets an "
        f"event {days} days after it expires (possibly counted from when it was stopped), so it may have been "
        "granted and stopped before; set spec.createAfterRetention: true if it was never granted (for example "
        "a restore into a new JDB)"
    )
    blocked = change.data.get("blocked")
    change.data["blocked"] = f"{blocked}; and {reason}" if blocked else reason
    return change


def _unseen_diffs(
    r: Resource[FreeSpinEventSpec], want: dict[str, Any], have: dict[str, Any], ctx: RunContext, unseen: dict[str, int]
) -> list[FieldDiff]:
    """Declared fields JDB did not return. Without a baseline they are counted for the plan's
    "cannot be verified" warning. With one (the last applied plan), a manifest unchanged since
    needs nothing; a changed one sends every such field whose value the baseline does not show
    equal (an Action 77 sets values, so sending an unchanged one is harmless)."""
    blind = [k for k in DECLARED if k not in have and want[k] is not None]
    for k in blind:
        unseen[k] += 1
    changed = ctx.manifest_changed(r)
    if not blind or not changed:
        return []
    assert ctx.options.baseline is not None
    before = ctx.options.baseline.desired.get(r.ref) or {}
    tz = r.spec.start.tzinfo
    out = []
    for k in blind:
        if k in before and before[k] == want[k]:
            continue
        if k in IMMUTABLE and k not in before:
            continue  # cannot tell: an immutable field is never replaced on a guess (the warning says so)
        out.append(_diff(k, before[k], want[k], tz) if k in before else FieldDiff(k, NOT_RETURNED, want[k]))
    return out


def _report_ended(r: Resource[FreeSpinEventSpec], event: _Live, want: dict[str, Any], now: datetime, kp: KindPlan) -> None:
    """An event of this resource ended: nothing is created again without ``grantAgainAfter``."""
    kp.noops += 1
    spec: FreeSpinEventSpec = r.spec
    hint = (
        f"to grant it again (a new event, all spins available again) set spec.grantAgainAfter: {event.event_id}"
        if spec.end > now
        else "nothing to do"
    )
    if event.status == "TERMINATED":
        kp.out_of_band.append(r.ref)
        kp.warnings.append(
            f"{r.ref}: terminated out of band: event {event.event_id} was terminated outside the "
            f"product ({event.when()}); it is not created again — {hint}"
        )
        return
    have = live_view(event.row)
    diffs = [k for k in DECLARED if k in have and have[k] != want[k]]
    differs = f"; its differences ({', '.join(diffs)}) cannot be applied" if diffs else ""
    kp.warnings.append(f"{r.ref}: expired: event {event.event_id} has EXPIRED ({event.when()}){differs}; {hint}")
    if diffs:  # not the manifests' target, and never will be: never "matches"
        kp.differs.append(f"{r.ref}: event {event.event_id} has EXPIRED; its differences ({', '.join(diffs)}) cannot be applied")


def _warn_players(r: Resource[FreeSpinEventSpec], event: _Live, m: _Membership, kp: KindPlan) -> None:
    if m.not_existing:
        kp.warnings.append(
            f"{r.ref}: {len(m.not_existing)} declared player(s) do not exist under agent {r.spec.agent}: "
            f"{', '.join(_shown(m.not_existing))}"
        )
    if m.cannot_unbind:
        kp.warnings.append(
            f"{r.ref}: excluded player(s) still bound to event {event.event_id}, which is {event.status} "
            f"(JDB unbinds only while INACTIVE): {', '.join(_shown(m.cannot_unbind))}"
        )
    if m.unknown_extras:
        kp.warnings.append(
            f"{r.ref}: event {event.event_id} has {m.unknown_extras} bound player(s) that are not declared; "
            "JDB cannot list them — name them under excludedPlayers to unbind them"
        )


def _gate_rebind(r: Resource[FreeSpinEventSpec], event: _Live, m: _Membership, count: int, ctx: RunContext, kp: KindPlan) -> None:
    """Declared players that exist and are not bound to the existing event are bound only when
    the manifest changed since the last applied plan (``--last-applied``: they are an edit),
    with ``spec.allowRebind`` or with ``--force``: JDB cannot tell a newly declared player from
    one unbound outside the product (Action 75), and binding that one again grants again what
    someone stopped. Otherwise the plan names them and binds nobody."""
    if not (m.missing is None or m.missing):
        return
    if ctx.manifest_changed(r) or r.spec.allowRebind or ctx.options.force:
        return
    if m.missing is None:
        who = (
            f"event {event.event_id} has {event.count} bound player(s) for {count} declared (too many to check one "
            "by one): some declared players are not bound"
        )
    else:
        who = f"{len(m.missing)} declared player(s) are not bound to event {event.event_id}: {', '.join(_shown(m.missing))}"
    kp.warnings.append(
        f"{r.ref}: {who}; they may have been unbound outside the product (Action 75), which JDB cannot tell from "
        "never bound: not bound again without spec.allowRebind: true or --force (or a manifest change shown by "
        "plan --last-applied)"
    )
    m.missing = []


def _check_currency(r: Resource[FreeSpinEventSpec], event: _Live, ctx: RunContext, kp: KindPlan) -> str:
    """A warning (and the reason a change of this event is blocked) when the live event pays in
    another currency than the declared one."""
    currency = declared_currency(r.spec, ctx)
    have = event.row.get("currency")
    if not currency or have in (None, "") or str(have) == currency:
        return ""
    reason = (
        f"event {event.event_id} pays in {have}, the manifest declares currency {currency}: JDB cannot change an "
        "event's currency (it is the agent's); fix spec.currency or providers.jdb.currency"
    )
    kp.warnings.append(f"{r.ref}: {reason}")
    return reason


def _plan_prune(read: _AgentRead, unclaimed: list[_Live], scopes: list[ScopeDecl], ctx: RunContext, kp: KindPlan) -> None:
    for event in unclaimed:
        if event.status not in ENDED:  # an ended event is history, nothing to do
            _prune_one(read.agent, event, scopes, ctx, kp)


def _prune_one(agent: str, event: _Live, scopes: list[ScopeDecl], ctx: RunContext, kp: KindPlan) -> None:
    """An event no manifest declares: terminated inside a prune scope that does not protect it,
    unless it is ACTIVE (a running promotion) and the run has no ``--force``."""
    key = f"{agent}/{event.event_id}"
    name = str(event.row.get("name", ""))

    def guard(scope: ScopeDecl) -> str | None:
        if event.status == "ACTIVE" and not ctx.options.force:
            return f"'{name}' is ACTIVE: terminating it needs --force"
        return None

    def terminate(scope: ScopeDecl) -> Change:
        return Change(
            kind=KIND,
            vendor=VENDOR,
            key=key,
            action=Action.DELETE,
            source=scope.ref,
            diffs=[FieldDiff(k, v, None) for k, v in live_view(event.row).items()],
            precondition=_precondition(event, ctx),
            calls=[f"JDB action 73 (terminate event {event.event_id})"],
            notes=[f"not declared; inside {scope.ref}", event.observed()],
            summary=f"event {event.event_id} {event.status}",
            data={"agent": agent, "event": _event_ref(event)},
            exposure=exposure(
                _live_currency(event, _provider_currency(ctx)), (event.count, live_view(event.row)), (0, None), new_grant=False
            ),
        )

    decision = undeclared(
        scopes,
        holds=lambda s: name.startswith(s.spec.namePrefix),
        protects=lambda s: name in s.protect or str(event.event_id) in s.protect,
        guard=guard,
        outside=f"'{name}' {event.status}: not declared; outside every prune scope",
        protected_why=lambda s: f"'{name}': protected by {s.ref}",
    )
    if decision.verdict is Verdict.HELD and decision.scope is not None:
        kp.warnings.append(
            f"{decision.scope.ref}: event {event.event_id} '{name}' is ACTIVE and not declared; "
            "it is terminated only with --force"
        )
    decision.record(kp, kind=KIND, vendor=VENDOR, key=key, change=terminate)


def _uncompared(kp: KindPlan, what: str, why: str, n: int = 1) -> None:
    """Count ``n`` resources whose ``what`` could not be compared (one entry per field and reason)."""
    for g in kp.uncompared:
        if (g.field, g.why) == (what, why):
            g.resources += n
            return
    kp.uncompared.append(Gap(kind="FreeSpinEvent", field=what, why=why, resources=n))


def _players_unseen(r: Any, declared: list[str], event: Any, m: Any, read: Any, kp: KindPlan) -> None:
    """What the plan could not compare of an event's players, and what it saw differ but cannot
    change (JDB has no call that lists an event's players; Action 71 is read within a budget)."""
    known = read.player_events
    if m.cannot_unbind:
        kp.differs.append(
            f"{r.ref}: excluded player(s) still bound to event {event.event_id}, which is {event.status} "
            f"(JDB unbinds only while INACTIVE): {', '.join(_shown(m.cannot_unbind))}"
        )
    if any(u not in known for u in r.spec.excludedPlayers):
        _uncompared(
            kp,
            "excludedPlayers",
            f"not every excluded player was checked (at most {PLAYER_READ_BUDGET} "
            "Action 71 reads a plan): one may still be bound",
        )
    if any(u not in known for u in declared):
        _uncompared(
            kp,
            "players",
            f"not every declared player was checked (at most {PLAYER_READ_BUDGET} Action 71 "
            "reads a plan): membership judged by the event's player count",
        )


# -- helpers ----------------------------------------------------------------------------------
def _cap(kp: KindPlan, marker: str, shown: int, what: str) -> None:
    """Keep the first ``shown`` warnings containing ``marker``; count the rest in one line."""
    matching = [w for w in kp.warnings if marker in w]
    if len(matching) <= shown:
        return
    dropped = set(matching[shown:])
    kp.warnings = [w for w in kp.warnings if w not in dropped]
    kp.warnings.append(f"FreeSpinEvent: ... and {len(dropped)} more {what}")


def _live_exposure(r: Resource[FreeSpinEventSpec], event: _Live, have: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """What a live managed event grants now (drift reports it against the budgets). A factor JDB
    did not return is taken from the last applied plan (``--baseline``/``--last-applied``) when it
    has one, and named in ``from_last_applied``; else the figure is unknown."""
    view, filled = dict(have), []
    last = ctx.options.baseline.desired.get(r.ref) if ctx.options.baseline is not None else None
    for k in ("type", "times", "bet", "maxWithdrawal", "bonusChips"):
        if k not in view and last and last.get(k) is not None:
            view[k] = last[k]
            filled.append(k)
    stake, ceiling = _grant(view, event.count)
    return {
        "resource": r.ref,
        "currency": _live_currency(event, declared_currency(r.spec, ctx)),
        "players": event.count,
        "stake": stake,
        "ceiling": ceiling,
        "from_last_applied": filled,
    }

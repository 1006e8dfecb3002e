"""FreeSpinEvent changes: the Change a planned create, replace or update of a declared event
becomes (its diffs, the JDB calls it makes, its notes, its money exposure and what blocks it: a
running promotion, a replace not allowed, a currency JDB cannot change)."""

from __future__ import annotations

from typing import Any, Final

from reconciler.vendors.jdb.client import MAX_PLAYERS_PER_CALL
from reconciler.model import Action, Change, FieldDiff
from reconciler.kinds.base import Resource
from reconciler.kinds.context import RunContext
from reconciler.vendors.jdb.free_spin_event.compare import IMMUTABLE, _Live, _diff, _same_immutable, _shown, live_view
from reconciler.vendors.jdb.free_spin_event.exposure import exposure
from reconciler.vendors.jdb.free_spin_event.keys import _scope_of
from reconciler.vendors.jdb.free_spin_event.read import _AgentRead, _Membership
from reconciler.vendors.jdb.free_spin_event.rules import declared_currency, locked_bets
from reconciler.vendors.jdb.free_spin_event.spec import KIND, VENDOR, FreeSpinEventSpec


LIVE_GUARDED: Final = ("bet", "minWithdrawal", "maxWithdrawal", "times", "bonusChips", "chipsMultiplier")
"""Fields whose change on an ACTIVE event (a running promotion) needs spec.allowLiveChanges or --force
(players too)."""
RUNNING: Final = "CHANGE TO A RUNNING PROMOTION"


def _base_data(r: Resource[FreeSpinEventSpec], want: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    spec: FreeSpinEventSpec = r.spec
    players: dict[str, Any] = {"file": spec.playersFile} if spec.playersFile else {"list": list(spec.players or [])}
    data = {"agent": spec.agent, "identity": r.name, "generation": spec.generation, "desired": want, "players": players}
    if spec.autoCreatePlayerEnabled:
        data["auto_create_player"] = True
    scope = _scope_of(ctx)
    if scope:
        data["scope"] = scope
    currency = declared_currency(spec, ctx)
    if currency:
        data["currency"] = currency
    return data


def _create_change(
    r: Resource[FreeSpinEventSpec],
    want: dict[str, Any],
    count: int,
    unclaimed: list[_Live],
    ctx: RunContext,
    read: _AgentRead,
    again_of: _Live | None = None,
) -> Change:
    notes, summary = locked_bets(r.spec, ctx), f"{count} player(s)"
    data = {**_base_data(r, want, ctx), "bind": "all", "seen": _seen(want, unclaimed)}
    currency = data.get("currency")
    others = sorted({str(e.row["currency"]) for e in read.live if e.row.get("currency") not in (None, "")})
    if currency and others and others != [currency]:
        data["blocked"] = (
            f"the agent's events are in {', '.join(others)} and this manifest declares currency {currency}: "
            "JDB sets the currency per agent (Action 72 has no currency), so the new event would pay "
            "in another currency; fix spec.currency or providers.jdb.currency"
        )
    if again_of is not None:
        how = "terminated out of band" if again_of.status == "TERMINATED" else "expired"
        notes.append(
            f"new grant: event {again_of.event_id} of this resource {how} ({again_of.when()}); "
            f"spec.grantAgainAfter: {again_of.event_id} asks for a new event with every spin available again"
        )
        summary = f"NEW GRANT after event {again_of.event_id}; {summary}"
        data["again"] = {"id": again_of.event_id, "status": again_of.status}
    return Change(
        kind=KIND,
        vendor=VENDOR,
        key=r.name,
        action=Action.CREATE,
        resource=r.ref,
        source=r.source,
        diffs=[_diff(k, None, v, r.spec.start.tzinfo) for k, v in want.items() if v is not None]
        + [FieldDiff("players", None, count)],
        precondition={"exists": False},
        calls=_create_calls(count),
        notes=notes,
        summary=summary,
        data=data,
        exposure=exposure(data.get("currency"), (0, None), (count, want), new_grant=True),
    )


def _replace_change(
    r: Resource[FreeSpinEventSpec],
    want: dict[str, Any],
    event: _Live,
    diffs: list[FieldDiff],
    count: int,
    unclaimed: list[_Live],
    ctx: RunContext,
) -> Change:
    immutable = ", ".join(d.path for d in diffs if d.path in IMMUTABLE)
    data = {**_base_data(r, want, ctx), "bind": "all", "event": _event_ref(event), "seen": _seen(want, unclaimed)}
    live = event.status == "ACTIVE"
    if r.protected:
        data["blocked"] = "the resource is marked metadata.protected; it is never replaced"
    elif not (ctx.options.allow_replace or r.spec.allowReplace):
        data["blocked"] = (
            f"{immutable} cannot change on a live JDB event: it must be terminated and created again; "
            "pass --allow-replace or set spec.allowReplace: true"
        )
    elif live and not (ctx.options.force or r.spec.allowLiveChanges):
        data["blocked"] = (
            f"event {event.event_id} is ACTIVE (a running promotion): replacing it ends it for its players; "
            "set spec.allowLiveChanges: true or add --force"
        )
    calls = _create_calls(count)
    calls.insert(2, f"JDB action 73 (terminate event {event.event_id}, once the new event is confirmed)")
    notes = [f"{immutable} cannot be updated in place", event.observed()]
    if live:
        notes.insert(0, RUNNING + f": event {event.event_id} is ACTIVE; its players lose what is left of it")
    return Change(
        kind=KIND,
        vendor=VENDOR,
        key=r.name,
        action=Action.REPLACE,
        resource=r.ref,
        source=r.source,
        diffs=diffs,
        precondition=_precondition(event, ctx),
        calls=calls,
        notes=notes,
        summary=f"{RUNNING + ': ' if live else ''}event {event.event_id} {event.status}",
        data=data,
        exposure=exposure(
            _live_currency(event, data.get("currency")), (event.count, live_view(event.row)), (count, want), new_grant=True
        ),
    )


def _update_change(
    r: Resource[FreeSpinEventSpec],
    want: dict[str, Any],
    event: _Live,
    diffs: list[FieldDiff],
    m: _Membership,
    count: int,
    ctx: RunContext,
) -> Change:
    update = bool(diffs)
    calls = ["JDB action 77 (update)"] if update else []
    diffs = list(diffs)
    if m.missing is None:
        diffs.append(FieldDiff("players", f"{event.count} bound", f"{count} declared"))
        calls.append(f"JDB action 74 x {_calls(count)} (re-bind all declared players; bound ones are unchanged)")
    elif m.missing:
        diffs.append(FieldDiff("players (bind)", "not bound", _shown(m.missing)))
        calls.append(f"JDB action 74 x {_calls(len(m.missing))} (bind)")
    if m.to_unbind:
        diffs.append(FieldDiff("players (unbind)", _shown(m.to_unbind), "unbound"))
        calls.append(f"JDB action 75 x {_calls(len(m.to_unbind))} (unbind)")
    added = count if m.missing is None else len(m.missing)
    players = f"; players +{added} -{len(m.to_unbind)} of {count} declared" if added or m.to_unbind else ""
    data = {
        **_base_data(r, want, ctx),
        "event": _event_ref(event),
        "update": update,
        "bind": "all" if m.missing is None else m.missing,
        "unbind": m.to_unbind,
    }
    notes = [event.observed(), *(locked_bets(r.spec, ctx) if any(d.path == "bet" for d in diffs) else [])]
    live = event.status == "ACTIVE"
    if live:
        money = [d.path for d in diffs if d.path in LIVE_GUARDED or d.path.startswith("players")]
        notes.insert(0, RUNNING + f": event {event.event_id} is ACTIVE; players may be using it now")
        if money and not (ctx.options.force or r.spec.allowLiveChanges):
            data["blocked"] = (
                f"event {event.event_id} is ACTIVE (a running promotion): changing {', '.join(dict.fromkeys(money))} "
                "changes what its players are being paid; set spec.allowLiveChanges: true or add --force"
            )
    return Change(
        kind=KIND,
        vendor=VENDOR,
        key=r.name,
        action=Action.UPDATE,
        resource=r.ref,
        source=r.source,
        diffs=diffs,
        precondition=_precondition(event, ctx),
        calls=calls,
        notes=notes,
        summary=f"{RUNNING + ': ' if live else ''}event {event.event_id}{players}",
        data=data,
        exposure=exposure(
            _live_currency(event, data.get("currency")),
            (event.count, live_view(event.row)),
            (event.count + added - len(m.to_unbind), want),
            new_grant=False,
            players_upper=m.missing is None,
        ),
    )


def _seen(want: dict[str, Any], events: list[_Live]) -> dict[str, str]:
    """Events a create's ``transactionId`` may answer with that are not new: the unclaimed ones
    (terminated included) the plan saw with the declared type, times, start and end."""
    return {str(e.event_id): e.status for e in events if _same_immutable(want, live_view(e.row))}


def _calls(count: int) -> int:
    return max(1, -(-count // MAX_PLAYERS_PER_CALL))


def _create_calls(count: int) -> list[str]:
    calls = [
        "JDB action 72 (create, no players)",
        "JDB action 76 (confirm the answered event is the declared one before anyone is bound)",
    ]
    if count:
        calls.append(f"JDB action 74 x {_calls(count)} (bind the players, 50,000 per call)")
    return calls


def _live_currency(event: _Live, declared: str | None) -> str | None:
    have = event.row.get("currency")
    return declared if have in (None, "") else str(have)


def _event_ref(event: _Live) -> dict[str, Any]:
    return {"id": event.event_id, "startTime": event.row["startTime"], "endTime": event.row.get("endTime")}


def _precondition(event: _Live, ctx: RunContext) -> dict[str, Any]:
    return {"fingerprint": ctx.live_fingerprint(event.fingerprint_view())}

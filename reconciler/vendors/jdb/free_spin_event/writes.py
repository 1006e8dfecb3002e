"""FreeSpinEvent apply: the JDB writes of each change, every one safe to repeat (a lost reply is
read back by key before any repeat; a wrong or ended event gets nobody bound)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from reconciler.vendors.jdb.client import (
    BindResult,
    CreateResult,
    EventId,
    EventInfo,
    JdbClient,
    JdbEventStateError,
    JdbPlayerError,
    JdbTransportError,
    JdbUnavailableError,
    chunks,
    parse_iso,
)
from reconciler.model import Action, Change, Outcome
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.base import outcome_of
from reconciler.kinds.context import RunContext
from reconciler.vendors.jdb.free_spin_event.compare import DECLARED, ENDED, MUTABLE, NOT_RETURNED, _details, draft_of, live_view
from reconciler.vendors.jdb.free_spin_event.keys import replacement_id, transaction_id
from reconciler.vendors.jdb.free_spin_event.read import LOOKAHEAD, LOOKBACK
from reconciler.vendors.jdb.free_spin_event.spec import PLAYER_READ_BUDGET, read_players_file


MAX_GENERATION_PROBES = 20
UNKNOWN_OUTCOME = (JdbTransportError, JdbUnavailableError)
"""A write whose outcome is unknown: the reply was lost, or JDB answered busy (it may have acted)."""


# -- apply -----------------------------------------------------------------------------
def apply_changes(changes: list[Change], ctx: RunContext, client: JdbClient) -> list[Outcome]:
    """One outcome per change, within the connection's concurrency."""
    concurrency = ctx.config.providers.jdb.concurrency if ctx.config.providers.jdb else 1
    steps = {
        Action.CREATE: _apply_create,
        Action.REPLACE: _apply_replace,
        Action.UPDATE: _apply_update,
        Action.DELETE: _apply_delete,
    }
    return RunContext.map(lambda c: outcome_of(c, lambda: steps[c.action](c, client, ctx)), changes, concurrency=concurrency)


def _apply_delete(c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
    _terminate(client, c.data["agent"], c.data["event"], ctx.options.now())
    return Outcome(c, "applied", f"event {c.data['event']['id']} terminated")


def _apply_replace(c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
    """Create the new event first (no players), confirm it is this manifest's, then terminate
    the old one and bind the players. The new event's ``transactionId`` comes from the declared
    content (:func:`replacement_id`): a replace planned again for the same manifest asks JDB
    with the same key and gets the same event back, so it terminates and creates at most once."""
    _check_end(c, ctx)
    return _create_event(c, client, ctx, again=True, replacing=c.data["event"])


def _apply_create(c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
    _check_end(c, ctx)
    return _create_event(c, client, ctx, again="again" in c.data)


def _create_event(
    c: Change, client: JdbClient, ctx: RunContext, *, again: bool, replacing: dict[str, Any] | None = None
) -> Outcome:
    """Action 72 without players (only the one ``autoCreatePlayerEnabled`` player rides on it),
    Action 76 to confirm the answered event is the declared one, then (a replace) Action 73 on
    the old event, then Action 74 for the players: a wrong event gets nobody bound."""
    d = c.data
    players = _change_players(c)
    auto = players[:1] if d.get("auto_create_player") else []
    now = ctx.options.now()
    created = _create(client, d, now, again=again, replacing=replacing, players=auto)
    if created is None:
        assert replacing is not None
        return Outcome(
            c,
            "failed",
            (
                f"not replaced again: the transactionId of this declared content answers event {replacing['id']} itself, "
                "so the replace for this manifest was already made; JDB answers the fields above differently than they "
                "were sent. Nothing was terminated or created; change the manifest to what JDB keeps, or raise "
                "spec.generation to ask for a new event"
            ),
        )
    result, label = created
    agent, event_id = d["agent"], result.event_id
    ref = {"id": event_id, "startTime": d["desired"]["startTime"], "endTime": d["desired"]["endTime"]}
    done = ""
    if replacing is not None:
        try:
            _terminate(client, agent, replacing, now)
        except ReconcilerError as exc:
            raise ReconcilerError(
                f"the new event {event_id} ({label}) was created with no player bound, but the old event "
                f"{replacing['id']} was NOT terminated and still runs: {exc}"
            ) from None
        done = f"old event {replacing['id']} TERMINATED; "
    binding, todo = BindResult(), players
    if auto:
        binding, todo = _auto_bound(client, agent, ref, auto, result)
        todo = todo + players[1:]
    try:
        binding = binding + (_bind(client, agent, ref, todo, now) if todo else BindResult())
    except ReconcilerError as exc:
        raise ReconcilerError(
            f"{done}new event {event_id} ({label}) created; binding its players failed: {exc}; "
            "the next plan shows who is not bound"
        ) from None
    head = f"{done}event {event_id} ({label})"
    missing = len(binding.failed) + len(binding.not_existed)
    bound = len(players) - missing
    if missing:
        return Outcome(
            c,
            "failed",
            f"{head} created; PARTIAL GRANT: {bound} of {len(players)} player(s) bound, {missing} not bound (named below)",
            _details(binding),
        )
    return Outcome(c, "applied", f"{head}; {bound} of {len(players)} player(s) bound", _details(binding))


def _apply_update(c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
    d = c.data
    ref = d["event"]
    now = ctx.options.now()
    if d["update"]:
        seen_changed = [x.path for x in c.diffs if x.path in MUTABLE and x.before != NOT_RETURNED]
        try:
            _update(client, d["agent"], ref, d["desired"], now, proof=seen_changed)
        except JdbEventStateError as exc:
            raise ReconcilerError(
                f"JDB refused to update event {ref['id']} (Action 77): {exc.vendor_message}; nothing "
                "was changed (JDB may not update an ACTIVE event: terminate and create it again "
                "with spec.allowReplace, or wait)"
            ) from None
    to_bind = _change_players(c) if d["bind"] == "all" else list(d["bind"])
    binding = _bind(client, d["agent"], ref, to_bind, now) if to_bind else BindResult()
    if d["unbind"]:
        _unbind(client, d["agent"], ref, d["unbind"])
    message = f"event {ref['id']}; {len(to_bind)} player(s) sent to bind, {len(d['unbind'])} unbound"
    missing = len(binding.failed) + len(binding.not_existed)
    if missing:
        return Outcome(c, "failed", f"{message}; PARTIAL GRANT: {missing} player(s) not bound (named below)", _details(binding))
    return Outcome(c, "applied", message, _details(binding))


def _check_end(c: Change, ctx: RunContext) -> None:
    end = parse_iso(c.data["desired"]["endTime"])
    if end <= ctx.options.now():
        raise UsageError(
            f"endTime {end.isoformat()} is already past: JDB creates only events that end in the future; "
            "move spec.endTime or remove the manifest"
        )


def _change_players(c: Change) -> list[str]:
    players = c.data["players"]
    if "file" in players:
        return read_players_file(Path(c.source.rsplit(":", 1)[0]).parent / players["file"])[0]
    return list(players["list"])


def _find(client: JdbClient, agent: str, ref: dict[str, Any], now: datetime) -> EventInfo | None:
    """Read one event back by its key (Action 76 with ``eventId``)."""
    start = parse_iso(ref["startTime"])
    end = parse_iso(ref["endTime"]) if ref.get("endTime") else start
    rows = client.search_events(agent=agent, start=min(start, now) - LOOKBACK, end=max(end, now) + LOOKAHEAD, event_id=ref["id"])
    return rows[0] if rows else None


def _status(client: JdbClient, agent: str, ref: dict[str, Any], now: datetime) -> str | None:
    row = _find(client, agent, ref, now)
    return None if row is None else str(row.get("status"))


def _terminate(client: JdbClient, agent: str, ref: dict[str, Any], now: datetime) -> None:
    """Terminate an event. A lost reply is resolved by reading the event's status; the call is
    made again only when the event is still not terminated. "Already terminated" is success."""
    try:
        client.terminate_event(agent=agent, event_id=ref["id"])
    except UNKNOWN_OUTCOME:
        status = _status(client, agent, ref, now)
        if status in (None, "TERMINATED"):
            if status is None:
                raise
            return
        client.terminate_event(agent=agent, event_id=ref["id"])  # it did not happen: once more
    except JdbEventStateError:
        if _status(client, agent, ref, now) != "TERMINATED":
            raise


def _update(
    client: JdbClient, agent: str, ref: dict[str, Any], want: dict[str, Any], now: datetime, *, proof: Sequence[str] = ()
) -> None:
    """Action 77. After a lost reply the event is read back. One call sets every field, so the
    update happened when a field it changes (``proof``: changed fields the plan saw) now has the
    declared value, or when every mutable field is visible with it; otherwise it is sent once more
    (it sets values, so a repeat changes nothing more)."""
    try:
        client.update_event(agent=agent, event_id=ref["id"], draft=draft_of(want))
    except UNKNOWN_OUTCOME:
        row = _find(client, agent, ref, now)
        if row is None:
            raise
        have = live_view(row)
        if proof and all(k in have and have[k] == want[k] for k in proof):
            return
        if all(k in have and have[k] == want[k] for k in MUTABLE):
            return
        client.update_event(agent=agent, event_id=ref["id"], draft=draft_of(want))


def _bound(client: JdbClient, agent: str, uid: str, event_id: EventId) -> bool | None:
    """Whether ``uid`` is bound to the event (Action 71); ``None`` when the player does not exist."""
    try:
        rows = client.player_events(agent=agent, uid=uid)
    except JdbPlayerError:
        return None
    return str(event_id) in {str(r.get("eventId")) for r in rows}


def _bind(client: JdbClient, agent: str, ref: dict[str, Any], players: list[str], now: datetime) -> BindResult:
    """Action 74 per chunk. After a lost reply the chunk's players are read back (Action 71, when
    the chunk fits in :data:`PLAYER_READ_BUDGET`) and only those not bound are sent again; a larger
    chunk is sent again whole (binding a bound player changes nothing)."""
    result = BindResult()
    for chunk in chunks(players):
        try:
            result = result + client.bind_players(agent=agent, event_id=ref["id"], players=chunk)
        except JdbEventStateError as exc:
            result = result + _bind_refused(client, agent, ref, chunk, now, exc)
        except UNKNOWN_OUTCOME:
            if _find(client, agent, ref, now) is None:
                raise
            todo = chunk
            if len(chunk) <= PLAYER_READ_BUDGET:
                todo = [u for u in chunk if _bound(client, agent, u, ref["id"]) is not True]
            if todo:
                result = result + client.bind_players(agent=agent, event_id=ref["id"], players=todo)
    return _recheck_failed(client, agent, ref, result)


def _bind_refused(
    client: JdbClient, agent: str, ref: dict[str, Any], chunk: list[str], now: datetime, exc: JdbEventStateError
) -> BindResult:
    """Action 74 refused while the event still takes players: a JDB may refuse a call that holds a
    bound player (not documented). Within the read budget the chunk's players are read back (Action
    71) and only the unbound ones are sent again; a larger chunk cannot be checked and fails, saying so."""
    if _status(client, agent, ref, now) not in ("INACTIVE", "ACTIVE"):
        raise exc
    if len(chunk) > PLAYER_READ_BUDGET:
        raise ReconcilerError(
            f"JDB refused to bind {len(chunk)} player(s) to event {ref['id']} ({exc.vendor_message}); if it refuses calls "
            f"that hold an already bound player, more than {PLAYER_READ_BUDGET} players cannot be checked one by one: "
            "list the players that are not bound (the plan names them when they fit its read budget)"
        ) from None
    todo = [u for u in chunk if _bound(client, agent, u, ref["id"]) is not True]
    return client.bind_players(agent=agent, event_id=ref["id"], players=todo) if todo else BindResult()


def _recheck_failed(client: JdbClient, agent: str, ref: dict[str, Any], result: BindResult) -> BindResult:
    """JDB may list a player that is already bound as failed (binding a bound player is not
    documented): the first :data:`PLAYER_READ_BUDGET` failed players are read back (Action 71) and
    those bound to the event are not reported as failed."""
    if not result.failed:
        return result
    checked = result.failed[:PLAYER_READ_BUDGET]
    still = [u for u in checked if _bound(client, agent, u, ref["id"]) is not True]
    return BindResult(tuple(still) + result.failed[PLAYER_READ_BUDGET:], result.not_existed)


def _unbind(client: JdbClient, agent: str, ref: dict[str, Any], players: list[str]) -> None:
    """Action 75; after a lost reply only the players still bound (Action 71) are sent again."""
    try:
        client.unbind_players(agent=agent, event_id=ref["id"], players=players)
    except UNKNOWN_OUTCOME:
        todo = [u for u in players if _bound(client, agent, u, ref["id"])]
        if todo:
            client.unbind_players(agent=agent, event_id=ref["id"], players=todo)


def _create(
    client: JdbClient,
    data: dict[str, Any],
    now: datetime,
    *,
    again: bool,
    replacing: dict[str, Any] | None = None,
    players: Sequence[str] = (),
) -> tuple[CreateResult, str] | None:
    """Action 72 under the declared generation's ``transactionId`` (a replace: under the declared
    content's :func:`replacement_id`), then Action 76 by the answered ``eventId``: the event must be
    listed, not ended, and show every declared field JDB returns as sent (name, window, type,
    spins, machine types, bet, withdrawals, bonus fields, currency). A seed-conform JDB answers a
    repeated ``transactionId`` with the event it made before, which may be another environment's
    or an event that aged out: such an answer is an error and nothing is bound to it.

    Only an opt-in (``again``: a replace, or ``grantAgainAfter``) moves on to the next key when the
    answered event has ended or is no longer listed. ``None``: a replace's key answered the event
    being replaced — the replace for this content was already made."""
    agent, identity, generation, want = data["agent"], data["identity"], data["generation"], data["desired"]
    scope, currency = data.get("scope", ""), data.get("currency")
    draft = draft_of(want)
    if replacing is not None:
        keys = [
            (f"replacement {n}", replacement_id(agent, identity, generation, scope, want, n), generation)
            for n in range(1, MAX_GENERATION_PROBES + 1)
        ]
    else:
        keys = [
            (f"generation {g}", transaction_id(agent, identity, g, scope), g)
            for g in range(generation, generation + MAX_GENERATION_PROBES)
        ]
    opt_in = again or replacing is not None
    sent = (
        "; the one player sent with it (autoCreatePlayerEnabled) may have been bound to it by JDB"
        if players
        else "; nothing was bound to it"
    )
    for label, tid, gen in keys:
        result = client.create_event(
            agent=agent, draft=draft, transaction_id=tid, players=players, auto_create_player=bool(players)
        )
        if replacing is not None and str(result.event_id) == str(replacing["id"]):
            return None
        row = _find(client, agent, {"id": result.event_id, "startTime": want["startTime"], "endTime": want["endTime"]}, now)
        if row is None:
            if opt_in:
                continue
            raise ReconcilerError(
                f"Action 72 with the transactionId of {label} answered event {result.event_id}, which Action 76 does not "
                f"list (an event this key made that JDB no longer keeps, or not this agent's): not reported as created{sent}; "
                f"set spec.generation to {gen + 1} or more for a new event"
            )
        status = str(row.get("status"))
        if status in ENDED:
            if opt_in:
                continue  # this key made an event that has ended: the opt-in asks for a new one
            raise ReconcilerError(
                f"the transactionId of {label} belongs to event {result.event_id}, which is {status}: it ended "
                f"outside the product and is not granted again{sent}; set spec.grantAgainAfter: {result.event_id} to grant it again"
            )
        wrong = _mismatch(want, row, currency)
        if wrong:
            raise ReconcilerError(
                f"Action 72 with the transactionId of {label} answered event {result.event_id} '{row.get('name')}' ({status}), "
                f"which is not the event this manifest declares ({'; '.join(wrong)}){sent}; if it is this manifest's own "
                "event, renamed together with another change, rename it alone first; if it is another environment's "
                f"or connection's on this agent, set spec.generation to {gen + 1} or more "
                "(docs/kinds/free-spin-event.md, 'Idempotency')"
            )
        return result, label
    raise ReconcilerError(
        f"{keys[0][0]}-{keys[-1][0]}: every transactionId tried answers an event that has ended or is no "
        "longer listed; raise spec.generation"
    )


def _mismatch(want: dict[str, Any], row: EventInfo, currency: str | None) -> list[str]:
    """The declared fields the answered event shows otherwise (only fields JDB returned)."""
    have = live_view(row)
    out = [f"{k}: JDB has {have[k]}, declared {want[k]}" for k in DECLARED if k in have and have[k] != want[k]]
    if currency and row.get("currency") not in (None, "") and str(row.get("currency")) != currency:
        out.append(f"currency: JDB has {row.get('currency')}, declared {currency}")
    return out


def _auto_bound(
    client: JdbClient, agent: str, ref: dict[str, Any], auto: list[str], result: CreateResult
) -> tuple[BindResult, list[str]]:
    """What became of the one player sent with Action 72 (``autoCreatePlayerEnabled``): the answer's
    lists when they are known, else Action 71; returns the binding and the players still to bind."""
    if result.binding_known:
        return result.binding, []
    bound = _bound(client, agent, auto[0], ref["id"])
    return BindResult(), [] if bound else list(auto)

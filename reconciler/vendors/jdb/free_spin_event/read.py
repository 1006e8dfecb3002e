"""FreeSpinEvent live reads and matching: one Action 76 per agent, Action 71 within the run's
player-read budget, and the match of each manifest to its live (or ended) event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.vendors.jdb.client import JdbClient, JdbPlayerError
from reconciler.kinds.base import Resource
from reconciler.kinds.context import RunContext
from reconciler.vendors.jdb.free_spin_event.compare import ENDED, _Live, _same_but_name, _same_immutable, desired_view, live_view
from reconciler.vendors.jdb.free_spin_event.spec import FreeSpinEventSpec


LOOKBACK = timedelta(days=180)  # JDB keeps event data 180 days after expiry (Action 71)
LOOKAHEAD = timedelta(days=730)
# fields Action 71's rows carry and the documented Action 76 reply lacks (planning; export)
FROM_ACTION_71: Final = ("times", "endTime", "updateTime")


@dataclass
class _Membership:
    """What the plan knows about an event's players."""

    missing: list[str] | None = field(default_factory=list)  # None: count is short, re-bind all
    not_existing: list[str] = field(default_factory=list)
    to_unbind: list[str] = field(default_factory=list)
    cannot_unbind: list[str] = field(default_factory=list)  # excluded but bound; the event has started
    unknown_extras: int = 0


@dataclass
class _AgentRead:
    agent: str
    window: tuple[datetime, datetime]
    live: list[_Live]  # every event JDB returned, terminated ones included
    player_events: dict[str, set[str] | None] = field(default_factory=dict)  # uid -> event ids; None = no such player
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> an Action 71 row of it


def _read(client: JdbClient, agent: str, resources: list[Resource[FreeSpinEventSpec]], now: datetime) -> _AgentRead:
    lo = min([now - LOOKBACK, *(r.spec.start for r in resources)])
    hi = max([now, *(r.spec.end for r in resources)]) + LOOKAHEAD
    rows = client.search_events(agent=agent, start=lo, end=hi)
    return _AgentRead(agent, (lo, hi), [_Live(row) for row in rows])


def _match(
    resources: list[Resource[FreeSpinEventSpec]], events: list[_Live], bound_to: dict[str, set[str]] | None = None
) -> tuple[dict[str, _Live | None], dict[str, _Live | None]]:
    """Each resource's event: same display name, else a unique unclaimed twin (a rename: every
    declared field JDB returned agrees, end and spins were seen, and the resource's first
    declared player is bound to it — ``bound_to``; terminated events aside); then, for a
    resource still without one, the terminated event it most likely was (same name, else a
    twin) — an event ended outside the product."""
    matches: dict[str, _Live | None] = {}
    ended: dict[str, _Live | None] = {r.name: None for r in resources}
    claimed: set[int] = set()
    declared_names = {r.spec.name for r in resources}
    live = [e for e in events if e.status != "TERMINATED"]
    terminated = [e for e in events if e.status == "TERMINATED"]
    for r in resources:
        want = desired_view(r.spec)
        named = [e for e in live if e.row.get("name") == r.spec.name and id(e) not in claimed]
        same = [e for e in named if _same_immutable(want, live_view(e.row))]
        found = same or named
        pick = found[-1] if found else None
        matches[r.name] = pick
        if pick is not None:
            claimed.add(id(pick))
    for r in resources:
        if matches[r.name] is not None:
            continue
        want = desired_view(r.spec)
        ours = (bound_to or {}).get(r.name, set())
        twins = [
            e
            for e in live
            if id(e) not in claimed
            and e.row.get("name") not in declared_names
            and e.status not in ENDED
            and str(e.event_id) in ours
            and _same_but_name(want, live_view(e.row))
        ]
        if len(twins) == 1:
            matches[r.name] = twins[0]
            claimed.add(id(twins[0]))
    for r in resources:
        if matches[r.name] is not None:
            continue
        want = desired_view(r.spec)
        named = [e for e in terminated if e.row.get("name") == r.spec.name and id(e) not in claimed]
        twins = [
            e
            for e in terminated
            if id(e) not in claimed and e.row.get("name") not in declared_names and _same_immutable(want, live_view(e.row))
        ]
        candidates = named or (twins if len(twins) == 1 else [])
        # an event the opt-in does not name wins: a grant made again and later terminated again
        # must not be granted a third time because an older event is named
        again = None if r.spec.grantAgainAfter is None else str(r.spec.grantAgainAfter)
        found = [e for e in candidates if str(e.event_id) != again] or candidates
        pick = found[-1] if found else None
        ended[r.name] = pick
        if pick is not None:
            claimed.add(id(pick))
    return matches, ended


def _read_players(
    client: JdbClient,
    read: _AgentRead,
    resources: list[Resource[FreeSpinEventSpec]],
    matches: dict[str, _Live | None],
    ended: dict[str, _Live | None],
    declared: dict[str, list[str]],
    ctx: RunContext,
    budget: list[int],
) -> None:
    """One Action 71 per distinct player worth checking, within what is left of the run's
    :data:`PLAYER_READ_BUDGET` (excluded players first; an event's declared players only
    when all of them fit; then one declared player of each ended event, to learn when).

    Action 71's rows also carry what the documented Action 76 reply lacks (``times``,
    ``endTime``, ``updateTime``): an event's row of any checked player fills those in."""
    uids: dict[str, None] = {}
    for r in resources:
        event = matches[r.name]
        if event is not None and not event.ended:
            uids.update(dict.fromkeys(r.spec.excludedPlayers[: max(0, budget[0] - len(uids))]))
    for r in resources:
        event = matches[r.name]
        if event is None or event.ended:
            continue
        new = [u for u in dict.fromkeys(declared[r.name]) if u not in uids]
        if len(uids) + len(new) <= budget[0]:
            uids.update(dict.fromkeys(new))
    for r in resources:
        event = matches[r.name]
        if (ended[r.name] is not None or (event is not None and event.ended)) and declared[r.name] and len(uids) < budget[0]:
            uids.setdefault(declared[r.name][0], None)
    todo = [u for u in uids if u not in read.player_events]  # a rename probe may have read some
    budget[0] -= len(todo)
    _read_uids(client, read, todo, ctx)


def _probe_renames(
    client: JdbClient,
    read: _AgentRead,
    resources: list[Resource[FreeSpinEventSpec]],
    declared: dict[str, list[str]],
    ctx: RunContext,
    budget: list[int],
) -> None:
    """For each resource whose display name no live event has (a rename candidate), one Action
    71 of its first declared player (within the budget): the rows of the events that player is
    bound to carry ``times`` and ``endTime``, which a rename match needs to see agree."""
    names = {str(e.row.get("name")) for e in read.live if e.status != "TERMINATED"}
    declared_names = {r.spec.name for r in resources}
    others = [live_view(e.row) for e in read.live if e.status not in ENDED and str(e.row.get("name")) not in declared_names]

    def candidate(r: Resource[FreeSpinEventSpec]) -> bool:  # a live event it could be a rename of (same type and start)
        want = desired_view(r.spec)
        return any(v.get("type") == want["type"] and v.get("startTime") == want["startTime"] for v in others)

    uids = list(
        dict.fromkeys(declared[r.name][0] for r in resources if r.spec.name not in names and declared[r.name] and candidate(r))
    )[: max(0, budget[0])]
    budget[0] -= len(uids)
    _read_uids(client, read, uids, ctx)


def _read_uids(client: JdbClient, read: _AgentRead, uids: list[str], ctx: RunContext) -> None:
    """Action 71 for each of ``uids``: who is bound to what, and the fields its rows add."""
    if not uids:
        return
    lo, hi = read.window

    def events_of(uid: str) -> tuple[str, list[dict[str, Any]] | None]:
        try:
            return uid, client.player_events(agent=read.agent, uid=uid, start=lo, end=hi)
        except JdbPlayerError:
            return uid, None

    concurrency = ctx.config.providers.jdb.concurrency if ctx.config.providers.jdb else 1
    rows_of = dict(RunContext.map(events_of, list(uids), concurrency=concurrency, progress=(ctx, "JDB players: reading")))
    read.player_events.update(
        {u: None if rows is None else {str(row.get("eventId")) for row in rows} for u, rows in rows_of.items()}
    )
    for rows in rows_of.values():
        for row in rows or []:
            read.details.setdefault(str(row.get("eventId")), row)
    for event in read.live:
        extra = read.details.get(str(event.event_id))
        if extra is not None:
            for key in FROM_ACTION_71:
                if key not in event.row and key in extra:
                    event.row[key] = extra[key]


def _membership(spec: FreeSpinEventSpec, declared: list[str], event: _Live, read: _AgentRead) -> _Membership:
    known = read.player_events
    event_id = str(event.event_id)
    bound_excluded = [u for u in spec.excludedPlayers if event_id in (known.get(u) or set())]
    inactive = event.status == "INACTIVE"
    m = _Membership(to_unbind=bound_excluded if inactive else [], cannot_unbind=[] if inactive else bound_excluded)
    if all(u in known for u in declared):
        bound = [u for u in declared if event_id in (known[u] or set())]
        m.not_existing = [u for u in declared if known[u] is None]
        m.missing = [u for u in declared if known[u] is not None and event_id not in (known[u] or set())]
        m.unknown_extras = max(0, event.count - len(bound) - len(bound_excluded))
    else:
        short = event.count - len(bound_excluded) < len(declared)
        m.missing = None if short else []
        m.unknown_extras = max(0, event.count - len(bound_excluded) - len(declared))
    return m

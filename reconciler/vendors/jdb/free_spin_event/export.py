"""FreeSpinEvent export (DR, adoption): live events as manifests and players files."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Final

from reconciler.vendors.jdb.client import JdbClient, JdbPlayerError, parse_iso
from reconciler.kinds.base import ExportDoc, ExportFile, ExportGroup, ExportRequest, KindExport, Resource, ScopeDecl
from reconciler.kinds.context import RunContext
from reconciler.vendors.jdb.free_spin_event.compare import ENDED, _Live, _instant, _money
from reconciler.vendors.jdb.free_spin_event.read import LOOKAHEAD, LOOKBACK, _AgentRead, _match
from reconciler.vendors.jdb.free_spin_event.spec import FreeSpinEventSpec, declared_players


# -- export (DR, adoption) -----------------------------------------------------------------
def export_events(
    resources: list[Resource[FreeSpinEventSpec]],
    scopes: list[ScopeDecl],
    ctx: RunContext,
    request: ExportRequest,
    client: JdbClient,
) -> KindExport:
    """Events of every agent the manifests or ``request.extra["agents"]`` name (one Action 76 each, the
    plan's read window), one ``jdb/<agent>/free-spins.yaml`` per agent; see :func:`export_event`."""
    now = ctx.options.now()
    by_agent: dict[str, list[Resource[FreeSpinEventSpec]]] = defaultdict(list)
    for r in resources:
        by_agent[r.spec.agent].append(r)
    agents = sorted(set(by_agent) | {s.spec.agent for s in scopes} | set(request.extra.get("agents", [])))
    out = KindExport()
    taken = {r.name for r in resources}  # metadata names in use (shared by all agents)
    if not agents:
        out.notes.append("FreeSpinEvent: no JDB agent to read (declare events, or name one with --agent)")
    for agent in agents:
        rs = sorted(by_agent[agent], key=lambda x: x.name)
        # the plan's window, reaching further ahead (adoption: events may be scheduled years ahead)
        lo = min([now - LOOKBACK, *(r.spec.start for r in rs)])
        hi = max([now + EXPORT_LOOKAHEAD, *(r.spec.end + LOOKAHEAD for r in rs)])
        rows = client.search_events(agent=agent, start=lo, end=hi)
        read = _AgentRead(agent, (lo, hi), [_Live(row) for row in rows if row.get("status") != "TERMINATED"])
        matches, _ = _match(rs, read.live)  # (terminated events are not read here)
        owners = {id(e): r for r in rs if (e := matches[r.name]) is not None}
        _fill_from_player_events(client, read, owners, ctx)
        export_agent(agent, read.live, owners, taken, request, out, now=now)
    return out


EXPORT_FROM_ACTION_71: Final = ("endTime", "times")  # Action 71 fields an export fills in

# -- export -------------------------------------------------------------------------------------
EXPORT_LOOKAHEAD = timedelta(days=366 * 20)
"""How far ahead an export looks for events (the plan looks two years past the declared ones)."""
PLAYERS_NOT_LISTED = (
    "JDB has no call that lists an event's players (Action 76 returns only numberOfPlayers): "
    "the players file lists the players a manifest declared; fill in the others"
)


def _event_slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return slug[:200] or "event"


def export_event(
    agent: str,
    event: _Live,
    owner: Resource[FreeSpinEventSpec] | None,
    name: str,
    request: ExportRequest,
    *,
    now: datetime | None = None,
) -> tuple[ExportDoc, ExportFile]:
    """One live event as a document and its players file (``players/<name>.txt``).

    Times are written exactly as JDB returned them (milliseconds and offset). A field Action 76 did
    not return is taken from the declaring manifest (with a comment saying so) or written as a
    comment asking for it, never invented. Status, counters and ``eventId`` are comments.

    An event running at ``now`` (the export's time) that started more than the retention (180
    days) before it gets ``createAfterRetention: true``: it is known to have been granted and not
    stopped, so its restore into a new JDB is a create the plan must not block."""
    row: dict[str, Any] = dict(event.row)
    spec: dict[str, Any] = {"name": row.get("name"), "agent": agent}
    doc = ExportDoc("FreeSpinEvent", name, spec, protected=bool(owner and owner.protected), protect_key=str(event.event_id))
    for key in ("startTime", "endTime"):
        declared = getattr(owner.spec, key) if owner is not None else None
        if row.get(key):  # exactly as JDB returned it, or the manifest's spelling of the same instant
            spec[key] = declared if declared and _instant(declared) == _instant(row[key]) else row[key]
        elif declared and owner is not None:
            spec[key] = declared
            doc.field_comments[key] = f"not returned by Action 76: taken from {owner.source}"
        else:
            doc.missing[key] = "not returned by JDB Action 76 here; fill it in (ISO-8601 with offset)"
    spec["machineTypes"] = list(row.get("machineTypes") or [])
    spec["type"] = row.get("type")
    fields = ["bet", "times"] if row.get("type") != "BONUSCHIPS" else ["bet", "bonusChips", "chipsMultiplier"]
    for key in [*fields, "minWithdrawal", "maxWithdrawal"]:
        if row.get(key) is not None:
            spec[key] = row[key] if key == "times" else _money(row[key])
        elif owner is not None and getattr(owner.spec, key) is not None:
            spec[key] = getattr(owner.spec, key)
            doc.field_comments[key] = f"not returned by Action 76: taken from {owner.source}"
        else:
            hint = ""
            if key == "times" and row.get("totalTimes") and event.count:
                hint = f"; totalTimes {row['totalTimes']} over {event.count} player(s)"
            doc.missing[key] = f"not returned by JDB Action 76 here; fill it in{hint}"
    players_path = f"players/{name}.txt"
    spec["playersFile"] = players_path
    doc.field_comments["playersFile"] = f"JDB reports {event.count} bound player(s) but cannot list them; see the file"
    if owner is not None:
        if owner.spec.excludedPlayers:
            spec["excludedPlayers"] = list(owner.spec.excludedPlayers)
        if owner.spec.generation != 1:
            spec["generation"] = owner.spec.generation
            doc.field_comments["generation"] = "keeps the transactionId of the live event"
    start = spec.get("startTime")
    if now is not None and event.status not in ENDED and start and _started_before(str(start), now - LOOKBACK):
        spec["createAfterRetention"] = True
        doc.field_comments["createAfterRetention"] = (
            f"{event.status} at the export, started more than {LOOKBACK.days} days before it: a restore into a new JDB creates it"
        )
    doc.comments.append(event.observed().replace("observed: ", "server-owned, not restored: "))
    players = declared_players(owner.spec, owner.doc.base_dir) if owner is not None else []
    head = [
        f"Players of JDB event {event.event_id} '{row.get('name')}' (agent {agent}): JDB reports {event.count} bound.",
        "JDB has no call that lists an event's players, so this list cannot be read back from JDB.",
        (
            f"Listed: the {len(players)} player(s) {owner.source} declared."
            if owner is not None
            else "Fill in the player IDs (one per line) before applying, or the restored event has no players."
        ),
        "One player ID per line; blank lines and lines starting with # are ignored.",
    ]
    text = "".join(f"# {line}\n" for line in head) + "".join(f"{p}\n" for p in players)
    return doc, ExportFile(players_path, text, ref=doc.ref)


def _started_before(start: str, moment: datetime) -> bool:
    try:
        return parse_iso(start) < moment
    except (ValueError, TypeError):  # not a time with an offset: nothing to judge (the doc says what is missing)
        return False


def _fill_from_player_events(
    client: JdbClient, read: _AgentRead, owners: dict[int, Resource[FreeSpinEventSpec]], ctx: RunContext
) -> None:
    """Action 76 may not return ``endTime`` or ``times``; Action 71 (a player's events) does. For
    every declared event missing them, ask about one of its declared players (one call per
    distinct player); events no manifest declares have no known player and keep the gap."""
    wanted: dict[str, list[_Live]] = {}
    for event in read.live:
        owner = owners.get(id(event))
        if owner is None or all(k in event.row for k in ("endTime", "times")):
            continue
        players = declared_players(owner.spec, owner.doc.base_dir)
        if players:
            wanted.setdefault(players[0], []).append(event)
    lo, hi = read.window

    def rows_of(uid: str) -> list[dict[str, Any]]:
        try:
            return [dict(r) for r in client.player_events(agent=read.agent, uid=uid, start=lo, end=hi)]
        except JdbPlayerError:
            return []

    concurrency = ctx.config.providers.jdb.concurrency if ctx.config.providers.jdb else 1
    found = {
        str(row.get("eventId")): row for rows in RunContext.map(rows_of, list(wanted), concurrency=concurrency) for row in rows
    }
    for events in wanted.values():
        for event in events:
            extra = found.get(str(event.event_id), {})
            for key in EXPORT_FROM_ACTION_71:
                if key not in event.row and key in extra:
                    event.row[key] = extra[key]


def export_agent(
    agent: str,
    live: list[_Live],
    owners: dict[int, Resource[FreeSpinEventSpec]],
    taken: set[str],
    request: ExportRequest,
    out: KindExport,
    *,
    now: datetime | None = None,
) -> None:
    """An agent's live events (not terminated) as ``jdb/<agent>/free-spins.yaml`` (``now``: the
    export's time, see :func:`export_event`)."""
    base = f"jdb/{_event_slug(agent) if agent != _event_slug(agent) else agent}"
    group = ExportGroup(
        f"{base}/free-spins.yaml",
        header=[
            f"JDB free-spin events of agent {agent}, exported from live state (Action 76).",
            "Times are the exact instants JDB returned (spelled as a declaring manifest spells them). "
            + PLAYERS_NOT_LISTED
            + ".",
        ],
    )
    names = taken
    owned = {str(e.row.get("name", "")) for e in live if id(e) in owners}  # display names manifests keep
    shown: set[str] = set()
    for event in sorted(live, key=lambda e: (_instant(e.row["startTime"]) if e.row.get("startTime") else "", str(e.event_id))):
        owner = owners.get(id(event))
        if request.unmanaged and owner is not None:
            continue
        display = str(event.row.get("name", ""))
        if event.status in ENDED:
            group.header.append(
                f"not exported: event {event.event_id} '{display}' {event.status} (ended "
                f"{event.row.get('endTime', '?')}); JDB creates only events that end in the future"
            )
            continue
        if owner is None and (display in shown or display in owned):
            group.header.append(
                f"not exported: event {event.event_id} '{display}' has the display name of another "
                "exported event (a manifest identifies events of an agent by display name)"
            )
            continue
        shown.add(display)
        if owner is not None:
            name = owner.name
        else:
            wanted = name = _event_slug(display)
            n = 2
            while name in names:
                name, n = f"{wanted}-{n}", n + 1
        names.add(name)
        doc, players = export_event(agent, event, owner, name, request, now=now)
        players.path = f"{base}/{players.path}"
        group.docs.append(doc)
        out.files.append(players)
    if group.docs or len(group.header) > 2:
        group.keep = True
        out.groups.append(group)
    if group.docs:
        out.notes.append(f"FreeSpinEvent: {PLAYERS_NOT_LISTED} ({base}/players/)")

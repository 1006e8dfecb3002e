"""Kind ``FreeSpinEvent``: a JDB free-spin reward event and the players bound to it.

Identity is ``metadata.name``; JDB knows events by ``eventId`` and display ``name`` only, so a
manifest is matched to the live event of its ``agent`` with the same display name; when none has
it, to the one unclaimed live event whose every returned field but the name agrees (end and spins
seen) and to which its first declared player is bound (a rename); when still none, to a TERMINATED
event with its name (or a unique terminated twin).

Reads: one Action 76 per agent over a wide time window, plus Action 71 within a per-run budget
(:data:`PLAYER_READ_BUDGET`) for player membership — JDB has no call that lists an event's players.
A field is compared only when a reply carries it (the documented Action 76 reply stops at
``startTime``; Action 71 rows add ``times``, ``endTime`` and ``updateTime``). Fields no reply
carries are compared against the last applied plan when one is given (``--last-applied``), else the
plan says a change to them cannot be verified.

Money safety: an event that ended outside the product (terminated out of band, or expired) is never
created again unless ``spec.grantAgainAfter`` names it; a declared window already past is
"expired", nothing to do.

Writes (every one safe to repeat; a lost reply is read back by key before any repeat):

- create: Action 72 without players under ``transactionId`` = a UUIDv5 of the key scope (``--env``
  and named connection), agent, identity and generation; Action 76 by the answered ``eventId``
  confirms it is the declared event (every returned field agrees) before anyone is bound; then
  Action 74 in calls of 50,000. An answer naming another event is an error with nobody bound. Only
  an opt-in (replace, ``grantAgainAfter``) moves on to the next key when the key's event has ended;
- update: Action 77 for name, machine types, bet and withdrawals; Action 74 for missing players
  (only with a manifest change, ``spec.allowRebind`` or ``--force``: a player unbound outside the
  product is not bound again silently); Action 75 for ``excludedPlayers`` still bound (only while
  INACTIVE, as JDB requires). Money fields and players of an ACTIVE event need
  ``spec.allowLiveChanges`` or ``--force``;
- replace (type, times, start/end, bonus chips changed): create the new event first under a key
  derived from the declared content, confirm it, terminate (73) the old one, bind; needs
  ``--allow-replace`` or ``spec.allowReplace``, and ``spec.allowLiveChanges``/``--force`` when the
  event is ACTIVE. A replace planned again for the same manifest gets the same event back and
  stops: it terminates and creates at most once per manifest change;
- delete: only inside a ``PruneScope`` (``agent`` + ``namePrefix``), never an ACTIVE event without
  ``--force``.

Status and usage counters (spins used, cash-out) are observed, never drift.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from reconciler.vendors.jdb.client import (
    MAX_PLAYERS_PER_CALL,
    BindResult,
    CreateResult,
    EventDraft,
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
from reconciler.model import Action, Change, FieldDiff, Gap, KindPlan, Outcome, Unmanaged
from reconciler.manifest import confine
from reconciler.errors import MAX_PROBLEMS_PER_FILE, Problem, ReconcilerError, UsageError
from reconciler.kinds.base import ExportDoc, ExportFile, ExportGroup, ExportRequest, Kind, KindExport, Resource, RunContext, ScopeDecl, outcome_of
from reconciler.manifest.yamlload import Path_

PLAYER_READ_BUDGET = 100
"""Action 71 calls one plan may make, over all agents (JDB has no call that lists an event's
players). An agent's declared players are checked one by one only while they fit in what is left
of the budget; otherwise membership is judged by the event's ``numberOfPlayers`` and missing
players are bound by re-binding the whole list. Excluded players are checked first (at most this
many may be declared). A plan's JDB calls are therefore one Action 76 per agent plus at most this."""
VERIFY_LIMIT = PLAYER_READ_BUDGET  # kept for readers of the old name
MAX_GENERATION_PROBES = 20
LOOKBACK = timedelta(days=180)  # JDB keeps event data 180 days after expiry (Action 71)
LOOKAHEAD = timedelta(days=730)
TRANSACTION_NAMESPACE = uuid.UUID("6f1c9a52-4e0b-5d8e-9c3a-1b7d2e4f6a80")
MUTABLE = ("name", "machineTypes", "bet", "minWithdrawal", "maxWithdrawal")
IMMUTABLE = ("type", "times", "startTime", "endTime", "bonusChips", "chipsMultiplier")
DECLARED = (*IMMUTABLE, *MUTABLE)
ENDED = ("TERMINATED", "EXPIRED")
# fields Action 71's rows carry and the documented Action 76 reply lacks (planning; export)
FROM_ACTION_71: Final = ("times", "endTime", "updateTime")
EXPORT_FROM_ACTION_71: Final = ("endTime", "times")
SHOWN_PLAYERS = 10
LIVE_GUARDED: Final = ("bet", "minWithdrawal", "maxWithdrawal", "times", "bonusChips", "chipsMultiplier")
"""Fields whose change on an ACTIVE event (a running promotion) needs spec.allowLiveChanges or --force
(players too)."""
RUNNING: Final = "CHANGE TO A RUNNING PROMOTION"
UNKNOWN_OUTCOME = (JdbTransportError, JdbUnavailableError)
"""A write whose outcome is unknown: the reply was lost, or JDB answered busy (it may have acted)."""
SHOWN_ENDED = 20  # per kind plan: ended-event notices shown one by one; the rest are counted
NOT_RETURNED = "(not returned by JDB; manifest changed since the baseline plan)"


# -- spec -------------------------------------------------------------------------------------
def _aware_iso(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO-8601 time (e.g. 2025-07-01T00:00:00+08:00)") from None
    if parsed.tzinfo is None:
        raise ValueError("the time needs a UTC offset (e.g. +08:00 or Z)")
    return value


def _matcher(pattern: str, message: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


MONEY = r"\d{1,12}(\.\d{1,3})?"
IsoTime = Annotated[StrictStr, AfterValidator(_aware_iso)]
Money = Annotated[StrictStr, _matcher(MONEY, 'not an amount: a decimal string with at most 3 decimals, e.g. "2.5"'),
                  Field(json_schema_extra={"pattern": f"^{MONEY}$"})]
Withdrawal = Annotated[StrictStr, _matcher(f"-1|{MONEY}", 'not an amount: a decimal string with at most 3 decimals, or "-1" for no limit'),
                       Field(json_schema_extra={"pattern": f"^(-1|{MONEY})$"})]
PlayerId = Annotated[StrictStr, _matcher(r"\S{1,50}", "a player ID has 1-50 characters and no spaces"),
                     Field(json_schema_extra={"pattern": r"^\S{1,50}$"})]


class FreeSpinEventSpec(BaseModel):
    """A free-spin reward event. ``players`` or ``playersFile`` (one ID per line, ``#`` comments)
    lists the players to bind; ``excludedPlayers`` names players that must not be bound (JDB
    cannot list an event's players, so removals are declared)."""

    model_config = ConfigDict(extra="forbid")
    name: StrictStr = Field(min_length=1, max_length=70, description="display name (JDB name, at most 70 characters)")
    agent: StrictStr = Field(min_length=1, max_length=50, description="JDB agent ID (the request parent)")
    startTime: IsoTime
    endTime: IsoTime
    machineTypes: list[Annotated[StrictInt, Field(ge=1)]] = Field(min_length=1)
    bet: Money
    type: Literal["NORMAL", "FEATURE", "BONUSCHIPS"]
    times: StrictInt | None = Field(default=None, ge=1, description="spins per player; NORMAL and FEATURE only")
    bonusChips: Money | None = Field(default=None, description="BONUSCHIPS only")
    chipsMultiplier: Money | None = Field(default=None, description="BONUSCHIPS only")
    minWithdrawal: Withdrawal = "-1"
    maxWithdrawal: Withdrawal = "-1"
    players: list[PlayerId] | None = None
    playersFile: StrictStr | None = Field(default=None, min_length=1, description="relative to the manifest")
    excludedPlayers: list[PlayerId] = Field(default_factory=list, max_length=VERIFY_LIMIT)
    generation: StrictInt = Field(default=1, ge=1, description="raise it to create a new event under a new transactionId")
    autoCreatePlayerEnabled: StrictBool = Field(
        default=False, description="Action 72: JDB creates the player account if missing; needs exactly one player")
    grantAgainAfter: StrictInt | StrictStr | None = Field(
        default=None, description="the eventId of this resource's event that ended outside the product (terminated or "
                                  "expired): create a new grant anyway; the plan shows it as a new grant")
    allowReplace: StrictBool = Field(default=False, description="allow terminate + create when an immutable field changes")
    allowLiveChanges: StrictBool = Field(
        default=False, description="allow changing bet, withdrawal limits, spins or players of an ACTIVE event (a running "
                                   "promotion); --force does the same for one run")
    allowRebind: StrictBool = Field(
        default=False, description="bind declared players that are not bound to the existing event again, even when they "
                                   "may have been unbound outside the product (Action 75)")
    currency: Annotated[StrictStr, Field(min_length=1, max_length=10)] | None = Field(
        default=None, description="JDB currency code the event must pay in (default: providers.jdb.currency); JDB sets it "
                                  "per agent, Action 72 has no currency: a mismatch is refused before binding")

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.startTime)

    @property
    def end(self) -> datetime:
        return datetime.fromisoformat(self.endTime)


class FreeSpinEventScope(BaseModel):
    """Prune scope: live events of ``agent`` whose display name starts with ``namePrefix``."""

    model_config = ConfigDict(extra="forbid")
    agent: StrictStr = Field(min_length=1, max_length=50)
    namePrefix: StrictStr = Field(min_length=1, max_length=70)


def spec_problems(spec: FreeSpinEventSpec) -> list[tuple[Path_, str]]:
    """Rules across fields (each pointing at the field to fix)."""
    out: list[tuple[Path_, str]] = []
    if spec.end <= spec.start:
        out.append((("endTime",), "endTime must be later than startTime"))
    if Decimal(spec.bet) == 0:
        out.append((("bet",), "bet must be greater than 0"))
    if spec.type == "BONUSCHIPS":
        if spec.times is not None:
            out.append((("times",), "BONUSCHIPS events have no times (the turnover is bonusChips x chipsMultiplier)"))
        out.extend((("type",), f"BONUSCHIPS needs {f}") for f in ("bonusChips", "chipsMultiplier") if getattr(spec, f) is None)
        out.extend(((f,), f"{f} must be greater than 0") for f in ("bonusChips", "chipsMultiplier")
                   if getattr(spec, f) is not None and Decimal(getattr(spec, f)) == 0)
    else:
        if spec.times is None:
            out.append((("type",), f"{spec.type} events need times (spins per player)"))
        out.extend(((f,), f"{f} is only for BONUSCHIPS events") for f in ("bonusChips", "chipsMultiplier") if getattr(spec, f) is not None)
    if spec.minWithdrawal != "-1" and spec.maxWithdrawal != "-1" and Decimal(spec.minWithdrawal) > Decimal(spec.maxWithdrawal):
        out.append((("minWithdrawal",), "minWithdrawal must be less than or equal to maxWithdrawal (-1 = no limit)"))
    out.extend((("machineTypes", i), f"duplicate machine type {m}") for i, m in _duplicates(spec.machineTypes))
    if spec.autoCreatePlayerEnabled and spec.players is not None and len(spec.players) != 1:
        out.append((("autoCreatePlayerEnabled",), "autoCreatePlayerEnabled needs exactly one player in players (Action 72)"))
    if spec.players is not None and spec.playersFile is not None:
        out.append((("playersFile",), "give players or playersFile, not both"))
    out.extend((("players", i), f"duplicate player '{p}'") for i, p in _duplicates(spec.players or []))
    out.extend((("excludedPlayers", i), f"duplicate player '{p}'") for i, p in _duplicates(spec.excludedPlayers))
    declared = set(spec.players or [])
    out.extend((("excludedPlayers", i), f"player '{p}' is also in players")
               for i, p in enumerate(spec.excludedPlayers) if p in declared)
    return out


def _duplicates(items: list[Any]) -> list[tuple[int, Any]]:
    seen: set[Any] = set()
    out = []
    for i, item in enumerate(items):
        if item in seen:
            out.append((i, item))
        seen.add(item)
    return out


def read_players_file(path: Path) -> tuple[list[str], list[str]]:
    """Player IDs of a players file (one per line; blank lines and ``#`` comments ignored) and
    the problems found in it. The file is checked against the workspace on every call and parsed
    once per content (validation, planning and apply all ask for it)."""
    try:
        real = confine.check(path, what="players file")  # inside the workspace, a regular file, bounded
        st = real.stat()
        players, problems = _players_of(str(real), st.st_mtime_ns, st.st_size, path.name)
    except confine.ConfinementError as exc:
        return [], [f"cannot read players file {path.name}: {exc.reason}"]
    except OSError as exc:
        return [], [f"cannot read players file {path.name}: {exc.strerror or type(exc).__name__}"]
    return list(players), list(problems)


@lru_cache(maxsize=64)
def _players_of(real: str, mtime_ns: int, size: int, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = confine.read_text(real, what="players file")
    players: list[str] = []
    problems: list[str] = []
    more = 0  # problems past the per-file cap: counted, not kept
    seen: dict[str, int] = {}
    for n, line in enumerate(confine.text_lines(text), 1):
        uid = line.split("#", 1)[0].strip()
        if not uid:
            continue
        if len(uid) > 50 or len(uid.split()) != 1:  # stripped and not empty: one word unless it holds whitespace
            problem = f"{name} line {n}: not a player ID (1-50 characters, no spaces)"
        elif uid in seen:
            problem = f"{name} line {n}: duplicate player '{uid}' (first on line {seen[uid]})"
        else:
            seen[uid] = n
            players.append(uid)
            continue
        if len(problems) < MAX_PROBLEMS_PER_FILE:
            problems.append(problem)
        else:
            more += 1
    if more:
        problems.append(f"... and {more:,} more problems in {name}")
    return tuple(players), tuple(problems)


def declared_players(spec: FreeSpinEventSpec, base_dir: Path) -> list[str]:
    if spec.playersFile is None:
        return list(spec.players or [])
    return read_players_file(base_dir / spec.playersFile)[0]


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
        kp.differs.append(f"{r.ref}: excluded player(s) still bound to event {event.event_id}, which is {event.status} "
                          f"(JDB unbinds only while INACTIVE): {', '.join(_shown(m.cannot_unbind))}")
    if any(u not in known for u in r.spec.excludedPlayers):
        _uncompared(kp, "excludedPlayers", f"not every excluded player was checked (at most {PLAYER_READ_BUDGET} "
                    "Action 71 reads a plan): one may still be bound")
    if any(u not in known for u in declared):
        _uncompared(kp, "players", f"not every declared player was checked (at most {PLAYER_READ_BUDGET} Action 71 "
                    "reads a plan): membership judged by the event's player count")


def transaction_id(agent: str, identity: str, generation: int, scope: str = "") -> str:
    """The deterministic 36-character Action 72 ``transactionId`` of one generation of an event.

    ``scope`` (:func:`key_scope`) keeps the keys of environments and connections that share one
    agent apart; the default connection without ``--env`` has the empty scope, whose keys are the
    ones every earlier version made (so its live events keep their keys)."""
    if not scope:
        return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{agent}\n{identity}\n{generation}"))
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"scope {scope}\n{agent}\n{identity}\n{generation}"))


def replacement_id(agent: str, identity: str, generation: int, scope: str, desired: dict[str, Any], n: int) -> str:
    """The ``transactionId`` of the ``n``-th replacement event for one declared content: a replace
    repeated for an unchanged manifest asks JDB with the same key, so it creates at most once."""
    content = json.dumps(desired, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"replace {scope}\n{agent}\n{identity}\n{generation}\n{content}\n{n}"))


def key_scope(environment: str | None, connection: str | None) -> str:
    """What tells apart runs that share a JDB agent: the ``--env`` and the named connection.
    Empty (the legacy keys) for the default connection without an environment."""
    parts = [f"env={environment}" if environment else "", f"connection={connection}" if connection not in (None, "default") else ""]
    return ";".join(p for p in parts if p)


# -- normalised views -------------------------------------------------------------------------
def _money(value: Any) -> str | None:
    if value is None:
        return None
    number = Decimal(str(value))
    return "-1" if number == -1 else format(number.normalize(), "f")


def _instant(value: str | datetime) -> str:
    """A time as its UTC instant (so ``+08:00`` and ``Z`` spellings of one moment compare equal)."""
    dt = parse_iso(value) if isinstance(value, str) else value
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _diff(key: str, before: Any, after: Any, tz: Any) -> FieldDiff:
    """A field difference for display: times in the manifest's UTC offset."""
    if key in ("startTime", "endTime"):
        before, after = (None if v is None else parse_iso(v).astimezone(tz).isoformat() for v in (before, after))
    return FieldDiff(key, before, after)


def desired_view(spec: FreeSpinEventSpec) -> dict[str, Any]:
    return {
        "name": spec.name, "type": spec.type, "times": spec.times,
        "startTime": _instant(spec.start), "endTime": _instant(spec.end),
        "machineTypes": sorted(spec.machineTypes), "bet": _money(spec.bet),
        "minWithdrawal": _money(spec.minWithdrawal), "maxWithdrawal": _money(spec.maxWithdrawal),
        "bonusChips": _money(spec.bonusChips), "chipsMultiplier": _money(spec.chipsMultiplier),
    }


def live_view(row: EventInfo) -> dict[str, Any]:
    """The declared fields of a live event; a field JDB did not return is left out (not compared)."""
    raw: dict[str, Any] = dict(row)
    view: dict[str, Any] = {}
    for key in ("name", "type"):
        if key in raw:
            view[key] = raw[key]
    for key in ("startTime", "endTime"):
        if raw.get(key):
            view[key] = _instant(raw[key])
    if "machineTypes" in raw:
        view["machineTypes"] = sorted(raw.get("machineTypes") or [])
    if "times" in raw and raw.get("type") != "BONUSCHIPS":
        # a BONUSCHIPS event has no spins: JDB answers null (Action 71 seed) or may echo the
        # placeholder the create sent; either way it is not compared
        view["times"] = raw["times"]
    for key in ("bet", "minWithdrawal", "maxWithdrawal", "bonusChips", "chipsMultiplier"):
        if key in raw:
            view[key] = _money(raw[key])
    return view


def draft_of(view: dict[str, Any]) -> EventDraft:
    """The Action 72/77 fields of a desired view."""
    return EventDraft(
        name=view["name"], start=parse_iso(view["startTime"]), end=parse_iso(view["endTime"]),
        machine_types=tuple(view["machineTypes"]), bet=view["bet"], type=view["type"],
        min_withdrawal=view["minWithdrawal"], max_withdrawal=view["maxWithdrawal"], times=view["times"],
        bonus_chips=view["bonusChips"], chips_multiplier=view["chipsMultiplier"],
    )


def _shown(players: list[str]) -> list[str]:
    more = len(players) - SHOWN_PLAYERS
    return players[:SHOWN_PLAYERS] + ([f"... and {more} more"] if more > 0 else [])


def _details(binding: BindResult) -> list[str]:
    out = []
    if binding.not_existed:
        out.append(f"players that do not exist ({len(binding.not_existed)}): {', '.join(_shown(list(binding.not_existed)))}")
    if binding.failed:
        out.append(f"players JDB failed to bind ({len(binding.failed)}): {', '.join(_shown(list(binding.failed)))}")
    return out


@dataclass
class _Live:
    row: EventInfo

    @property
    def event_id(self) -> EventId:
        return self.row["eventId"]

    @property
    def status(self) -> str:
        return str(self.row.get("status", ""))

    @property
    def count(self) -> int:
        return int(self.row.get("numberOfPlayers") or 0)

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def when(self) -> str:
        """What is known of when the event ended (JDB's documented Action 76 reply has no time)."""
        row = self.row
        if self.status == "EXPIRED":
            return f"its endTime {row['endTime']} has passed" if row.get("endTime") else "JDB does not report when"
        if row.get("updateTime"):
            return f"last updated {row['updateTime']}"
        return "JDB does not report when"

    def fingerprint_view(self) -> dict[str, Any]:
        return {**live_view(self.row), "eventId": str(self.event_id), "numberOfPlayers": self.count}

    def observed(self) -> str:
        row = self.row
        used = f", spins used {row.get('totalUseTimes')} of {row.get('totalTimes')}" if row.get("totalTimes") is not None else ""
        return f"observed: event {self.event_id} {self.status}, {self.count} players{used}, cash-out {row.get('totalCashout', '?')}"


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


class FreeSpinEventKind(Kind):
    """JDB free-spin reward events (see the module documentation)."""

    kind = "FreeSpinEvent"
    vendor = "jdb"
    Spec = FreeSpinEventSpec
    Scope = FreeSpinEventScope
    apply_order = 30

    def keys(self, res: Resource) -> list[tuple[str, Path_]]:
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
            p.base_url, dc=p.dc, key=ctx.config_secret(p.key), iv=ctx.config_secret(p.iv), parent=p.parent,
            timeout=p.timeout, retry=ctx.retry_policy(p),
            max_connections=p.concurrency, report_tz=p.report_timezone, requests_per_second=p.requests_per_second,
        )

    # -- validation ------------------------------------------------------------------------
    def check(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> list[Problem]:
        problems = self._provider_problems(resources or scopes, ctx)
        for r in resources:
            spec: FreeSpinEventSpec = r.spec
            problems.extend(r.problem(path, message) for path, message in spec_problems(spec))
            if spec.end <= ctx.options.now():
                ctx.warnings.append(str(r.problem(("endTime",), f"{spec.endTime} is past: the event is expired; a missing "
                                                  "one is not created (plan shows it as expired, nothing to do)")))
            if spec.playersFile is not None and spec.players is None:
                problems.extend(self._file_problems(r, ctx))
            problems.extend(r.problem(("bet",), message) for message in bet_problems(spec, ctx))
        return problems

    @staticmethod
    def _file_problems(r: Resource, ctx: RunContext) -> list[Problem]:
        spec: FreeSpinEventSpec = r.spec
        path = r.doc.base_dir / str(spec.playersFile)
        ctx.track_file(path, resource=r.ref)
        players, found = read_players_file(path)
        out = [r.problem(("playersFile",), message) for message in found]
        if spec.autoCreatePlayerEnabled and not found and len(players) != 1:
            out.append(r.problem(("autoCreatePlayerEnabled",),
                                 f"autoCreatePlayerEnabled needs exactly one player ({spec.playersFile} has {len(players)})"))
        excluded = set(spec.excludedPlayers)
        if excluded:
            out.extend(r.problem(("excludedPlayers",), f"player '{p}' is also in {spec.playersFile}")
                       for p in players if p in excluded)
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

    # -- plan ------------------------------------------------------------------------------
    def plan(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext) -> KindPlan:
        client: JdbClient = ctx.client(type(self))
        now = ctx.options.now()
        kp = KindPlan()
        by_agent: dict[str, list[Resource]] = defaultdict(list)
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
            read = self._read(client, agent, agent_resources, now)
            self._probe_renames(client, read, agent_resources, declared, ctx, budget)
            bound_to = {r.name: read.player_events.get(declared[r.name][0]) or set() if declared[r.name] else set()
                        for r in agent_resources}
            matches, ended = self._match(agent_resources, read.live, bound_to)
            self._read_players(client, read, agent_resources, matches, ended, declared, ctx, budget)
            claimed = {id(m) for m in (*matches.values(), *ended.values()) if m is not None}
            unclaimed = [e for e in read.live if id(e) not in claimed]
            for r in agent_resources:
                self._plan_one(r, declared[r.name], matches[r.name], ended[r.name], unclaimed, read, ctx, now, kp, unseen)
            self._plan_prune(read, unclaimed, scopes_by_agent[agent], ctx, kp)
        _cap(kp, ": expired: ", SHOWN_ENDED, "expired event(s) with nothing to do")
        _cap(kp, ": terminated out of band: ", SHOWN_ENDED, "event(s) terminated out of band (plan --drift --format json lists them all)")
        _cap(kp, "not bound again without spec.allowRebind", SHOWN_ENDED, "event(s) with declared players not bound again")
        if unseen:
            fields = ", ".join(f"{k} ({n} event(s))" for k, n in sorted(unseen.items()))
            how = ("a manifest changed since the baseline plan sends them again (an immutable one only when the "
                   "baseline shows its value)" if ctx.options.baseline is not None else
                   "a change to them in the manifests cannot be verified: plan with --last-applied PLANFILE (the last applied plan) "
                   "to send the fields of changed manifests")
            kp.warnings.append(
                f"FreeSpinEvent: JDB's replies do not carry {fields}: drift in them cannot be seen; {how} "
                "(docs/kinds/free-spin-event.md, 'What can be seen')")
        for k, n in sorted(unseen.items()):
            _uncompared(kp, k, "JDB's replies (Action 76, Action 71) do not carry it: a change made outside the "
                        "product cannot be seen", n)
        return kp

    @staticmethod
    def _read(client: JdbClient, agent: str, resources: list[Resource], now: datetime) -> _AgentRead:
        lo = min([now - LOOKBACK, *(r.spec.start for r in resources)])
        hi = max([now, *(r.spec.end for r in resources)]) + LOOKAHEAD
        rows = client.search_events(agent=agent, start=lo, end=hi)
        return _AgentRead(agent, (lo, hi), [_Live(row) for row in rows])

    @staticmethod
    def _match(resources: list[Resource], events: list[_Live], bound_to: dict[str, set[str]] | None = None
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
            twins = [e for e in live if id(e) not in claimed and e.row.get("name") not in declared_names
                     and e.status not in ENDED and str(e.event_id) in ours and _same_but_name(want, live_view(e.row))]
            if len(twins) == 1:
                matches[r.name] = twins[0]
                claimed.add(id(twins[0]))
        for r in resources:
            if matches[r.name] is not None:
                continue
            want = desired_view(r.spec)
            named = [e for e in terminated if e.row.get("name") == r.spec.name and id(e) not in claimed]
            twins = [e for e in terminated if id(e) not in claimed and e.row.get("name") not in declared_names
                     and _same_immutable(want, live_view(e.row))]
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

    @staticmethod
    def _read_players(client: JdbClient, read: _AgentRead, resources: list[Resource], matches: dict[str, _Live | None],
                      ended: dict[str, _Live | None], declared: dict[str, list[str]], ctx: RunContext,
                      budget: list[int]) -> None:
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
            if (ended[r.name] is not None or (event is not None and event.ended)) \
                    and declared[r.name] and len(uids) < budget[0]:
                uids.setdefault(declared[r.name][0], None)
        todo = [u for u in uids if u not in read.player_events]  # a rename probe may have read some
        budget[0] -= len(todo)
        FreeSpinEventKind._read_uids(client, read, todo, ctx)

    @staticmethod
    def _probe_renames(client: JdbClient, read: _AgentRead, resources: list[Resource], declared: dict[str, list[str]],
                       ctx: RunContext, budget: list[int]) -> None:
        """For each resource whose display name no live event has (a rename candidate), one Action
        71 of its first declared player (within the budget): the rows of the events that player is
        bound to carry ``times`` and ``endTime``, which a rename match needs to see agree."""
        names = {str(e.row.get("name")) for e in read.live if e.status != "TERMINATED"}
        declared_names = {r.spec.name for r in resources}
        others = [live_view(e.row) for e in read.live
                  if e.status not in ENDED and str(e.row.get("name")) not in declared_names]

        def candidate(r: Resource) -> bool:  # a live event it could be a rename of (same type and start)
            want = desired_view(r.spec)
            return any(v.get("type") == want["type"] and v.get("startTime") == want["startTime"] for v in others)

        uids = list(dict.fromkeys(declared[r.name][0] for r in resources
                                  if r.spec.name not in names and declared[r.name] and candidate(r)))[: max(0, budget[0])]
        budget[0] -= len(uids)
        FreeSpinEventKind._read_uids(client, read, uids, ctx)

    @staticmethod
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
        rows_of = dict(RunContext.map(events_of, list(uids), concurrency=concurrency,
                                      progress=(ctx, "JDB players: reading")))
        read.player_events.update({u: None if rows is None else {str(row.get("eventId")) for row in rows}
                                   for u, rows in rows_of.items()})
        for rows in rows_of.values():
            for row in rows or []:
                read.details.setdefault(str(row.get("eventId")), row)
        for event in read.live:
            extra = read.details.get(str(event.event_id))
            if extra is not None:
                for key in FROM_ACTION_71:
                    if key not in event.row and key in extra:
                        event.row[key] = extra[key]

    @staticmethod
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

    def _plan_one(self, r: Resource, declared: list[str], event: _Live | None, ended: _Live | None,
                  unclaimed: list[_Live], read: _AgentRead, ctx: RunContext, now: datetime, kp: KindPlan,
                  unseen: dict[str, int]) -> None:
        spec: FreeSpinEventSpec = r.spec
        want = desired_view(spec)
        again = None if spec.grantAgainAfter is None else str(spec.grantAgainAfter)
        gone = event if event is not None and event.status == "EXPIRED" else ended
        if gone is not None:
            kp.existing_in_scope += event is not None
            if again == str(gone.event_id) and spec.end > now:
                kp.changes.append(self._create(r, want, len(declared), unclaimed, ctx, read, again_of=gone))
            else:
                self._report_ended(r, gone, want, now, kp)
            return
        if event is None:
            if spec.end <= now:
                kp.noops += 1
                kp.warnings.append(f"{r.source}: {r.ref}: expired: endTime {spec.endTime} is past and JDB has no such "
                                   "event; nothing to do (JDB creates only events that end in the future)")
            else:
                kp.changes.append(self._create(r, want, len(declared), unclaimed, ctx, read))
            return
        kp.existing_in_scope += 1
        have = live_view(event.row)
        kp.live_exposure.append(_live_exposure(r, event, have, ctx))
        tz = spec.start.tzinfo
        diffs = [_diff(k, have[k], want[k], tz) for k in DECLARED if k in have and have[k] != want[k]]
        diffs += self._unseen_diffs(r, want, have, ctx, unseen)
        m = self._membership(spec, declared, event, read)
        self._warn_players(r, event, m, kp)
        self._gate_rebind(r, event, m, len(declared), ctx, kp)
        wrong_currency = self._check_currency(r, event, ctx, kp)
        _players_unseen(r, declared, event, m, read, kp)
        if any(d.path in IMMUTABLE for d in diffs):
            kp.changes.append(self._replace(r, want, event, diffs, len(declared), unclaimed, ctx))
        elif diffs or m.missing is None or m.missing or m.to_unbind:
            kp.changes.append(self._update(r, want, event, diffs, m, len(declared), ctx))
        else:
            kp.noops += 1
            return
        if wrong_currency and not kp.changes[-1].data.get("blocked"):
            kp.changes[-1].data["blocked"] = wrong_currency

    @staticmethod
    def _unseen_diffs(r: Resource, want: dict[str, Any], have: dict[str, Any], ctx: RunContext,
                      unseen: dict[str, int]) -> list[FieldDiff]:
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

    @staticmethod
    def _report_ended(r: Resource, event: _Live, want: dict[str, Any], now: datetime, kp: KindPlan) -> None:
        """An event of this resource ended: nothing is created again without ``grantAgainAfter``."""
        kp.noops += 1
        spec: FreeSpinEventSpec = r.spec
        hint = (f"to grant it again (a new event, all spins available again) set spec.grantAgainAfter: {event.event_id}"
                if spec.end > now else "nothing to do")
        if event.status == "TERMINATED":
            kp.out_of_band.append(r.ref)
            kp.warnings.append(f"{r.ref}: terminated out of band: event {event.event_id} was terminated outside the "
                               f"product ({event.when()}); it is not created again — {hint}")
            return
        have = live_view(event.row)
        diffs = [k for k in DECLARED if k in have and have[k] != want[k]]
        differs = f"; its differences ({', '.join(diffs)}) cannot be applied" if diffs else ""
        kp.warnings.append(f"{r.ref}: expired: event {event.event_id} has EXPIRED ({event.when()}){differs}; {hint}")
        if diffs:  # not the manifests' target, and never will be: never "matches"
            kp.differs.append(f"{r.ref}: event {event.event_id} has EXPIRED; its differences ({', '.join(diffs)}) "
                              "cannot be applied")

    @staticmethod
    def _warn_players(r: Resource, event: _Live, m: _Membership, kp: KindPlan) -> None:
        if m.not_existing:
            kp.warnings.append(f"{r.ref}: {len(m.not_existing)} declared player(s) do not exist under agent {r.spec.agent}: "
                               f"{', '.join(_shown(m.not_existing))}")
        if m.cannot_unbind:
            kp.warnings.append(f"{r.ref}: excluded player(s) still bound to event {event.event_id}, which is {event.status} "
                               f"(JDB unbinds only while INACTIVE): {', '.join(_shown(m.cannot_unbind))}")
        if m.unknown_extras:
            kp.warnings.append(f"{r.ref}: event {event.event_id} has {m.unknown_extras} bound player(s) that are not declared; "
                               "JDB cannot list them — name them under excludedPlayers to unbind them")

    @staticmethod
    def _gate_rebind(r: Resource, event: _Live, m: _Membership, count: int, ctx: RunContext, kp: KindPlan) -> None:
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
            who = (f"event {event.event_id} has {event.count} bound player(s) for {count} declared (too many to check one "
                   "by one): some declared players are not bound")
        else:
            who = f"{len(m.missing)} declared player(s) are not bound to event {event.event_id}: {', '.join(_shown(m.missing))}"
        kp.warnings.append(
            f"{r.ref}: {who}; they may have been unbound outside the product (Action 75), which JDB cannot tell from "
            "never bound: not bound again without spec.allowRebind: true or --force (or a manifest change shown by "
            "plan --last-applied)")
        m.missing = []

    @staticmethod
    def _check_currency(r: Resource, event: _Live, ctx: RunContext, kp: KindPlan) -> str:
        """A warning (and the reason a change of this event is blocked) when the live event pays in
        another currency than the declared one."""
        currency = declared_currency(r.spec, ctx)
        have = event.row.get("currency")
        if not currency or have in (None, "") or str(have) == currency:
            return ""
        reason = (f"event {event.event_id} pays in {have}, the manifest declares currency {currency}: JDB cannot change an "
                  "event's currency (it is the agent's); fix spec.currency or providers.jdb.currency")
        kp.warnings.append(f"{r.ref}: {reason}")
        return reason

    # -- changes ---------------------------------------------------------------------------
    def _base_data(self, r: Resource, want: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
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

    def _create(self, r: Resource, want: dict[str, Any], count: int, unclaimed: list[_Live], ctx: RunContext,
                read: _AgentRead, again_of: _Live | None = None) -> Change:
        notes, summary = locked_bets(r.spec, ctx), f"{count} player(s)"
        data = {**self._base_data(r, want, ctx), "bind": "all", "seen": _seen(want, unclaimed)}
        currency = data.get("currency")
        others = sorted({str(e.row["currency"]) for e in read.live if e.row.get("currency") not in (None, "")})
        if currency and others and others != [currency]:
            data["blocked"] = (f"the agent's events are in {', '.join(others)} and this manifest declares currency {currency}: "
                               "JDB sets the currency per agent (Action 72 has no currency), so the new event would pay "
                               "in another currency; fix spec.currency or providers.jdb.currency")
        if again_of is not None:
            how = "terminated out of band" if again_of.status == "TERMINATED" else "expired"
            notes.append(f"new grant: event {again_of.event_id} of this resource {how} ({again_of.when()}); "
                         f"spec.grantAgainAfter: {again_of.event_id} asks for a new event with every spin available again")
            summary = f"NEW GRANT after event {again_of.event_id}; {summary}"
            data["again"] = {"id": again_of.event_id, "status": again_of.status}
        return Change(
            kind=self.kind, vendor=self.vendor, key=r.name, action=Action.CREATE, resource=r.ref, source=r.source,
            diffs=[_diff(k, None, v, r.spec.start.tzinfo) for k, v in want.items() if v is not None]
            + [FieldDiff("players", None, count)],
            precondition={"exists": False}, calls=_create_calls(count), notes=notes,
            summary=summary, data=data,
            exposure=exposure(data.get("currency"), (0, None), (count, want), new_grant=True),
        )

    def _replace(self, r: Resource, want: dict[str, Any], event: _Live, diffs: list[FieldDiff], count: int,
                 unclaimed: list[_Live], ctx: RunContext) -> Change:
        immutable = ", ".join(d.path for d in diffs if d.path in IMMUTABLE)
        data = {**self._base_data(r, want, ctx), "bind": "all", "event": _event_ref(event), "seen": _seen(want, unclaimed)}
        live = event.status == "ACTIVE"
        if r.protected:
            data["blocked"] = "the resource is marked metadata.protected; it is never replaced"
        elif not (ctx.options.allow_replace or r.spec.allowReplace):
            data["blocked"] = (f"{immutable} cannot change on a live JDB event: it must be terminated and created again; "
                               "pass --allow-replace or set spec.allowReplace: true")
        elif live and not (ctx.options.force or r.spec.allowLiveChanges):
            data["blocked"] = (f"event {event.event_id} is ACTIVE (a running promotion): replacing it ends it for its players; "
                               "set spec.allowLiveChanges: true or add --force")
        calls = _create_calls(count)
        calls.insert(2, f"JDB action 73 (terminate event {event.event_id}, once the new event is confirmed)")
        notes = [f"{immutable} cannot be updated in place", event.observed()]
        if live:
            notes.insert(0, RUNNING + f": event {event.event_id} is ACTIVE; its players lose what is left of it")
        return Change(
            kind=self.kind, vendor=self.vendor, key=r.name, action=Action.REPLACE, resource=r.ref, source=r.source,
            diffs=diffs, precondition=_precondition(event, ctx), calls=calls, notes=notes,
            summary=f"{RUNNING + ': ' if live else ''}event {event.event_id} {event.status}", data=data,
            exposure=exposure(_live_currency(event, data.get("currency")), (event.count, live_view(event.row)),
                              (count, want), new_grant=True),
        )

    def _update(self, r: Resource, want: dict[str, Any], event: _Live, diffs: list[FieldDiff], m: _Membership,
                count: int, ctx: RunContext) -> Change:
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
        data = {**self._base_data(r, want, ctx), "event": _event_ref(event), "update": update,
                "bind": "all" if m.missing is None else m.missing, "unbind": m.to_unbind}
        notes = [event.observed(), *(locked_bets(r.spec, ctx) if any(d.path == "bet" for d in diffs) else [])]
        live = event.status == "ACTIVE"
        if live:
            money = [d.path for d in diffs if d.path in LIVE_GUARDED or d.path.startswith("players")]
            notes.insert(0, RUNNING + f": event {event.event_id} is ACTIVE; players may be using it now")
            if money and not (ctx.options.force or r.spec.allowLiveChanges):
                data["blocked"] = (f"event {event.event_id} is ACTIVE (a running promotion): changing {', '.join(dict.fromkeys(money))} "
                                   "changes what its players are being paid; set spec.allowLiveChanges: true or add --force")
        return Change(
            kind=self.kind, vendor=self.vendor, key=r.name, action=Action.UPDATE, resource=r.ref, source=r.source,
            diffs=diffs, precondition=_precondition(event, ctx), calls=calls, notes=notes,
            summary=f"{RUNNING + ': ' if live else ''}event {event.event_id}{players}", data=data,
            exposure=exposure(_live_currency(event, data.get("currency")), (event.count, live_view(event.row)),
                              (event.count + added - len(m.to_unbind), want), new_grant=False,
                              players_upper=m.missing is None),
        )

    def _plan_prune(self, read: _AgentRead, unclaimed: list[_Live], scopes: list[ScopeDecl], ctx: RunContext,
                    kp: KindPlan) -> None:
        for event in unclaimed:
            if event.status in ENDED:
                continue  # history, nothing to do
            key = f"{read.agent}/{event.event_id}"
            name = str(event.row.get("name", ""))
            scope = next((s for s in scopes if name.startswith(s.spec.namePrefix)), None)
            if scope is None:
                kp.unmanaged.append(Unmanaged(self.kind, self.vendor, key, f"'{name}' {event.status}: not declared; outside every prune scope"))
            elif name in scope.protect or str(event.event_id) in scope.protect:
                kp.unmanaged.append(Unmanaged(self.kind, self.vendor, key, f"'{name}': protected by {scope.ref}"))
            elif event.status == "ACTIVE" and not ctx.options.force:
                kp.unmanaged.append(Unmanaged(self.kind, self.vendor, key, f"'{name}' is ACTIVE: terminating it needs --force"))
                kp.warnings.append(f"{scope.ref}: event {event.event_id} '{name}' is ACTIVE and not declared; it is terminated only with --force")
            else:
                kp.existing_in_scope += 1
                kp.changes.append(Change(
                    kind=self.kind, vendor=self.vendor, key=key, action=Action.DELETE, source=scope.ref,
                    diffs=[FieldDiff(k, v, None) for k, v in live_view(event.row).items()],
                    precondition=_precondition(event, ctx), calls=[f"JDB action 73 (terminate event {event.event_id})"],
                    notes=[f"not declared; inside {scope.ref}", event.observed()],
                    summary=f"event {event.event_id} {event.status}",
                    data={"agent": read.agent, "event": _event_ref(event)},
                    exposure=exposure(_live_currency(event, _provider_currency(ctx)), (event.count, live_view(event.row)),
                                      (0, None), new_grant=False),
                ))

    # -- apply -----------------------------------------------------------------------------
    def apply(self, changes: list[Change], ctx: RunContext) -> list[Outcome]:
        client: JdbClient = ctx.client(type(self))
        concurrency = ctx.config.providers.jdb.concurrency if ctx.config.providers.jdb else 1
        steps = {Action.CREATE: self._apply_create, Action.REPLACE: self._apply_replace,
                 Action.UPDATE: self._apply_update, Action.DELETE: self._apply_delete}
        return RunContext.map(lambda c: outcome_of(c, lambda: steps[c.action](c, client, ctx)), changes,
                              concurrency=concurrency)

    def _apply_delete(self, c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
        _terminate(client, c.data["agent"], c.data["event"], ctx.options.now())
        return Outcome(c, "applied", f"event {c.data['event']['id']} terminated")

    def _apply_replace(self, c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
        """Create the new event first (no players), confirm it is this manifest's, then terminate
        the old one and bind the players. The new event's ``transactionId`` comes from the declared
        content (:func:`replacement_id`): a replace planned again for the same manifest asks JDB
        with the same key and gets the same event back, so it terminates and creates at most once."""
        _check_end(c, ctx)
        return self._create_event(c, client, ctx, again=True, replacing=c.data["event"])

    def _apply_create(self, c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
        _check_end(c, ctx)
        return self._create_event(c, client, ctx, again="again" in c.data)

    @staticmethod
    def _create_event(c: Change, client: JdbClient, ctx: RunContext, *, again: bool,
                      replacing: dict[str, Any] | None = None) -> Outcome:
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
            return Outcome(c, "failed", (
                f"not replaced again: the transactionId of this declared content answers event {replacing['id']} itself, "
                "so the replace for this manifest was already made; JDB answers the fields above differently than they "
                "were sent. Nothing was terminated or created; change the manifest to what JDB keeps, or raise "
                "spec.generation to ask for a new event"))
        result, label = created
        agent, event_id = d["agent"], result.event_id
        ref = {"id": event_id, "startTime": d["desired"]["startTime"], "endTime": d["desired"]["endTime"]}
        done = ""
        if replacing is not None:
            try:
                _terminate(client, agent, replacing, now)
            except ReconcilerError as exc:
                raise ReconcilerError(f"the new event {event_id} ({label}) was created with no player bound, but the old event "
                                      f"{replacing['id']} was NOT terminated and still runs: {exc}") from None
            done = f"old event {replacing['id']} TERMINATED; "
        binding, todo = BindResult(), players
        if auto:
            binding, todo = _auto_bound(client, agent, ref, auto, result)
            todo = todo + players[1:]
        try:
            binding = binding + (_bind(client, agent, ref, todo, now) if todo else BindResult())
        except ReconcilerError as exc:
            raise ReconcilerError(f"{done}new event {event_id} ({label}) created; binding its players failed: {exc}; "
                                  "the next plan shows who is not bound") from None
        head = f"{done}event {event_id} ({label})"
        missing = len(binding.failed) + len(binding.not_existed)
        bound = len(players) - missing
        if missing:
            return Outcome(c, "failed", f"{head} created; PARTIAL GRANT: {bound} of {len(players)} player(s) bound, "
                           f"{missing} not bound (named below)", _details(binding))
        return Outcome(c, "applied", f"{head}; {bound} of {len(players)} player(s) bound", _details(binding))

    def _apply_update(self, c: Change, client: JdbClient, ctx: RunContext) -> Outcome:
        d = c.data
        ref = d["event"]
        now = ctx.options.now()
        if d["update"]:
            seen_changed = [x.path for x in c.diffs if x.path in MUTABLE and x.before != NOT_RETURNED]
            try:
                _update(client, d["agent"], ref, d["desired"], now, proof=seen_changed)
            except JdbEventStateError as exc:
                raise ReconcilerError(f"JDB refused to update event {ref['id']} (Action 77): {exc.vendor_message}; nothing "
                                      "was changed (JDB may not update an ACTIVE event: terminate and create it again "
                                      "with spec.allowReplace, or wait)") from None
        to_bind = _change_players(c) if d["bind"] == "all" else list(d["bind"])
        binding = _bind(client, d["agent"], ref, to_bind, now) if to_bind else BindResult()
        if d["unbind"]:
            _unbind(client, d["agent"], ref, d["unbind"])
        message = f"event {ref['id']}; {len(to_bind)} player(s) sent to bind, {len(d['unbind'])} unbound"
        missing = len(binding.failed) + len(binding.not_existed)
        if missing:
            return Outcome(c, "failed", f"{message}; PARTIAL GRANT: {missing} player(s) not bound (named below)",
                           _details(binding))
        return Outcome(c, "applied", message, _details(binding))

    # -- export (DR, adoption) -----------------------------------------------------------------
    def export(self, resources: list[Resource], scopes: list[ScopeDecl], ctx: RunContext,
               request: ExportRequest) -> KindExport:
        """Events of every agent the manifests or ``request.agents`` name (one Action 76 each, the
        plan's read window), one ``jdb/<agent>/free-spins.yaml`` per agent; see :func:`export_event`."""
        client: JdbClient = ctx.client(type(self))
        now = ctx.options.now()
        by_agent: dict[str, list[Resource]] = defaultdict(list)
        for r in resources:
            by_agent[r.spec.agent].append(r)
        agents = sorted(set(by_agent) | {s.spec.agent for s in scopes} | set(request.agents))
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
            matches, _ = self._match(rs, read.live)  # (terminated events are not read here)
            owners = {id(e): r for r in rs if (e := matches[r.name]) is not None}
            _fill_from_player_events(client, read, owners, ctx)
            export_agent(agent, read.live, owners, taken, request, out)
        return out


# -- helpers used by plan and apply -------------------------------------------------------------
def _cap(kp: KindPlan, marker: str, shown: int, what: str) -> None:
    """Keep the first ``shown`` warnings containing ``marker``; count the rest in one line."""
    matching = [w for w in kp.warnings if marker in w]
    if len(matching) <= shown:
        return
    dropped = set(matching[shown:])
    kp.warnings = [w for w in kp.warnings if w not in dropped]
    kp.warnings.append(f"FreeSpinEvent: ... and {len(dropped)} more {what}")


def _same_immutable(want: dict[str, Any], have: dict[str, Any]) -> bool:
    return all(have[k] == want[k] for k in IMMUTABLE if k in have)


def _same_but_name(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """A live event is this renamed manifest's only when every declared field JDB returned agrees
    and the end and spins were seen (Action 76, or Action 71 rows of a declared player bound to it):
    type and start alone match any event made in the back office for the same day."""
    needed = ["endTime"] + (["times"] if want.get("times") is not None else [])
    return all(k in have for k in needed) and all(have[k] == want[k] for k in DECLARED if k != "name" and k in have)


def _seen(want: dict[str, Any], events: list[_Live]) -> dict[str, str]:
    """Events a create's ``transactionId`` may answer with that are not new: the unclaimed ones
    (terminated included) the plan saw with the declared type, times, start and end."""
    return {str(e.event_id): e.status for e in events if _same_immutable(want, live_view(e.row))}


def _calls(count: int) -> int:
    return max(1, -(-count // MAX_PLAYERS_PER_CALL))


def _create_calls(count: int) -> list[str]:
    calls = ["JDB action 72 (create, no players)",
             "JDB action 76 (confirm the answered event is the declared one before anyone is bound)"]
    if count:
        calls.append(f"JDB action 74 x {_calls(count)} (bind the players, 50,000 per call)")
    return calls


UNBOUNDED: Final = "unbounded"


def _amount(value: Decimal) -> str:
    """A money figure as a plain decimal string (no exponent, no trailing zeros)."""
    return "0" if value == 0 else format(value.normalize(), "f")


def _grant(view: dict[str, Any], players: int | None) -> tuple[str | None, str | None]:
    """(stake, withdrawal ceiling) of an event with ``players`` bound, from the fields of ``view``;
    None where a factor is unknown (not returned by JDB). Stake: players x spins x bet (BONUSCHIPS:
    players x bonusChips); ceiling: players x maxWithdrawal, or "unbounded" for -1."""
    if players is None:
        return None, None
    if view.get("type") == "BONUSCHIPS":
        chips = view.get("bonusChips")
        stake = None if chips is None else _amount(players * Decimal(str(chips)))
    else:
        times, bet = view.get("times"), view.get("bet")
        stake = None if times is None or bet is None else _amount(players * int(times) * Decimal(str(bet)))
    cap = view.get("maxWithdrawal")
    ceiling = None if cap is None else UNBOUNDED if Decimal(str(cap)) == -1 else _amount(players * Decimal(str(cap)))
    return stake, ceiling


def exposure(currency: str | None, before: tuple[int | None, dict[str, Any] | None],
             after: tuple[int | None, dict[str, Any] | None], *, new_grant: bool, players_upper: bool = False
             ) -> dict[str, Any]:
    """The money a change grants: ``before``/``after`` are (players bound, event fields), fields
    None for no event. Before figures use what JDB returned (unknown where it returned no value);
    after figures what the manifest declares (what apply sends). ``stake_added``: the whole new
    grant for a create or replace (a new event, every spin available), else the increase (at most
    the stake after when the stake before is unknown). ``upper_bounds`` names figures that are
    worst cases rather than exact (the players bound after a re-bind of every declared player)."""
    (pb, vb), (pa, va) = before, after
    sb, cb = _grant(vb, pb) if vb is not None else ("0", "0")
    sa, ca = _grant(va, pa) if va is not None else ("0", "0")
    bounds = {"players_after", "stake_after", "ceiling_after"} if players_upper else set()
    if new_grant or sa is None:
        added = sa
    elif sb is None:
        added = sa
        bounds.add("stake_added")
    else:
        added = _amount(max(Decimal(0), Decimal(sa) - Decimal(sb)))
    if players_upper and added is not None:
        bounds.add("stake_added")
    return {"currency": currency, "players_before": pb, "players_after": pa, "stake_before": sb, "stake_after": sa,
            "stake_added": added, "ceiling_before": cb, "ceiling_after": ca, "upper_bounds": sorted(bounds)}


def _live_exposure(r: Resource, event: _Live, have: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
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
    return {"resource": r.ref, "currency": _live_currency(event, declared_currency(r.spec, ctx)),
            "players": event.count, "stake": stake, "ceiling": ceiling, "from_last_applied": filled}


def _live_currency(event: _Live, declared: str | None) -> str | None:
    have = event.row.get("currency")
    return declared if have in (None, "") else str(have)


def _event_ref(event: _Live) -> dict[str, Any]:
    return {"id": event.event_id, "startTime": event.row["startTime"], "endTime": event.row.get("endTime")}


def _precondition(event: _Live, ctx: RunContext) -> dict[str, Any]:
    return {"fingerprint": ctx.live_fingerprint(event.fingerprint_view())}


def _check_end(c: Change, ctx: RunContext) -> None:
    end = parse_iso(c.data["desired"]["endTime"])
    if end <= ctx.options.now():
        raise UsageError(f"endTime {end.isoformat()} is already past: JDB creates only events that end in the future; "
                         "move spec.endTime or remove the manifest")


def _change_players(c: Change) -> list[str]:
    players = c.data["players"]
    if "file" in players:
        return read_players_file(Path(c.source.rsplit(":", 1)[0]).parent / players["file"])[0]
    return list(players["list"])


def _find(client: JdbClient, agent: str, ref: dict[str, Any], now: datetime) -> EventInfo | None:
    """Read one event back by its key (Action 76 with ``eventId``)."""
    start = parse_iso(ref["startTime"])
    end = parse_iso(ref["endTime"]) if ref.get("endTime") else start
    rows = client.search_events(agent=agent, start=min(start, now) - LOOKBACK, end=max(end, now) + LOOKAHEAD,
                                event_id=ref["id"])
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


def _update(client: JdbClient, agent: str, ref: dict[str, Any], want: dict[str, Any], now: datetime, *,
            proof: Sequence[str] = ()) -> None:
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


def _bind_refused(client: JdbClient, agent: str, ref: dict[str, Any], chunk: list[str], now: datetime,
                  exc: JdbEventStateError) -> BindResult:
    """Action 74 refused while the event still takes players: a JDB may refuse a call that holds a
    bound player (not documented). Within the read budget the chunk's players are read back (Action
    71) and only the unbound ones are sent again; a larger chunk cannot be checked and fails, saying so."""
    if _status(client, agent, ref, now) not in ("INACTIVE", "ACTIVE"):
        raise exc
    if len(chunk) > PLAYER_READ_BUDGET:
        raise ReconcilerError(
            f"JDB refused to bind {len(chunk)} player(s) to event {ref['id']} ({exc.vendor_message}); if it refuses calls "
            f"that hold an already bound player, more than {PLAYER_READ_BUDGET} players cannot be checked one by one: "
            "list the players that are not bound (the plan names them when they fit its read budget)") from None
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


def _create(client: JdbClient, data: dict[str, Any], now: datetime, *, again: bool,
            replacing: dict[str, Any] | None = None, players: Sequence[str] = ()) -> tuple[CreateResult, str] | None:
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
        keys = [(f"replacement {n}", replacement_id(agent, identity, generation, scope, want, n), generation)
                for n in range(1, MAX_GENERATION_PROBES + 1)]
    else:
        keys = [(f"generation {g}", transaction_id(agent, identity, g, scope), g)
                for g in range(generation, generation + MAX_GENERATION_PROBES)]
    opt_in = again or replacing is not None
    sent = ("; the one player sent with it (autoCreatePlayerEnabled) may have been bound to it by JDB"
            if players else "; nothing was bound to it")
    for label, tid, gen in keys:
        result = client.create_event(agent=agent, draft=draft, transaction_id=tid, players=players,
                                     auto_create_player=bool(players))
        if replacing is not None and str(result.event_id) == str(replacing["id"]):
            return None
        row = _find(client, agent, {"id": result.event_id, "startTime": want["startTime"], "endTime": want["endTime"]}, now)
        if row is None:
            if opt_in:
                continue
            raise ReconcilerError(
                f"Action 72 with the transactionId of {label} answered event {result.event_id}, which Action 76 does not "
                f"list (an event this key made that JDB no longer keeps, or not this agent's): not reported as created{sent}; "
                f"set spec.generation to {gen + 1} or more for a new event")
        status = str(row.get("status"))
        if status in ENDED:
            if opt_in:
                continue  # this key made an event that has ended: the opt-in asks for a new one
            raise ReconcilerError(
                f"the transactionId of {label} belongs to event {result.event_id}, which is {status}: it ended "
                f"outside the product and is not granted again{sent}; set spec.grantAgainAfter: {result.event_id} to grant it again")
        wrong = _mismatch(want, row, currency)
        if wrong:
            raise ReconcilerError(
                f"Action 72 with the transactionId of {label} answered event {result.event_id} '{row.get('name')}' ({status}), "
                f"which is not the event this manifest declares ({'; '.join(wrong)}){sent}; if it is this manifest's own "
                "event, renamed together with another change, rename it alone first; if it is another environment's "
                f"or connection's on this agent, set spec.generation to {gen + 1} or more "
                "(docs/kinds/free-spin-event.md, 'Idempotency')")
        return result, label
    raise ReconcilerError(f"{keys[0][0]}-{keys[-1][0]}: every transactionId tried answers an event that has ended or is no "
                          "longer listed; raise spec.generation")


def _mismatch(want: dict[str, Any], row: EventInfo, currency: str | None) -> list[str]:
    """The declared fields the answered event shows otherwise (only fields JDB returned)."""
    have = live_view(row)
    out = [f"{k}: JDB has {have[k]}, declared {want[k]}" for k in DECLARED if k in have and have[k] != want[k]]
    if currency and row.get("currency") not in (None, "") and str(row.get("currency")) != currency:
        out.append(f"currency: JDB has {row.get('currency')}, declared {currency}")
    return out


def _auto_bound(client: JdbClient, agent: str, ref: dict[str, Any], auto: list[str],
                result: CreateResult) -> tuple[BindResult, list[str]]:
    """What became of the one player sent with Action 72 (``autoCreatePlayerEnabled``): the answer's
    lists when they are known, else Action 71; returns the binding and the players still to bind."""
    if result.binding_known:
        return result.binding, []
    bound = _bound(client, agent, auto[0], ref["id"])
    return BindResult(), [] if bound else list(auto)


def _ladders(ctx: RunContext) -> dict[int, list[Decimal]]:
    provider = ctx.config.providers.jdb
    ladders: dict[int, list[str]] = getattr(provider, "bet_ladders", None) or {}
    return {m: sorted(Decimal(v) for v in values) for m, values in ladders.items() if values}


def bet_problems(spec: FreeSpinEventSpec, ctx: RunContext) -> list[str]:
    """The declared bet against ``providers.jdb.bet_ladders`` (before any call): Action 72 needs a
    bet above every chosen game's smallest bet (JDB locks the largest ladder value not above it)."""
    ladders, bet = _ladders(ctx), Decimal(spec.bet)
    return [f"bet {spec.bet} is below the smallest bet {_money(ladders[m][0])} of machine type {m} "
            f"(providers.jdb.bet_ladders; Action 72: the bet must reach every chosen game's smallest bet)"
            for m in spec.machineTypes if m in ladders and bet < ladders[m][0]]


def locked_bets(spec: FreeSpinEventSpec, ctx: RunContext) -> list[str]:
    """Where JDB will lock a smaller bet than declared (seed, Action 72: the largest ladder value not
    above ``bet``), and the machine types whose ladder is not configured (nothing checked)."""
    ladders, bet = _ladders(ctx), Decimal(spec.bet)
    if not ladders:
        return []
    out = [f"bet: JDB locks {_money(max(v for v in ladders[m] if v <= bet))} on machine type {m} (declared {spec.bet})"
           for m in spec.machineTypes if m in ladders and ladders[m][0] <= bet and bet not in ladders[m]]
    unknown = [str(m) for m in spec.machineTypes if m not in ladders]
    if unknown:
        out.append(f"bet not checked for machine type(s) {', '.join(unknown)}: no providers.jdb.bet_ladders entry")
    return out


def _provider_currency(ctx: RunContext) -> str | None:
    provider = ctx.config.providers.jdb
    return getattr(provider, "currency", None) if provider is not None else None


def declared_currency(spec: FreeSpinEventSpec, ctx: RunContext) -> str | None:
    """The currency an event must pay in: ``spec.currency``, else ``providers.jdb.currency``."""
    if spec.currency:
        return spec.currency
    provider = ctx.config.providers.jdb
    return getattr(provider, "currency", None) if provider is not None else None


def _scope_of(ctx: RunContext) -> str:
    connection = ctx.config.connection[1] if ctx.config.connection else None
    return key_scope(ctx.config.env, connection)


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


# -- export -------------------------------------------------------------------------------------
EXPORT_LOOKAHEAD = timedelta(days=366 * 20)
"""How far ahead an export looks for events (the plan looks two years past the declared ones)."""
PLAYERS_NOT_LISTED = ("JDB has no call that lists an event's players (Action 76 returns only numberOfPlayers): "
                      "the players file lists the players a manifest declared; fill in the others")


def _event_slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    return slug[:200] or "event"


def export_event(agent: str, event: _Live, owner: Resource | None, name: str,
                 request: ExportRequest) -> tuple[ExportDoc, ExportFile]:
    """One live event as a document and its players file (``players/<name>.txt``).

    Times are written exactly as JDB returned them (milliseconds and offset). A field Action 76 did
    not return is taken from the declaring manifest (with a comment saying so) or written as a
    comment asking for it, never invented. Status, counters and ``eventId`` are comments."""
    row: dict[str, Any] = dict(event.row)
    spec: dict[str, Any] = {"name": row.get("name"), "agent": agent}
    doc = ExportDoc("FreeSpinEvent", name, spec, protected=bool(owner and owner.protected),
                    protect_key=str(event.event_id))
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
    doc.comments.append(event.observed().replace("observed: ", "server-owned, not restored: "))
    players = declared_players(owner.spec, owner.doc.base_dir) if owner is not None else []
    head = [f"Players of JDB event {event.event_id} '{row.get('name')}' (agent {agent}): JDB reports {event.count} bound.",
            "JDB has no call that lists an event's players, so this list cannot be read back from JDB.",
            (f"Listed: the {len(players)} player(s) {owner.source} declared." if owner is not None
             else "Fill in the player IDs (one per line) before applying, or the restored event has no players."),
            "One player ID per line; blank lines and lines starting with # are ignored."]
    text = "".join(f"# {line}\n" for line in head) + "".join(f"{p}\n" for p in players)
    return doc, ExportFile(players_path, text, ref=doc.ref)


def _fill_from_player_events(client: JdbClient, read: _AgentRead, owners: dict[int, Resource], ctx: RunContext) -> None:
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
    found = {str(row.get("eventId")): row for rows in RunContext.map(rows_of, list(wanted), concurrency=concurrency)
             for row in rows}
    for events in wanted.values():
        for event in events:
            extra = found.get(str(event.event_id), {})
            for key in EXPORT_FROM_ACTION_71:
                if key not in event.row and key in extra:
                    event.row[key] = extra[key]


def export_agent(agent: str, live: list[_Live], owners: dict[int, Resource], taken: set[str],
                 request: ExportRequest, out: KindExport) -> None:
    """An agent's live events (not terminated) as ``jdb/<agent>/free-spins.yaml``."""
    base = f"jdb/{_event_slug(agent) if agent != _event_slug(agent) else agent}"
    group = ExportGroup(f"{base}/free-spins.yaml", header=[
        f"JDB free-spin events of agent {agent}, exported from live state (Action 76).",
        "Times are the exact instants JDB returned (spelled as a declaring manifest spells them). " + PLAYERS_NOT_LISTED + ".",
    ])
    names = taken
    owned = {str(e.row.get("name", "")) for e in live if id(e) in owners}  # display names manifests keep
    shown: set[str] = set()
    for event in sorted(live, key=lambda e: (_instant(e.row["startTime"]) if e.row.get("startTime") else "", str(e.event_id))):
        owner = owners.get(id(event))
        if request.unmanaged and owner is not None:
            continue
        display = str(event.row.get("name", ""))
        if event.status in ENDED:
            group.header.append(f"not exported: event {event.event_id} '{display}' {event.status} (ended "
                                f"{event.row.get('endTime', '?')}); JDB creates only events that end in the future")
            continue
        if owner is None and (display in shown or display in owned):
            group.header.append(f"not exported: event {event.event_id} '{display}' has the display name of another "
                                "exported event (a manifest identifies events of an agent by display name)")
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
        doc, players = export_event(agent, event, owner, name, request)
        players.path = f"{base}/{players.path}"
        group.docs.append(doc)
        out.files.append(players)
    if group.docs or len(group.header) > 2:
        group.keep = True
        out.groups.append(group)
    if group.docs:
        out.notes.append(f"FreeSpinEvent: {PLAYERS_NOT_LISTED} ({base}/players/)")

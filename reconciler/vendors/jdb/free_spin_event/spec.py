"""FreeSpinEvent's declared input: the spec and prune-scope models, the rules across fields, the
players file, and the checks of a spec against the JDB connection (bet ladders, currency)."""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from reconciler.manifest import confine
from reconciler.errors import MAX_PROBLEMS_PER_FILE
from reconciler.manifest.yamlload import Path_


KIND: Final = "FreeSpinEvent"
VENDOR: Final = "jdb"
PLAYER_READ_BUDGET = 100
"""Action 71 calls one plan may make, over all agents (JDB has no call that lists an event's
players). An agent's declared players are checked one by one only while they fit in what is left
of the budget; otherwise membership is judged by the event's ``numberOfPlayers`` and missing
players are bound by re-binding the whole list. Excluded players are checked first (at most this
many may be declared). A plan's JDB calls are therefore one Action 76 per agent plus at most this."""
VERIFY_LIMIT = PLAYER_READ_BUDGET  # kept for readers of the old name


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
Money = Annotated[
    StrictStr,
    _matcher(MONEY, 'not an amount: a decimal string with at most 3 decimals, e.g. "2.5"'),
    Field(json_schema_extra={"pattern": f"^{MONEY}$"}),
]
Withdrawal = Annotated[
    StrictStr,
    _matcher(f"-1|{MONEY}", 'not an amount: a decimal string with at most 3 decimals, or "-1" for no limit'),
    Field(json_schema_extra={"pattern": f"^(-1|{MONEY})$"}),
]
PlayerId = Annotated[
    StrictStr,
    _matcher(r"\S{1,50}", "a player ID has 1-50 characters and no spaces"),
    Field(json_schema_extra={"pattern": r"^\S{1,50}$"}),
]


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
        default=False, description="Action 72: JDB creates the player account if missing; needs exactly one player"
    )
    grantAgainAfter: StrictInt | StrictStr | None = Field(
        default=None,
        description="the eventId of this resource's event that ended outside the product (terminated or "
        "expired): create a new grant anyway; the plan shows it as a new grant",
    )
    allowReplace: StrictBool = Field(default=False, description="allow terminate + create when an immutable field changes")
    allowLiveChanges: StrictBool = Field(
        default=False,
        description="allow changing bet, withdrawal limits, spins or players of an ACTIVE event (a running "
        "promotion); --force does the same for one run",
    )
    allowRebind: StrictBool = Field(
        default=False,
        description="bind declared players that are not bound to the existing event again, even when they "
        "may have been unbound outside the product (Action 75)",
    )
    createAfterRetention: StrictBool = Field(
        default=False,
        description="create the event although its startTime is more than 180 days past and JDB shows no "
        "such event: JDB forgets an event 180 days after it expires (possibly counted from when it was "
        "stopped), so without this the create is blocked; set it only for an event never granted (a "
        "restore into a new JDB)",
    )
    currency: Annotated[StrictStr, Field(min_length=1, max_length=10)] | None = Field(
        default=None,
        description="JDB currency code the event must pay in (default: providers.jdb.currency); JDB sets it "
        "per agent, Action 72 has no currency: a mismatch is refused before binding",
    )

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
        out.extend(
            ((f,), f"{f} must be greater than 0")
            for f in ("bonusChips", "chipsMultiplier")
            if getattr(spec, f) is not None and Decimal(getattr(spec, f)) == 0
        )
    else:
        if spec.times is None:
            out.append((("type",), f"{spec.type} events need times (spins per player)"))
        out.extend(
            ((f,), f"{f} is only for BONUSCHIPS events")
            for f in ("bonusChips", "chipsMultiplier")
            if getattr(spec, f) is not None
        )
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
    out.extend(
        (("excludedPlayers", i), f"player '{p}' is also in players") for i, p in enumerate(spec.excludedPlayers) if p in declared
    )
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

"""FreeSpinEvent compare/normalise: the declared and live views of an event in one comparable
shape (money and times normalised; a field JDB did not return is left out, never compared)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from reconciler.vendors.jdb.client import BindResult, EventDraft, EventId, EventInfo, parse_iso
from reconciler.model import FieldDiff
from reconciler.vendors.jdb.free_spin_event.spec import FreeSpinEventSpec


MUTABLE = ("name", "machineTypes", "bet", "minWithdrawal", "maxWithdrawal")
IMMUTABLE = ("type", "times", "startTime", "endTime", "bonusChips", "chipsMultiplier")
DECLARED = (*IMMUTABLE, *MUTABLE)
ENDED = ("TERMINATED", "EXPIRED")
SHOWN_PLAYERS = 10
NOT_RETURNED = "(not returned by JDB; manifest changed since the baseline plan)"


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
        "name": spec.name,
        "type": spec.type,
        "times": spec.times,
        "startTime": _instant(spec.start),
        "endTime": _instant(spec.end),
        "machineTypes": sorted(spec.machineTypes),
        "bet": _money(spec.bet),
        "minWithdrawal": _money(spec.minWithdrawal),
        "maxWithdrawal": _money(spec.maxWithdrawal),
        "bonusChips": _money(spec.bonusChips),
        "chipsMultiplier": _money(spec.chipsMultiplier),
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
        name=view["name"],
        start=parse_iso(view["startTime"]),
        end=parse_iso(view["endTime"]),
        machine_types=tuple(view["machineTypes"]),
        bet=view["bet"],
        type=view["type"],
        min_withdrawal=view["minWithdrawal"],
        max_withdrawal=view["maxWithdrawal"],
        times=view["times"],
        bonus_chips=view["bonusChips"],
        chips_multiplier=view["chipsMultiplier"],
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
        return (
            f"observed: event {self.event_id} {self.status}, {self.count} players{used}, cash-out {row.get('totalCashout', '?')}"
        )


def _same_immutable(want: dict[str, Any], have: dict[str, Any]) -> bool:
    return all(have[k] == want[k] for k in IMMUTABLE if k in have)


def _same_but_name(want: dict[str, Any], have: dict[str, Any]) -> bool:
    """A live event is this renamed manifest's only when every declared field JDB returned agrees
    and the end and spins were seen (Action 76, or Action 71 rows of a declared player bound to it):
    type and start alone match any event made in the back office for the same day."""
    needed = ["endTime"] + (["times"] if want.get("times") is not None else [])
    return all(k in have for k in needed) and all(have[k] == want[k] for k in DECLARED if k != "name" and k in have)

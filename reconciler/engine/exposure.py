"""Promotional exposure of a plan (issue 27): what its free-spin changes grant, summed per
connection and currency, and the trusted budgets that gate it.

A kind states each change's figures (``Change.exposure``: stake and withdrawal ceiling before and
after, decimal strings, None where unknown); this module only adds them up with :class:`Decimal`
(never a float: money) and compares them with ``settings.exposure_budgets``. A figure that is
unknown is never taken as zero: totals say how many events they leave out, and a budget cannot be
shown kept by an unknown figure, so it is over budget until approved.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reconciler.manifest.config import ExposureBudget, Settings
from reconciler.model import Action, Change, Plan

UNBOUNDED = "unbounded"
UNKNOWN = "unknown"
APPROVE_HINT = "approve with --approve-exposure (or --force)"
MAX_EVENTS_NAMED = 5  # per budget finding: the first events over it, the rest counted


def money(value: str | int | Decimal | None) -> str:
    """A figure for people: thousands separated, "unknown" for None, "unbounded" as it is."""
    if value is None:
        return UNKNOWN
    if value == UNBOUNDED:
        return UNBOUNDED
    number = Decimal(str(value))
    whole, _, frac = format(number, "f").partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-') or 0):,}"
    frac = frac.rstrip("0")
    return sign + grouped + (f".{frac}" if frac else "")


def _group_key(c: Change) -> tuple[str, str]:
    currency = (c.exposure or {}).get("currency")
    return c.connection, currency if currency else "?"


def _add(total: dict[str, Any], name: str, value: str | None) -> None:
    if value is None:
        total["unknown"][name] = total["unknown"].get(name, 0) + 1
    elif value == UNBOUNDED:
        total[name] = UNBOUNDED
    elif total[name] != UNBOUNDED:
        total[name] = str(Decimal(total[name]) + Decimal(value))


def totals(changes: list[Change]) -> list[dict[str, Any]]:
    """Per (connection, currency): events, stake before/after/added and the withdrawal ceiling
    after, each the sum of the known figures; ``unknown`` counts, per figure, the events whose
    figure is unknown (so the sum leaves them out)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for c in changes:
        e = c.exposure
        if not e:
            continue
        key = _group_key(c)
        t = groups.setdefault(
            key,
            {
                "vendor": c.vendor,
                "connection": key[0],
                "currency": None if key[1] == "?" else key[1],
                "events": 0,
                "stake_before": "0",
                "stake_after": "0",
                "stake_added": "0",
                "ceiling_after": "0",
                "unknown": {},
                "upper_bound": False,
            },
        )
        t["events"] += 1
        for name in ("stake_before", "stake_after", "stake_added", "ceiling_after"):
            _add(t, name, e.get(name))
        t["upper_bound"] = t["upper_bound"] or bool(e.get("upper_bounds"))
    out = []
    for key in sorted(groups):
        t = groups[key]
        for name in ("stake_before", "stake_after", "stake_added", "ceiling_after"):
            if t[name] != UNBOUNDED:
                t[name] = _normal(Decimal(t[name]))
        out.append(t)
    return out


def _normal(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(), "f")


def _budget(settings: Settings, connection: str, currency: str | None) -> tuple[str, ExposureBudget] | None | str:
    """The budget for a connection and currency: (label, budget); None when the connection has no
    budgets; a reason (str) when it has some but none for this currency."""
    per_currency = settings.exposure_budgets.get(connection)
    if not per_currency:
        return None
    if currency and currency in per_currency:
        return f"settings.exposure_budgets.{connection}.{currency}", per_currency[currency]
    if "*" in per_currency:
        return f"settings.exposure_budgets.{connection}.*", per_currency["*"]
    return f"settings.exposure_budgets.{connection} has no budget for currency {currency or 'unknown'} (and no '*')"


def _named(addresses: list[str]) -> str:
    shown = ", ".join(addresses[:MAX_EVENTS_NAMED])
    more = len(addresses) - MAX_EVENTS_NAMED
    return shown + (f" and {more:,} more" if more > 0 else "")


def over_budget(changes: list[Change], settings: Settings) -> list[str]:
    """One line per budget a set of changes exceeds (or cannot be shown to keep), naming the budget
    and the figure."""
    out: list[str] = []
    groups: dict[tuple[str, str], list[Change]] = {}
    for c in changes:
        if c.exposure:
            groups.setdefault(_group_key(c), []).append(c)
    for (connection, cur), group in sorted(groups.items()):
        currency = None if cur == "?" else cur
        found = _budget(settings, connection, currency)
        if found is None:
            continue
        unit = f" {currency}" if currency else ""
        if isinstance(found, str):
            granting = [c for c in group if c.action is not Action.DELETE]
            if granting:
                out.append(
                    f"{found}: {len(granting):,} event change(s) on connection {connection} cannot be checked "
                    f"({_named([c.address for c in granting])}); {APPROVE_HINT}"
                )
            continue
        label, budget = found
        out.extend(_per_apply(label, budget, group, unit))
        out.extend(_per_event(label, budget, group, unit))
        if not budget.allow_unbounded_withdrawal:
            unbounded = [
                c.address for c in group if c.action is not Action.DELETE and (c.exposure or {}).get("ceiling_after") == UNBOUNDED
            ]
            unknown = [
                c.address for c in group if c.action is not Action.DELETE and (c.exposure or {}).get("ceiling_after") is None
            ]
            if unbounded:
                out.append(
                    f"{label}.allow_unbounded_withdrawal is false: withdrawal ceiling unbounded "
                    f'(maxWithdrawal "-1") for {_named(unbounded)}; {APPROVE_HINT}'
                )
            if unknown:
                out.append(
                    f"{label}.allow_unbounded_withdrawal is false: withdrawal ceiling unknown for "
                    f"{_named(unknown)}; {APPROVE_HINT}"
                )
    return out


def _per_apply(label: str, budget: ExposureBudget, group: list[Change], unit: str) -> list[str]:
    if budget.max_stake_per_apply is None:
        return []
    limit = Decimal(str(budget.max_stake_per_apply))
    known = [Decimal(c.exposure["stake_added"]) for c in group if c.exposure and c.exposure.get("stake_added") is not None]
    unknown = [c.address for c in group if c.exposure and c.exposure.get("stake_added") is None]
    added = sum(known, Decimal(0))
    if unknown:
        return [
            f"{label}.max_stake_per_apply {money(limit)}{unit}: stake added unknown for {_named(unknown)} "
            f"(known: {money(added)}{unit}); {APPROVE_HINT}"
        ]
    if added > limit:
        return [
            f"{label}.max_stake_per_apply {money(limit)}{unit}: this apply adds {money(added)}{unit} of stake; {APPROVE_HINT}"
        ]
    return []


def _per_event(label: str, budget: ExposureBudget, group: list[Change], unit: str) -> list[str]:
    if budget.max_stake_per_event is None:
        return []
    limit = Decimal(str(budget.max_stake_per_event))
    granting = [c for c in group if c.action is not Action.DELETE and c.exposure]
    over = [
        c
        for c in granting
        if c.exposure and c.exposure.get("stake_after") is not None and Decimal(c.exposure["stake_after"]) > limit
    ]
    unknown = [c.address for c in granting if c.exposure and c.exposure.get("stake_after") is None]
    out = []
    if over:
        over.sort(key=lambda c: (-Decimal((c.exposure or {})["stake_after"]), c.address))
        named = [c.address + " " + money((c.exposure or {})["stake_after"]) + unit for c in over]
        out.append(
            f"{label}.max_stake_per_event {money(limit)}{unit}: {len(over):,} event(s) over it, "
            f"largest first ({_named(named)}); {APPROVE_HINT}"
        )
    if unknown:
        out.append(f"{label}.max_stake_per_event {money(limit)}{unit}: stake unknown for {_named(unknown)}; {APPROVE_HINT}")
    return out


def summarize(plan: Plan, settings: Settings, *, approved: bool) -> dict[str, Any]:
    """What a plan records of its exposure (``Plan.exposure``, the saved plan's ``exposure``):
    totals, the budgets that apply, what is over them and whether that was approved."""
    groups = totals(plan.changes)
    if not groups:
        return {}
    budgets: dict[str, Any] = {}
    for t in groups:
        found = _budget(settings, t["connection"], t["currency"])
        if isinstance(found, tuple):
            label, budget = found
            budgets[label] = budget.model_dump(mode="json")
    return {"totals": groups, "budgets": budgets, "over_budget": over_budget(plan.changes, settings), "approved": approved}


def total_lines(summary: dict[str, Any]) -> list[str]:
    """The totals for people, one line per connection and currency (values escaped by the writer)."""
    out = []
    for t in summary.get("totals") or []:
        unit = f" {t['currency']}" if t.get("currency") else " (currency unknown)"
        at_most = "at most " if t.get("upper_bound") else ""
        unknown = t.get("unknown") or {}
        gaps = ", ".join(f"{name.replace('_', ' ')} unknown for {n:,}" for name, n in sorted(unknown.items()))
        out.append(
            f"Exposure{unit} on {t['vendor']}/{t['connection']}: {t['events']:,} event(s); stake "
            f"{money(t['stake_before'])} -> {at_most}{money(t['stake_after'])}, adds {at_most}"
            f"{money(t['stake_added'])}; withdrawal ceiling after {at_most}{money(t['ceiling_after'])}"
            + (f" ({gaps}: not in these sums)" if gaps else "")
        )
    return out


def change_line(e: dict[str, Any]) -> str:
    """One change's figures for people."""
    unit = f" {e['currency']}" if e.get("currency") else " (currency unknown)"
    bounds = set(e.get("upper_bounds") or [])

    def fig(name: str) -> str:
        return ("at most " if name in bounds else "") + money(e.get(name))

    players = f"players {e.get('players_before') if e.get('players_before') is not None else UNKNOWN} -> {fig('players_after')}"
    return (
        f"exposure{unit}: stake {money(e.get('stake_before'))} -> {fig('stake_after')} (adds {fig('stake_added')}); "
        f"withdrawal ceiling {money(e.get('ceiling_before'))} -> {fig('ceiling_after')}; {players}"
    )


def live_report(entries: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """What drift reports of the live events' exposure: totals per connection and currency and the
    events over a budget (per event: stake over max_stake_per_event, an unbounded or unknown
    ceiling where not allowed, an unknown stake where a per-event budget applies)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    findings: list[str] = []
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in entries:
        key = (e["connection"], e.get("currency") or "?")
        by_group.setdefault(key, []).append(e)
        t = groups.setdefault(
            key,
            {
                "vendor": e.get("vendor", "?"),
                "connection": key[0],
                "currency": e.get("currency"),
                "events": 0,
                "stake": "0",
                "ceiling": "0",
                "unknown": {},
                "from_last_applied": 0,
            },
        )
        t["events"] += 1
        t["from_last_applied"] += bool(e.get("from_last_applied"))
        _add(t, "stake", e.get("stake"))
        _add(t, "ceiling", e.get("ceiling"))
    for key, group in sorted(by_group.items()):
        currency = None if key[1] == "?" else key[1]
        found = _budget(settings, key[0], currency)
        if not isinstance(found, tuple):
            if isinstance(found, str):
                findings.append(f"{found}: {len(group):,} live event(s) not checked")
            continue
        label, budget = found
        unit = f" {currency}" if currency else ""
        if budget.max_stake_per_event is not None:
            limit = Decimal(str(budget.max_stake_per_event))
            over = [
                f"{e['resource']} {money(e['stake'])}{unit}"
                for e in group
                if e.get("stake") is not None and Decimal(e["stake"]) > limit
            ]
            unknown = [e["resource"] for e in group if e.get("stake") is None]
            if over:
                findings.append(f"{label}.max_stake_per_event {money(limit)}{unit}: live {_named(over)}")
            if unknown:
                findings.append(f"{label}.max_stake_per_event {money(limit)}{unit}: live stake unknown for {_named(unknown)}")
        if not budget.allow_unbounded_withdrawal:
            unbounded = [e["resource"] for e in group if e.get("ceiling") == UNBOUNDED]
            if unbounded:
                findings.append(
                    f"{label}.allow_unbounded_withdrawal is false: live withdrawal ceiling unbounded for {_named(unbounded)}"
                )
    totals_ = []
    for key in sorted(groups):
        t = groups[key]
        for name in ("stake", "ceiling"):
            if t[name] != UNBOUNDED:
                t[name] = _normal(Decimal(t[name]))
        totals_.append(t)
    return {"totals": totals_, "over_budget": findings}


def live_lines(report: dict[str, Any]) -> list[str]:
    out = []
    for t in report.get("totals") or []:
        unit = f" {t['currency']}" if t.get("currency") else " (currency unknown)"
        gaps = ", ".join(f"{name} unknown for {n:,}" for name, n in sorted((t.get("unknown") or {}).items()))
        last = (
            f"; {t['from_last_applied']:,} event(s) use fields the vendor does not return from the last applied plan"
            if t.get("from_last_applied")
            else ""
        )
        out.append(
            f"Live exposure{unit} on {t['vendor']}/{t['connection']}: {t['events']:,} event(s); stake "
            f"{money(t['stake'])}; withdrawal ceiling {money(t['ceiling'])}"
            + (f" ({gaps}: not in these sums)" if gaps else "")
            + last
        )
    out += [f"Live over budget: {f}" for f in report.get("over_budget") or []]
    return out

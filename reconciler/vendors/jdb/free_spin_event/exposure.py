"""The money a FreeSpinEvent change grants (stake and withdrawal ceiling before and after)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final


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


def exposure(
    currency: str | None,
    before: tuple[int | None, dict[str, Any] | None],
    after: tuple[int | None, dict[str, Any] | None],
    *,
    new_grant: bool,
    players_upper: bool = False,
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
    return {
        "currency": currency,
        "players_before": pb,
        "players_after": pa,
        "stake_before": sb,
        "stake_after": sa,
        "stake_added": added,
        "ceiling_before": cb,
        "ceiling_after": ca,
        "upper_bounds": sorted(bounds),
    }

"""FreeSpinEvent's declared spec against the JDB connection: bet ladders and currency (no call)."""

from __future__ import annotations

from decimal import Decimal

from reconciler.kinds.context import RunContext
from reconciler.vendors.jdb.free_spin_event.compare import _money
from reconciler.vendors.jdb.free_spin_event.spec import FreeSpinEventSpec


def _ladders(ctx: RunContext) -> dict[int, list[Decimal]]:
    provider = ctx.config.providers.jdb
    ladders: dict[int, list[str]] = getattr(provider, "bet_ladders", None) or {}
    return {m: sorted(Decimal(v) for v in values) for m, values in ladders.items() if values}


def bet_problems(spec: FreeSpinEventSpec, ctx: RunContext) -> list[str]:
    """The declared bet against ``providers.jdb.bet_ladders`` (before any call): Action 72 needs a
    bet above every chosen game's smallest bet (JDB locks the largest ladder value not above it)."""
    ladders, bet = _ladders(ctx), Decimal(spec.bet)
    return [
        f"bet {spec.bet} is below the smallest bet {_money(ladders[m][0])} of machine type {m} "
        f"(providers.jdb.bet_ladders; Action 72: the bet must reach every chosen game's smallest bet)"
        for m in spec.machineTypes
        if m in ladders and bet < ladders[m][0]
    ]


def locked_bets(spec: FreeSpinEventSpec, ctx: RunContext) -> list[str]:
    """Where JDB will lock a smaller bet than declared (seed, Action 72: the largest ladder value not
    above ``bet``), and the machine types whose ladder is not configured (nothing checked)."""
    ladders, bet = _ladders(ctx), Decimal(spec.bet)
    if not ladders:
        return []
    out = [
        f"bet: JDB locks {_money(max(v for v in ladders[m] if v <= bet))} on machine type {m} (declared {spec.bet})"
        for m in spec.machineTypes
        if m in ladders and ladders[m][0] <= bet and bet not in ladders[m]
    ]
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

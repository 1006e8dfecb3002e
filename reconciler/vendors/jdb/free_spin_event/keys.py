"""FreeSpinEvent's idempotency keys: the deterministic Action 72 ``transactionId`` of a declared
event (per key scope, agent, identity and generation) and of a replacement."""

from __future__ import annotations

import json
import uuid
from typing import Any

from reconciler.kinds.context import RunContext


TRANSACTION_NAMESPACE = uuid.UUID("6f1c9a52-4e0b-5d8e-9c3a-1b7d2e4f6a80")


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
    parts = [
        f"env={environment}" if environment else "",
        f"connection={connection}" if connection not in (None, "default") else "",
    ]
    return ";".join(p for p in parts if p)


def _scope_of(ctx: RunContext) -> str:
    connection = ctx.config.connection[1] if ctx.config.connection else None
    return key_scope(ctx.config.env, connection)

"""An undeclared live object: unmanaged, protected by a scope, held by a guard, or deleted.

Every kind that reads live state meets objects no manifest declares. DESIGN.md principle 4 decides
them the same way for every kind, and :func:`undeclared` is that decision, written once:

1. no ownership scope holds the object: it is **unmanaged** (listed, never touched);
2. the scope that holds it protects it (a ``PruneScope``'s ``protect``): **protected** (listed);
3. a guard of the kind holds it back (a running JDB event without ``--force``): **held** (listed);
4. otherwise it is **deleted**: the kind builds the delete change from the scope that holds it.

The first scope (in the order given) that holds the object decides. What a scope is and what
"holds" means stay the kind's: a ``PruneScope`` document's match, an allowlist marked
``exclusive``, a TcaplusRecords document's ``prune`` index keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

from reconciler.model import Change, KindPlan, Unmanaged

OUTSIDE = "not declared; outside every prune scope"
"""Why an object no scope holds is left alone (the default reason of an unmanaged entry)."""


class Scoped(Protocol):
    """An ownership scope: anything with a reference to name it by (``PruneScope/NAME``, ``KIND/NAME``)."""

    @property
    def ref(self) -> str: ...


S = TypeVar("S", bound=Scoped)


class Verdict(Enum):
    UNMANAGED = "unmanaged"
    PROTECTED = "protected"
    HELD = "held"
    DELETE = "delete"


@dataclass(frozen=True)
class Decision(Generic[S]):
    """What becomes of one undeclared live object. ``scope`` is the scope that holds it (``None``
    when none does); ``why`` says why it is left alone (empty for a delete)."""

    verdict: Verdict
    scope: S | None = None
    why: str = ""

    @property
    def delete(self) -> bool:
        return self.verdict is Verdict.DELETE

    def record(self, kp: KindPlan, *, kind: str, vendor: str, key: str, change: Callable[[S], Change]) -> None:
        """Put the decision into the kind's plan: a delete adds ``change(scope)`` (and counts the
        object as existing in scope, for the safety thresholds); anything else one unmanaged entry."""
        if self.verdict is Verdict.DELETE:
            assert self.scope is not None
            kp.existing_in_scope += 1
            kp.changes.append(change(self.scope))
        else:
            kp.unmanaged.append(self.unmanaged(kind=kind, vendor=vendor, key=key))

    def unmanaged(self, *, kind: str, vendor: str, key: str) -> Unmanaged:
        """The unmanaged entry of an object left alone (for a kind that batches its deletes)."""
        assert self.verdict is not Verdict.DELETE
        return Unmanaged(kind, vendor, key, self.why)


def _never(scope: object) -> bool:
    return False


def _no_guard(scope: object) -> str | None:
    return None


def _protected_by(scope: Scoped) -> str:
    return f"protected by {scope.ref}"


def undeclared(
    scopes: Iterable[S],
    *,
    holds: Callable[[S], bool],
    protects: Callable[[S], bool] = _never,
    guard: Callable[[S], str | None] = _no_guard,
    outside: str = OUTSIDE,
    protected_why: Callable[[S], str] = _protected_by,
) -> Decision[S]:
    """Decide one undeclared live object (see the module documentation).

    ``holds(scope)``: the scope owns the object. ``protects(scope)``: the scope names it as never
    deleted. ``guard(scope)``: a reason the kind holds a delete back this run, or ``None``.
    ``outside`` and ``protected_why`` word the unmanaged entry of the first two cases."""
    scope = next((s for s in scopes if holds(s)), None)
    if scope is None:
        return Decision(Verdict.UNMANAGED, None, outside)
    if protects(scope):
        return Decision(Verdict.PROTECTED, scope, protected_why(scope))
    held = guard(scope)
    if held:
        return Decision(Verdict.HELD, scope, held)
    return Decision(Verdict.DELETE, scope)

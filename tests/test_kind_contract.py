"""The kind contract's shared pieces: the decision for an undeclared live object
(:func:`reconciler.kinds.prune.undeclared`) over each of its cases, and the typed contract every
installed kind declares (``Kind[Spec, Client]``)."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field

import pytest

from reconciler.kinds import KINDS
from reconciler.kinds.base import Kind, RunContext
from reconciler.kinds.context import RunContext as ContextRunContext
from reconciler.kinds.prune import OUTSIDE, Decision, Verdict, undeclared
from reconciler.model import Action, Change, KindPlan, Unmanaged


@dataclass
class Scope:
    name: str
    prefix: str
    protect: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"PruneScope/{self.name}"


SCOPES = [Scope("games", "game"), Scope("all-g", "g", protect=["gamekeep", "gx"])]


def decide(key: str, *, guard: str | None = None) -> Decision[Scope]:
    return undeclared(
        SCOPES, holds=lambda s: key.startswith(s.prefix), protects=lambda s: key in s.protect, guard=lambda s: guard
    )


def delete(scope: Scope) -> Change:
    return Change(kind="K", vendor="v", key="game01", action=Action.DELETE, source=scope.ref)


def test_an_object_no_scope_holds_is_unmanaged_and_listed() -> None:
    d = decide("ops01")
    assert (d.verdict, d.scope, d.why) == (Verdict.UNMANAGED, None, OUTSIDE)
    kp = KindPlan()
    d.record(kp, kind="K", vendor="v", key="ops01", change=delete)
    assert kp.changes == [] and kp.existing_in_scope == 0
    assert kp.unmanaged == [Unmanaged("K", "v", "ops01", "not declared; outside every prune scope")]


def test_the_first_scope_that_holds_it_decides() -> None:
    # "gamekeep" is protected by the second scope only, but the first one holds it: deleted
    assert decide("gamekeep").verdict is Verdict.DELETE and decide("gamekeep").scope is SCOPES[0]
    # "gx" is held only by the second scope, which protects it
    d = decide("gx")
    assert (d.verdict, d.scope, d.why) == (Verdict.PROTECTED, SCOPES[1], "protected by PruneScope/all-g")


def test_a_protected_object_is_listed_with_its_scope_and_never_deleted() -> None:
    kp = KindPlan()
    decide("gx").record(kp, kind="K", vendor="v", key="gx", change=delete)
    assert kp.changes == [] and kp.unmanaged == [Unmanaged("K", "v", "gx", "protected by PruneScope/all-g")]


def test_a_guard_holds_back_a_delete_inside_the_scope() -> None:
    d = decide("game01", guard="'game01' is ACTIVE: terminating it needs --force")
    assert (d.verdict, d.scope) == (Verdict.HELD, SCOPES[0]) and not d.delete
    kp = KindPlan()
    d.record(kp, kind="K", vendor="v", key="game01", change=delete)
    assert kp.changes == [] and kp.unmanaged[0].reason == "'game01' is ACTIVE: terminating it needs --force"


def test_a_protected_object_stays_protected_whatever_the_guard_says() -> None:
    assert decide("gx", guard="held").verdict is Verdict.PROTECTED


def test_inside_a_scope_unprotected_and_unguarded_it_is_deleted_and_counted() -> None:
    d = decide("game01")
    assert d.delete and d.scope is SCOPES[0] and d.why == ""
    kp = KindPlan()
    d.record(kp, kind="K", vendor="v", key="game01", change=delete)
    assert [(c.key, c.action, c.source) for c in kp.changes] == [("game01", Action.DELETE, "PruneScope/games")]
    assert kp.existing_in_scope == 1 and kp.unmanaged == []
    with pytest.raises(AssertionError):
        d.unmanaged(kind="K", vendor="v", key="game01")  # a delete is never listed as left alone


def test_the_reasons_can_be_worded_by_the_kind() -> None:
    d = undeclared(SCOPES, holds=lambda s: False, outside="'x' ACTIVE: not declared; outside every prune scope")
    assert d.why == "'x' ACTIVE: not declared; outside every prune scope"
    d = undeclared(SCOPES, holds=lambda s: True, protects=lambda s: True, protected_why=lambda s: f"'x': protected by {s.ref}")
    assert d.why == "'x': protected by PruneScope/games"


# -- the typed contract ----------------------------------------------------------------------------
def test_every_installed_kind_declares_its_spec_and_client() -> None:
    assert len(KINDS) >= 4
    for name, cls in KINDS.items():
        [base] = [b for b in getattr(cls, "__orig_bases__", ()) if typing.get_origin(b) is Kind]
        spec, client = typing.get_args(base)
        assert spec is cls.Spec, name
        hints = typing.get_type_hints(cls.make_client, globalns=vars(inspect.getmodule(cls)))
        assert hints["return"] is client, name


def test_run_context_lives_apart_from_the_contract_and_is_still_importable_from_it() -> None:
    assert RunContext is ContextRunContext and RunContext.__module__ == "reconciler.kinds.context"

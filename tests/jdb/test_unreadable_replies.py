"""Unknown means unknown (JDB): a write answered 200 with a body cut short or not JSON is an
unknown outcome, settled by reading back in the same run — create by asking again with the same
``transactionId`` (the documented read-back by key), bind, terminate and update by reading the
event — never reported FAILED for a write that happened, never granted twice; a read answered so
is asked again. The emulator's ``mangle_replies`` knob cuts the body (before gzip) or replaces it."""

from __future__ import annotations

import pytest

from .conftest import AGENT, JdbWorkspace
from .test_free_spin_event import event_doc

HOW = ["cut", "not_json"]


def mangle(ws: JdbWorkspace, how: str, action: int, count: int = 1) -> None:
    ws.faults(mangle_replies=[{"how": how, "count": count, "match": f"action {action}"}])


def apply_ok(ws: JdbWorkspace, *flags: str) -> str:
    res = ws.cli("apply", "--auto-approve", *flags)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout and "UNKNOWN" not in res.stdout
    assert ws.emulator.faults.mangle_replies == []  # the fault did fire
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    return res.stdout


@pytest.mark.parametrize("how", HOW)
def test_a_create_answered_unreadably_is_read_back_by_its_transaction_id(ws: JdbWorkspace, how: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    mangle(ws, how, 72)
    out = apply_ok(ws)
    assert "ok      create FreeSpinEvent/spring" in out
    [event] = ws.events()  # one event: the second 72 carried the same transactionId and created nothing
    assert event["numberOfPlayers"] == 3
    assert ws.emulator.action_counts[72] == 2


@pytest.mark.parametrize("how", HOW)
def test_a_bind_answered_unreadably_is_read_back(ws: JdbWorkspace, how: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply_ok(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=["player00001", "player00002", "player00003", "player00004"]))
    mangle(ws, how, 74)
    out = apply_ok(ws, "--force")  # players added to a live event: the rebind opt-in (issue 22)
    assert "ok      update FreeSpinEvent/spring" in out
    [event] = ws.events()
    assert event["numberOfPlayers"] == 4


@pytest.mark.parametrize("how", HOW)
def test_an_update_answered_unreadably_is_read_back(ws: JdbWorkspace, how: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply_ok(ws)
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins 2"))
    mangle(ws, how, 77)
    out = apply_ok(ws)
    assert "ok      update FreeSpinEvent/spring" in out
    assert [e["name"] for e in ws.events()] == ["Spring spins 2"]


@pytest.mark.parametrize("how", HOW)
def test_a_terminate_answered_unreadably_is_read_back(ws: JdbWorkspace, how: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, "a", name="promo-a") + "---\n" + event_doc(ws, "b", name="promo-b"))
    apply_ok(ws)
    ws.write("manifests/events.yaml", event_doc(ws, "a", name="promo-a"))
    ws.write(
        "manifests/scope.yaml",
        f"""
    apiVersion: reconciler/v1
    kind: PruneScope
    metadata: {{name: promos}}
    spec:
      target: FreeSpinEvent
      match: {{agent: {AGENT}, namePrefix: promo-}}
    """,
    )
    mangle(ws, how, 73)
    out = apply_ok(ws)
    assert "ok      delete FreeSpinEvent/" in out
    assert sorted((e["name"], e["status"]) for e in ws.events()) == [("promo-a", "INACTIVE"), ("promo-b", "TERMINATED")]


@pytest.mark.parametrize("how", HOW)
def test_a_search_answered_unreadably_is_asked_again(ws: JdbWorkspace, how: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    mangle(ws, how, 76)
    res = ws.cli("plan")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "Plan: 1 to create" in res.stdout and ws.emulator.faults.mangle_replies == []

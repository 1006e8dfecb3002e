"""JDB's "try again" answers to writes are refusals, tried again in a later pass of the same apply
(as TcaplusDB's -1037 "system busy" is): no re-run of apply is needed and nothing is duplicated.

The emulator answers the injected fault with status 9999 (HTTP 503), or with one of the code
table's "try again" statuses, 9012 and 9017 (HTTP 200); ``fail_next_writes`` refuses writes only,
so the plan's reads go through."""

from __future__ import annotations

import pytest

from .conftest import JdbWorkspace
from .test_free_spin_event import event_doc

ATTEMPTS = 4  # retry_attempts of the workspace's connection (the default): create's own tries per pass


@pytest.mark.parametrize("busy_status", ["9999", "9012", "9017"])
def test_a_create_refused_as_busy_beyond_one_pass_is_made_in_a_later_pass(ws: JdbWorkspace, busy_status: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    ws.faults(fail_next_writes=ATTEMPTS + 1)  # every try of the first pass, and the first of the next
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "ok      create FreeSpinEvent/spring" in res.stdout
    assert ws.emulator.faults.fail_next_writes == 0  # refused ATTEMPTS + 1 times (two passes) ...
    assert ws.emulator.action_counts[72] == 1  # ... then handled once
    [event] = ws.live()
    assert event["numberOfPlayers"] == 3
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr


@pytest.mark.parametrize("busy_status", ["9012"])
def test_refusals_that_outlast_every_pass_fail_the_change_naming_the_cause(ws: JdbWorkspace, busy_status: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    ws.faults(fail_next_writes=1_000)
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert (
        f"FAILED  create FreeSpinEvent/spring: jdb: 127.0.0.1:{ws.server.port}: action 72: code 9012: "
        "Try again later." in res.stdout
    )
    assert 1_000 - ws.emulator.faults.fail_next_writes == 8 * ATTEMPTS  # 8 passes, then the change failed
    assert ws.emulator.action_counts[72] == 0
    assert ws.live() == []


@pytest.mark.parametrize("busy_status", ["9999", "9012", "9017"])
def test_a_read_refused_as_busy_is_asked_again_and_the_plan_completes(ws: JdbWorkspace, busy_status: str) -> None:
    """A plan's Action 76 answered "try again" (at HTTP 200 or 503) is asked again, not dropped."""
    ws.write("manifests/events.yaml", event_doc(ws))
    ws.faults(fail_next=ATTEMPTS - 1)  # every try but the last of the one read
    res = ws.cli("plan")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "Plan: 1 to create" in res.stdout
    assert ws.emulator.faults.fail_next == 0
    ws.faults(fail_next=ATTEMPTS)  # outlasts the retries: the read fails, naming the cause
    res = ws.cli("plan")
    assert res.exit_code == 1
    assert f"jdb: 127.0.0.1:{ws.server.port}: action 76: code {busy_status}" in res.stderr + res.stdout

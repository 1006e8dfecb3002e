"""FreeSpinEvent money safety and fidelity to the documents (issue #10): what a documented-only
Action 76 reply can show, Action 72 as the seed writes it, bounded reads, lost write replies."""

from __future__ import annotations

import pytest

from reconciler.vendors.jdb.free_spin_event import PLAYER_READ_BUDGET

from .conftest import AGENT, JdbWorkspace
from .test_free_spin_event import apply, assert_converged, event_doc


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_a_field_jdb_does_not_return_is_never_shown_as_equal(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, bet="3"))
    plan = ws.cli("plan", "--detailed-exitcode")
    # bet is not in the documented Action 76 reply: the plan says so instead of "it matches"
    assert "do not carry bet" in plan.stdout and "cannot be seen" in plan.stdout
    assert "cannot be verified" in plan.stdout


def test_times_and_end_changes_are_seen_in_both_modes(ws: JdbWorkspace) -> None:
    """The documented Action 76 reply has no times/endTime; Action 71 rows (a declared player's)
    carry them, so an immutable change is still a replace."""
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, times=11))
    assert "-/+ replace FreeSpinEvent/spring" in ws.cli("plan").stdout


@pytest.mark.parametrize("bonuschips_times", ["required", "ignored"])
def test_bonus_chips_create_sends_times_as_the_seed_requires(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, type="BONUSCHIPS", times=None, bonusChips="100", chipsMultiplier="2.5"))
    apply(ws)
    [event] = ws.live()
    assert (event["type"], event["times"]) == ("BONUSCHIPS", None)
    assert_converged(ws)


def test_auto_create_player_binds_a_new_account(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, players=["brandnew1"], autoCreatePlayerEnabled=True))
    out = apply(ws)
    assert "1 of 1 player(s) bound" in out
    assert ws.live()[0]["numberOfPlayers"] == 1


def test_auto_create_player_needs_exactly_one_player(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, autoCreatePlayerEnabled=True))
    res = ws.cli("validate")
    assert res.exit_code == 1 and "spec.autoCreatePlayerEnabled" in res.stderr and "exactly one player" in res.stderr


def test_plan_reads_do_not_grow_with_players(ws: JdbWorkspace) -> None:
    players = [f"p{i:05d}" for i in range(PLAYER_READ_BUDGET * 3)]
    ws.emulator.register_players(AGENT, players)
    docs = "---\n".join(
        event_doc(ws, f"e{i}", name=f"Event {i}", players=players[i * 100 : (i + 1) * 100 + 50]) for i in range(3)
    )
    ws.write("manifests/events.yaml", docs)
    apply(ws)
    before = ws.stats().get("POST /apiRequest.do", 0)
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout
    calls = ws.stats()["POST /apiRequest.do"] - before
    assert calls <= 1 + PLAYER_READ_BUDGET


def test_a_create_is_confirmed_before_anyone_is_bound(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    ws.cli("plan")
    before = ws.stats().get("POST /apiRequest.do", 0)
    plan_calls = _plan_calls(ws)
    ws.emulator.action_counts.clear()
    apply(ws)
    # apply = its own plan + Action 72 (no players) + Action 76 (is it ours?) + one Action 74
    assert ws.stats()["POST /apiRequest.do"] - before - plan_calls == plan_calls + 3
    assert (ws.emulator.action_counts[72], ws.emulator.action_counts[74]) == (1, 1)


def _plan_calls(ws: JdbWorkspace) -> int:
    before = ws.stats().get("POST /apiRequest.do", 0)
    ws.cli("plan")
    return int(ws.stats()["POST /apiRequest.do"] - before)


def test_lost_create_reply_reports_only_what_is_known(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, players=["player00001", "ghost"]))
    ws.faults(drop_next_writes=1)
    res = ws.cli("apply", "--auto-approve")
    # the create's reply was lost and asked again by key; the players are bound after it (Action
    # 74), whose answer tells: a partial grant, exit 4, naming who is not bound
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "PARTIAL GRANT: 1 of 2 player(s) bound" in res.stdout and "do not exist (1): ghost" in res.stdout
    assert len(ws.events()) == 1 and ws.live()[0]["numberOfPlayers"] == 1
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0 and "ghost" in plan.stdout  # the next plan knows


@pytest.mark.parametrize("change", ["update", "bind", "unbind", "terminate"])
def test_lost_write_reply_is_read_back_before_any_repeat(ws: JdbWorkspace, change: str) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    [event] = ws.live()
    if change == "update":
        ws.write("manifests/events.yaml", event_doc(ws, name="Renamed"))
    elif change == "bind":
        ws.write(
            "manifests/events.yaml",
            event_doc(ws, players=["player00001", "player00002", "player00003", "player00004"], allowRebind=True),
        )
    elif change == "unbind":
        ws.write("manifests/events.yaml", event_doc(ws, players=["player00001", "player00002"], excludedPlayers=["player00003"]))
    else:
        ws.write("manifests/events.yaml", "")
        ws.write(
            "manifests/scope.yaml",
            f"""
        apiVersion: reconciler/v1
        kind: PruneScope
        metadata: {{name: all}}
        spec: {{target: FreeSpinEvent, match: {{agent: {AGENT}, namePrefix: Spring}}}}
        """,
        )
    ws.faults(drop_next_writes=1)
    ws.emulator.action_counts.clear()
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    write = {"update": 77, "bind": 74, "unbind": 75, "terminate": 73}[change]
    # the write took effect before its reply was lost: read back, not repeated (the update changes
    # the name, which every Action 76 reply carries)
    assert ws.emulator.action_counts[write] == 1
    events = ws.events()
    assert len(events) == 1 and events[0]["eventId"] == event["eventId"]
    if change == "terminate":
        assert events[0]["status"] == "TERMINATED"
    else:
        assert_converged(ws)


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_a_change_jdb_cannot_show_is_applied_against_the_last_applied_plan(ws: JdbWorkspace) -> None:
    """GitOps: each merge applies a saved plan; the next plan names it with --last-applied. A bet
    change (not in the documented Action 76 reply) is then a visible update, and applied."""
    ws.write("manifests/events.yaml", event_doc(ws))
    assert ws.cli("plan", "--out", "p1.json").exit_code == 0
    assert ws.cli("apply", "p1.json").exit_code == 0
    same = ws.cli("plan", "--last-applied", "p1.json", "--detailed-exitcode")
    assert same.exit_code == 0 and "Nothing to apply" in same.stdout  # manifest unchanged since the applied plan
    ws.write("manifests/events.yaml", event_doc(ws, bet="3", maxWithdrawal="-1"))
    blind = ws.cli("plan", "--detailed-exitcode")
    assert blind.exit_code == 0 and "cannot be verified" in blind.stdout  # without a baseline: said, not hidden
    plan = ws.cli("plan", "--last-applied", "p1.json", "--out", "p2.json", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.stdout + plan.stderr
    assert "~ update FreeSpinEvent/spring" in plan.stdout and 'bet: "2.5" -> "3"' in plan.stdout
    assert 'maxWithdrawal: "100" -> "-1"' in plan.stdout
    res = ws.cli("apply", "p2.json")
    assert res.exit_code == 0, res.stdout + res.stderr
    [event] = ws.live()
    assert (event["bet"], event["maxWithdrawal"]) == ("3.000", "-1")
    after = ws.cli("plan", "--last-applied", "p2.json", "--detailed-exitcode")
    assert after.exit_code == 0 and "Nothing to apply" in after.stdout and "No changes" not in after.stdout
    # a drift run against the baseline finds nothing, but JDB never returns bet or the withdrawals:
    # the check is incomplete (exit 5), never "Drift: none" (issue 23)
    drift = ws.cli("plan", "--drift", "--baseline", "p2.json")
    assert drift.exit_code == 5 and "the check is incomplete" in drift.stderr, drift.stdout + drift.stderr


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_a_changed_manifest_without_the_old_value_sends_the_unseen_fields(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    assert ws.cli("plan", "--out", "p1.json").exit_code == 0
    assert ws.cli("apply", "p1.json").exit_code == 0
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins 2"))
    assert ws.cli("plan", "--last-applied", "p1.json", "--out", "p2.json").exit_code == 0
    assert ws.cli("apply", "p2.json").exit_code == 0
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins 2", bet="4"))
    plan = ws.cli("plan", "--last-applied", "p2.json")
    assert 'bet: "2.5" -> "4"' in plan.stdout  # p2 changed the event: its desired payload has the bet


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_two_thousand_past_windows_plan_quietly(ws: JdbWorkspace) -> None:
    """A disaster-recovery restore of old manifests: 2,000 events whose windows are past. Nothing is
    created, the plan exits 0 and its output stays short."""
    docs = "---\n".join(
        event_doc(
            ws,
            f"old{i}",
            name=f"Old {i}",
            startTime="2020-01-01T00:00:00+08:00",
            endTime="2020-01-08T00:00:00+08:00",
            players=["player00001"],
        )
        for i in range(2000)
    )
    ws.write("manifests/events.yaml", docs)
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout[-2000:] + plan.stderr
    assert "2000 unchanged" in plan.stdout and "and 1980 more expired event(s)" in plan.stdout
    assert len(plan.stdout.splitlines()) < 40
    assert ws.events() == []


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_a_lost_update_reply_that_cannot_be_confirmed_is_sent_once_more(ws: JdbWorkspace) -> None:
    """Only bet changes (not in the documented reply): the read-back cannot confirm the update, so
    Action 77 — which sets values — is sent once more."""
    ws.write("manifests/events.yaml", event_doc(ws))
    assert ws.cli("plan", "--out", "p1.json").exit_code == 0
    assert ws.cli("apply", "p1.json").exit_code == 0
    ws.write("manifests/events.yaml", event_doc(ws, bet="3"))
    assert ws.cli("plan", "--last-applied", "p1.json", "--out", "p2.json").exit_code == 0
    ws.faults(drop_next_writes=1)
    ws.emulator.action_counts.clear()
    res = ws.cli("apply", "p2.json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.emulator.action_counts[77] == 2 and ws.live()[0]["bet"] == "3.000"


def test_two_thousand_past_windows_validate_with_short_output(ws: JdbWorkspace) -> None:
    docs = "---\n".join(
        event_doc(ws, f"old{i}", name=f"Old {i}", startTime="2020-01-01T00:00:00+08:00", endTime="2020-01-08T00:00:00+08:00")
        for i in range(2000)
    )
    ws.write("manifests/events.yaml", docs)
    res = ws.cli("validate")
    assert res.exit_code == 0, res.stderr[-500:]
    lines = res.stderr.splitlines()
    assert len(lines) == 51 and lines[-1] == "warning: ... and 1950 more"
    assert lines[0].startswith("warning: manifests/events.yaml:") and "spec.endTime" in lines[0]

"""FreeSpinEvent against every answer the JDB documents leave open (issue #22): each emulator knob
is a fixture parameter and the product is run end to end through the CLI against each value.

Knobs: ``bonuschips_times_answer`` (null / echo), ``repeat_transaction`` (answer / bind),
``update_fields`` (newest / older), ``update_active`` (allowed / refused), ``bind_bound``
(noop / failed); ``jdb_mode`` (documented / extended Action 76) runs under all of them."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.vendors.jdb.client import EventDraft, parse_iso
from reconciler.vendors.jdb.free_spin_event import key_scope, transaction_id

from .conftest import AGENT, SANDBOX_DC, JdbWorkspace
from .test_free_spin_event import apply, assert_converged, event_doc, when

CHIPS: dict[str, Any] = {"type": "BONUSCHIPS", "times": None, "bonusChips": "100", "chipsMultiplier": "2.5"}


def draft(ws: JdbWorkspace, **fields: Any) -> EventDraft:
    base: dict[str, Any] = dict(
        name="Spring spins",
        start=parse_iso(when(ws, 1)),
        end=parse_iso(when(ws, 8)),
        machine_types=(14077, 14085),
        bet="2.5",
        type="NORMAL",
        min_withdrawal="10",
        max_withdrawal="100",
        times=10,
    )
    base.update(fields)
    return EventDraft(**base)


# -- item 3: BONUSCHIPS times, echoed or not, never makes a replace ------------------------------
@pytest.mark.parametrize("bonuschips_times_answer", ["null", "echo"])
@pytest.mark.parametrize("allow_replace", [False, True])
def test_bonus_chips_times_answer_never_turns_a_plan_into_a_replace(ws: JdbWorkspace, allow_replace: bool) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, **CHIPS, allowReplace=allow_replace))
    apply(ws)
    [event] = ws.live()
    assert event["times"] == (1 if ws.emulator.bonuschips_times_answer == "echo" else None)
    assert_converged(ws)
    out = apply(ws)
    assert "Apply:" not in out  # nothing to do, whatever JDB answers as times
    assert [e["eventId"] for e in ws.events()] == [event["eventId"]]


# -- item 2: a create answered with someone else's event -----------------------------------------
@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_a_create_answered_with_another_environments_event_binds_nobody(ws: JdbWorkspace) -> None:
    """Staging made its event under the same (legacy) transactionId on the shared agent, with its
    own display name and players. Production's create gets staging's eventId back: an error that
    names the event, nothing bound to it, nothing reported as created — whatever JDB does with the
    players of a repeated transactionId (none are sent with it)."""
    staging = ws.client.create_event(
        agent=AGENT,
        draft=draft(ws, name="Spring spins [staging]"),
        transaction_id=transaction_id(AGENT, "spring", 1),
        players=["player00050"],
    )
    ws.write("manifests/events.yaml", event_doc(ws))
    assert "+ create FreeSpinEvent/spring" in ws.cli("plan").stdout  # the staging event is not adopted
    for _ in range(2):
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4, res.stdout + res.stderr
        assert f"answered event {staging.event_id} 'Spring spins [staging]'" in res.stdout
        assert "nothing was bound to it" in res.stdout and "player(s) bound" not in res.stdout
    [event] = ws.events()
    assert (event["name"], event["numberOfPlayers"]) == ("Spring spins [staging]", 1)


@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_environments_sharing_an_agent_have_their_own_transaction_ids(ws: JdbWorkspace) -> None:
    """With --env, the key of each environment is its own: staging and production each create and
    bind their own event on one agent; running one again creates nothing."""
    ws.write("reconciler.yaml", (ws.root / "reconciler.yaml").read_text() + "environments:\n  staging: {}\n  production: {}\n")
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins [staging]"))
    assert ws.cli("--env", "staging", "apply", "--auto-approve").exit_code == 0
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins", players=["player00007"]))
    res = ws.cli("--env", "production", "apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "1 of 1 player(s) bound" in res.stdout
    assert sorted((e["name"], e["numberOfPlayers"]) for e in ws.live()) == [("Spring spins", 1), ("Spring spins [staging]", 3)]
    assert ws.cli("--env", "production", "plan", "--detailed-exitcode").exit_code == 0
    assert (
        transaction_id(AGENT, "spring", 1, key_scope("staging", None))
        != transaction_id(AGENT, "spring", 1, key_scope("production", None))
        != transaction_id(AGENT, "spring", 1)
    )
    assert key_scope(None, "default") == "" and key_scope(None, "brand-b") == "connection=brand-b"


@pytest.mark.parametrize("event_retention_days", [None])
@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_a_name_reused_after_its_old_event_aged_out_is_never_reported_created(ws: JdbWorkspace) -> None:
    """The old event of ``spring`` ended long ago (outside every read window) while JDB still
    remembers its transactionId (retention knob: forever); Action 72 answers its eventId for the
    reused name. Each apply says so and fails; none says "created"."""
    now = ws.clock.now
    ws.clock.now = now - 400 * 86400
    old = ws.client.create_event(
        agent=AGENT, draft=draft(ws, name="Old promo"), transaction_id=transaction_id(AGENT, "spring", 1), players=["player00001"]
    )
    ws.clock.now = now
    ws.write("manifests/events.yaml", event_doc(ws))
    for _ in range(2):
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4, res.stdout + res.stderr
        assert f"answered event {old.event_id}, which Action 76 does not list" in res.stdout
        assert "spec.generation to 2" in res.stdout and "not reported as created" in res.stdout
        assert "player(s) bound" not in res.stdout
    ws.write("manifests/events.yaml", event_doc(ws, generation=2))
    assert "3 of 3 player(s) bound" in apply(ws)
    assert_converged(ws)


@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_a_name_reused_after_jdb_forgot_its_old_event_is_created_once(ws: JdbWorkspace) -> None:
    """With the seed's 180-day retention the old event and its transactionId are gone: the reused
    name is a real create, made once (a second apply plans nothing), and the old event stays gone."""
    now = ws.clock.now
    ws.clock.now = now - 400 * 86400
    old = ws.client.create_event(
        agent=AGENT, draft=draft(ws, name="Old promo"), transaction_id=transaction_id(AGENT, "spring", 1), players=["player00001"]
    )
    ws.clock.now = now
    ws.write("manifests/events.yaml", event_doc(ws))
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "3 of 3 player(s) bound" in res.stdout and str(old.event_id) not in res.stdout
    assert [e["name"] for e in ws.live()] == ["Spring spins"]
    assert_converged(ws)


def test_a_back_office_event_of_the_same_type_and_start_is_not_adopted_as_a_rename(ws: JdbWorkspace) -> None:
    """An event made in the back office on the same day, with other spins and another end and none
    of our players: the new manifest is a create, the back-office event is left alone."""
    bo = ws.client.create_event(
        agent=AGENT,
        draft=draft(ws, name="BO promo", times=3, end=parse_iso(when(ws, 5))),
        transaction_id="back-office-1",
        players=["player00050"],
    )
    ws.write("manifests/events.yaml", event_doc(ws))
    plan = ws.cli("plan")
    assert "+ create FreeSpinEvent/spring" in plan.stdout and "~ update" not in plan.stdout
    apply(ws)
    events = {e["eventId"]: e for e in ws.events()}
    assert (events[bo.event_id]["name"], events[bo.event_id]["numberOfPlayers"]) == ("BO promo", 1)
    assert len(events) == 2


def test_an_identical_event_of_someone_else_is_not_adopted_as_a_rename(ws: JdbWorkspace) -> None:
    """Same spins, window, bet and games, another name and none of our players (another
    environment's, say): not ours, so a create — even when Action 76 returns every field."""
    other = ws.client.create_event(
        agent=AGENT, draft=draft(ws, name="Spring spins [staging]"), transaction_id="someone-else-1", players=["player00050"]
    )
    ws.write("manifests/events.yaml", event_doc(ws))
    assert "+ create FreeSpinEvent/spring" in ws.cli("plan").stdout
    apply(ws)
    assert {e["eventId"]: e["name"] for e in ws.events()}[other.event_id] == "Spring spins [staging]"


# -- item 3: a replace at most once per manifest change ------------------------------------------
def test_a_replace_is_made_once_per_manifest_change_whatever_jdb_answers(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, times=20, allowReplace=True))
    out = apply(ws)
    assert "TERMINATED; event" in out and "(replacement 1)" in out
    [new] = ws.live()
    # JDB now answers the new event's spins otherwise than they were sent (as a JDB that stores
    # another value would): the next plan proposes the replace again ...
    with ws.emulator.lock:
        ws.emulator.db.execute("UPDATE events SET times = 19 WHERE event_id = ?", (new["eventId"],))
    assert "-/+ replace FreeSpinEvent/spring" in ws.cli("plan").stdout
    # ... but apply finds that this manifest's replacement is that very event: nothing terminated or created
    for _ in range(2):
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "not replaced again" in res.stdout and "Nothing was terminated or created" in res.stdout
    assert [(e["status"], e["eventId"]) for e in ws.events()][-1] == ("INACTIVE", new["eventId"])
    assert len(ws.events()) == 2


def test_a_failed_replace_says_the_old_event_was_terminated(ws: JdbWorkspace) -> None:
    ws.emulator.register_players(AGENT, ["lockedvip"], locked=True)
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    old = ws.live()[0]["eventId"]
    ws.write(
        "manifests/events.yaml",
        event_doc(ws, times=20, allowReplace=True, players=["player00001", "player00002", "player00003", "lockedvip"]),
    )
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert f"old event {old} TERMINATED" in res.stdout and "PARTIAL GRANT: 3 of 4" in res.stdout
    assert "failed to bind (1): lockedvip" in res.stdout


# -- item 4: live events are guarded -------------------------------------------------------------
@pytest.mark.parametrize("jdb_mode", ["extended"])  # bet and withdrawals are seen only in an extended reply
@pytest.mark.parametrize("update_active", ["allowed", "refused"])
def test_a_money_change_to_an_active_event_needs_the_opt_in(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), bet="1"))
    apply(ws)
    assert ws.live()[0]["status"] == "ACTIVE"
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), bet="50", maxWithdrawal="-1"))
    plan = ws.cli("plan")
    assert "CHANGE TO A RUNNING PROMOTION" in plan.stdout and "blocked:" in plan.stdout
    assert "allowLiveChanges" in plan.stdout
    refused = ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "allowLiveChanges" in refused.stderr
    assert (ws.live()[0]["bet"], ws.live()[0]["maxWithdrawal"]) == ("1.000", "100.000")
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), bet="50", maxWithdrawal="-1", allowLiveChanges=True))
    res = ws.cli("apply", "--auto-approve")
    if ws.emulator.update_active == "allowed":
        assert res.exit_code == 0, res.stdout + res.stderr
        assert (ws.live()[0]["bet"], ws.live()[0]["maxWithdrawal"]) == ("50.000", "-1")
    else:
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "JDB refused to update event" in res.stdout and "nothing was changed" in res.stdout
        assert (ws.live()[0]["bet"], ws.live()[0]["maxWithdrawal"]) == ("1.000", "100.000")


def test_force_also_allows_a_live_change_and_a_name_alone_needs_nothing(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1)))
    apply(ws)
    for changed in ({}, {"machineTypes": [14077]}):  # a rename, then a change of games: no opt-in needed
        ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), name="Spring spins (live)", **changed))
        plan = ws.cli("plan")
        assert "CHANGE TO A RUNNING PROMOTION" in plan.stdout and "blocked:" not in plan.stdout
        apply(ws)
    ws.write(
        "manifests/events.yaml",
        event_doc(
            ws,
            startTime=when(ws, -1),
            name="Spring spins (live)",
            machineTypes=[14077],
            players=["player00001", "player00002", "player00003", "player00004"],
            allowRebind=True,
        ),
    )
    blocked = ws.cli("apply", "--auto-approve")
    assert blocked.exit_code == 1 and "allowLiveChanges" in blocked.stderr
    assert "1 player(s) sent to bind" in apply(ws, "--force")
    assert ws.live()[0]["numberOfPlayers"] == 4


@pytest.mark.parametrize("update_fields", ["newest", "older"])
@pytest.mark.parametrize("jdb_mode", ["extended"])
def test_a_mutable_update_works_whichever_fields_action_77_may_change(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, bet="3", machineTypes=[14077]))
    apply(ws)
    [event] = ws.live()
    assert (event["bet"], event["machineTypes"], event["times"]) == ("3.000", [14077], 10)
    assert_converged(ws)


@pytest.mark.parametrize("bind_bound", ["noop", "failed", "error"])
def test_players_unbound_out_of_band_are_not_bound_again_without_the_opt_in(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    [event] = ws.live()
    ws.client.unbind_players(agent=AGENT, event_id=event["eventId"], players=["player00002"])  # the back office
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "player00002" in plan.stdout and "not bound again without spec.allowRebind" in plan.stdout
    assert "Apply:" not in apply(ws)
    assert ws.live()[0]["numberOfPlayers"] == 2
    ws.write("manifests/events.yaml", event_doc(ws, allowRebind=True))
    assert "1 player(s) sent to bind" in apply(ws)
    assert ws.live()[0]["numberOfPlayers"] == 3
    assert_converged(ws)


def test_a_manifest_change_shown_by_the_last_applied_plan_binds_new_players(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    assert ws.cli("plan", "--out", "p1.json").exit_code == 0
    assert ws.cli("apply", "p1.json").exit_code == 0
    ws.write("manifests/events.yaml", event_doc(ws, players=["player00001", "player00002", "player00003", "player00004"]))
    plan = ws.cli("plan", "--last-applied", "p1.json", "--out", "p2.json")
    assert "players (bind)" in plan.stdout, plan.stdout
    assert ws.cli("apply", "p2.json").exit_code == 0
    assert ws.live()[0]["numberOfPlayers"] == 4


@pytest.mark.parametrize("bind_bound", ["noop", "failed", "error"])
def test_rebinding_a_large_list_is_not_a_partial_grant_whatever_jdb_says_of_bound_players(ws: JdbWorkspace) -> None:
    """More declared players than the read budget: membership is judged by count and the whole
    list is sent again; a JDB that lists bound players as failed does not make a partial grant,
    and one that refuses the whole call says why, with nothing bound."""
    players = [f"vip{i:04d}" for i in range(101)]
    ws.emulator.register_players(AGENT, players)
    ws.write("manifests/events.yaml", event_doc(ws, players=players))
    apply(ws)
    [event] = ws.live()
    ws.client.unbind_players(agent=AGENT, event_id=event["eventId"], players=["vip0100"])
    assert "not bound again" in ws.cli("plan").stdout
    ws.write("manifests/events.yaml", event_doc(ws, players=players, allowRebind=True))
    res = ws.cli("apply", "--auto-approve")
    if ws.emulator.bind_bound == "error":
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "JDB refused to bind 101 player(s)" in res.stdout and "cannot be checked one by one" in res.stdout
        assert ws.live()[0]["numberOfPlayers"] == 100
        return
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.live()[0]["numberOfPlayers"] == 101


# -- item 5: a partial grant exits 4 and names who ----------------------------------------------
@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_a_partial_grant_exits_4_and_names_the_players(ws: JdbWorkspace) -> None:
    ws.emulator.register_players(AGENT, ["lockedvip"], locked=True)
    ws.write("manifests/events.yaml", event_doc(ws, players=["player00001", "ghost", "lockedvip"]))
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "PARTIAL GRANT: 1 of 3 player(s) bound, 2 not bound" in res.stdout
    assert "do not exist (1): ghost" in res.stdout and "failed to bind (1): lockedvip" in res.stdout
    assert ws.live()[0]["numberOfPlayers"] == 1 and len(ws.events()) == 1


# -- item 4: currency --------------------------------------------------------------------------
def test_an_event_in_another_currency_gets_nobody_bound(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, currency="US"))  # the emulator's agent pays in RB
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "currency: JDB has RB, declared US" in res.stdout and "nothing was bound" in res.stdout
    assert ws.live()[0]["numberOfPlayers"] == 0
    plan = ws.cli("plan")
    assert "pays in RB, the manifest declares currency US" in plan.stdout
    ws.write("manifests/events.yaml", event_doc(ws, currency="US", allowRebind=True))
    blocked = ws.cli("apply", "--auto-approve")
    assert blocked.exit_code == 1 and "cannot change an event's currency" in blocked.stderr
    assert ws.live()[0]["numberOfPlayers"] == 0
    ws.write("manifests/events.yaml", event_doc(ws, "other", name="Other", currency="US"))
    plan = ws.cli("plan")
    assert "+ create FreeSpinEvent/other" in plan.stdout and "blocked:" in plan.stdout  # the agent's events are in RB


@pytest.mark.parametrize("currency", ["RB", "US"])
def test_the_configured_currency_applies_to_every_event(ws: JdbWorkspace, currency: str) -> None:
    config = (ws.root / "reconciler.yaml").read_text()
    ws.write("reconciler.yaml", config.replace(f"dc: {SANDBOX_DC}\n", f"dc: {SANDBOX_DC}\n    currency: {currency}\n"))
    ws.write("manifests/events.yaml", event_doc(ws))
    res = ws.cli("apply", "--auto-approve")
    if currency == "RB":  # the emulator's agent pays in RB
        assert res.exit_code == 0 and "3 of 3 player(s) bound" in res.stdout, res.stdout + res.stderr
        assert_converged(ws)
    else:
        assert res.exit_code == 4 and "currency: JDB has RB, declared US" in res.stdout, res.stdout + res.stderr
        assert ws.live()[0]["numberOfPlayers"] == 0


def _with_ladders(ws: JdbWorkspace) -> None:
    config = (ws.root / "reconciler.yaml").read_text()
    ladders = '    bet_ladders:\n      14077: ["1", "5", "15", "20", "30"]\n      14085: ["3", "5", "25"]\n'
    ws.write("reconciler.yaml", config.replace(f"dc: {SANDBOX_DC}\n", f"dc: {SANDBOX_DC}\n{ladders}"))


def test_a_bet_below_a_games_smallest_bet_is_refused_before_any_call(ws: JdbWorkspace) -> None:
    _with_ladders(ws)
    ws.write("manifests/events.yaml", event_doc(ws, bet="2"))  # 14085's smallest bet is 3
    for command in ("validate", "plan"):
        res = ws.cli(command)
        assert res.exit_code == 1, res.stdout + res.stderr
        assert "manifests/events.yaml:" in res.stderr and "spec.bet" in res.stderr
        assert "below the smallest bet 3 of machine type 14085" in res.stderr
    assert ws.stats().get("POST /apiRequest.do", 0) == 0


def test_the_plan_shows_the_bet_jdb_locks_per_game(ws: JdbWorkspace) -> None:
    _with_ladders(ws)
    ws.write("manifests/events.yaml", event_doc(ws, bet="25", machineTypes=[14077, 14085, 14099]))
    plan = ws.cli("plan")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "bet: JDB locks 20 on machine type 14077 (declared 25)" in plan.stdout
    assert "14085 (declared" not in plan.stdout  # 25 is on its ladder
    assert "bet not checked for machine type(s) 14099" in plan.stdout


def test_an_active_event_is_replaced_with_the_manifest_opt_in_instead_of_force(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1)))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), times=99, allowReplace=True))
    refused = ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "allowLiveChanges" in refused.stderr
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), times=99, allowReplace=True, allowLiveChanges=True))
    plan = ws.cli("plan")
    assert "CHANGE TO A RUNNING PROMOTION" in plan.stdout and "blocked:" not in plan.stdout
    apply(ws)
    assert [e["times"] for e in ws.live()] == [99]


@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_an_auto_created_player_sent_to_another_event_is_said_so(ws: JdbWorkspace) -> None:
    """autoCreatePlayerEnabled needs its one player on Action 72; when the key answers another
    event the error says that player may have been bound to it (a JDB that binds on a repeat)."""
    staging = ws.client.create_event(
        agent=AGENT, draft=draft(ws, name="Spring spins [staging]"), transaction_id=transaction_id(AGENT, "spring", 1)
    )
    ws.write("manifests/events.yaml", event_doc(ws, players=["brandnew1"], autoCreatePlayerEnabled=True))
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert f"answered event {staging.event_id}" in res.stdout and "may have been bound to it" in res.stdout


def test_the_default_connection_keeps_the_keys_earlier_versions_made() -> None:
    import uuid

    from reconciler.vendors.jdb.free_spin_event import TRANSACTION_NAMESPACE

    legacy = str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{AGENT}\nspring\n1"))
    assert transaction_id(AGENT, "spring", 1, key_scope(None, "default")) == legacy
    assert transaction_id(AGENT, "spring", 1, key_scope(None, "staging")) != legacy


def test_a_rename_together_with_another_change_is_not_taken_for_a_rename(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    [event] = ws.live()
    ws.write("manifests/events.yaml", event_doc(ws, name="Renamed", machineTypes=[14077]))
    assert "+ create FreeSpinEvent/spring" in ws.cli("plan").stdout
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert f"answered event {event['eventId']} 'Spring spins'" in res.stdout and "rename it alone first" in res.stdout
    assert [(e["name"], e["numberOfPlayers"]) for e in ws.events()] == [("Spring spins", 3)]


def test_many_events_with_unbound_players_keep_the_plan_short(ws: JdbWorkspace) -> None:
    docs = "---\n".join(event_doc(ws, f"e{i}", name=f"Event {i}", players=[f"player{i + 1:05d}"]) for i in range(25))
    ws.write("manifests/events.yaml", docs)
    apply(ws)
    for event in ws.live():
        ws.client.unbind_players(agent=AGENT, event_id=event["eventId"], players=[f"player{int(event['name'][6:]) + 1:05d}"])
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert plan.stdout.count("not bound again without spec.allowRebind") == 20
    assert "... and 5 more event(s) with declared players not bound again" in plan.stdout


@pytest.mark.parametrize("bind_bound", ["noop", "failed", "error"])
def test_binding_a_small_list_that_holds_a_bound_player(ws: JdbWorkspace) -> None:
    """Action 74 with one player already bound: whatever JDB answers for it (no-op, failed, the
    whole call refused), the unbound one ends up bound and nobody is reported not bound."""
    from datetime import datetime, timezone

    from reconciler.vendors.jdb.free_spin_event import _bind

    event = ws.client.create_event(agent=AGENT, draft=draft(ws), transaction_id="small-list", players=["player00001"])
    ref = {"id": event.event_id, "startTime": when(ws, 1), "endTime": when(ws, 8)}
    result = _bind(ws.client, AGENT, ref, ["player00001", "player00002"], datetime.fromtimestamp(ws.clock.now, timezone.utc))
    assert (result.failed, result.not_existed) == ((), ())
    assert ws.live()[0]["numberOfPlayers"] == 2

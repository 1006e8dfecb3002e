"""Issue 23 items 1 and 2 with JDB: a plan, a drift report and a saved-plan apply never say more
than was read and seen. Both Action 76 answers (the documented fields only, and the extended
guess) are exercised: what the documented one cannot show must be listed as not compared."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from reconciler.vendors.jdb.client import EventDraft, parse_iso

from .conftest import AGENT, JdbWorkspace
from .test_free_spin_event import TZ8, apply, event_doc, when


def raise_bet_out_of_band(ws: JdbWorkspace, factor: int = 500) -> None:
    """The back office raises the bet of the (only) live event; the other fields stay."""
    [e] = ws.live()
    draft = EventDraft(
        name=e["name"],
        start=parse_iso(e["startTime"]),
        end=parse_iso(e["endTime"]),
        machine_types=tuple(e["machineTypes"]),
        bet=str(float(e["bet"]) * factor),
        type=e["type"],
        min_withdrawal=e["minWithdrawal"],
        max_withdrawal=e["maxWithdrawal"],
        times=e["times"],
    )
    ws.client.update_event(agent=AGENT, event_id=e["eventId"], draft=draft)
    assert ws.live()[0]["bet"] != e["bet"]


def test_drift_that_cannot_see_the_bet_never_says_none(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    raise_bet_out_of_band(ws)
    text = ws.cli("plan", "--drift")
    md = ws.cli("plan", "--drift", "--format", "markdown")
    js = ws.cli("plan", "--drift", "--format", "json")
    for r in (text, md, js):
        assert "matches" not in r.stdout and "Drift: none." not in r.stderr, r.stdout + r.stderr
    if ws.emulator.search_fields == "extended":  # the reply carries bet: drift is seen
        assert text.exit_code == 2, text.stdout + text.stderr
        assert "Drift: 1 resource(s) differ" in text.stderr and "bet: " in text.stdout
        return
    # documented: JDB never returns bet, so the check is incomplete (exit 5), and says which field
    assert text.exit_code == md.exit_code == js.exit_code == 5, text.stdout + text.stderr
    assert "Drift: none found in what could be read and compared, but the check is incomplete." in text.stderr
    assert "Not read or not compared (" in text.stdout
    assert (
        "! FreeSpinEvent: bet not compared (1 resource(s)): JDB's replies (Action 76, Action 71) do not carry it" in text.stdout
    )
    assert "Nothing to apply in what could be read and compared, but the comparison is incomplete" in text.stdout
    assert "**Not read or not compared (" in md.stdout and "- FreeSpinEvent: bet not compared" in md.stdout
    data = json.loads(js.stdout)
    assert data["complete"] is False and data["drift"] == []
    assert {"kind": "FreeSpinEvent", "field": "bet", "resources": 1, "connection": "default"}.items() <= next(
        g for g in data["incomplete"] if g["field"] == "bet"
    ).items()
    # the plain plan says the same: nothing to apply, never "No changes"/"matches"
    plan = ws.cli("plan")
    assert plan.exit_code == 0 and "No changes" not in plan.stdout and "matches" not in plan.stdout
    assert "Incomplete: 3 field(s) not compared." in plan.stdout  # bet, minWithdrawal, maxWithdrawal
    # a saved plan keeps the list: `show` (text and Markdown) says the same as the plan did
    assert ws.cli("plan", "--out", "p.json").exit_code == 0
    shown = ws.cli("show", "p.json")
    assert "! FreeSpinEvent: bet not compared (1 resource(s))" in shown.stdout and "matches" not in shown.stdout
    shown_md = ws.cli("show", "p.json", "--format", "markdown")
    assert "- FreeSpinEvent: bet not compared" in shown_md.stdout and "matches" not in shown_md.stdout


@pytest.mark.parametrize("jdb_mode", ["extended"])
def test_a_complete_check_still_says_none(ws: JdbWorkspace) -> None:
    """Positive control: where every declared field is returned and every player checked, the
    words are earned."""
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    drift = ws.cli("plan", "--drift")
    assert drift.exit_code == 0 and "Drift: none." in drift.stderr, drift.stdout + drift.stderr
    assert "No changes. Live state matches the manifests." in drift.stdout
    assert "Not read or not compared" not in drift.stdout and "Incomplete" not in drift.stdout
    data = json.loads(ws.cli("plan", "--format", "json").stdout)
    assert data["incomplete"] == []


def test_an_excluded_player_still_bound_to_an_active_event_is_drift(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1)))
    apply(ws)
    ws.write(
        "manifests/events.yaml",
        event_doc(ws, startTime=when(ws, -1), players=["player00001", "player00002"], excludedPlayers=["player00003"]),
    )
    drift = ws.cli("plan", "--drift")
    assert drift.exit_code == 2, drift.stdout + drift.stderr
    assert "1 resource(s) differ in ways apply cannot change (FreeSpinEvent/spring)" in drift.stderr
    assert "Drift: none" not in drift.stderr and "matches" not in drift.stdout
    assert "No changes to apply, but 1 resource(s) differ from the manifests in ways apply cannot change" in drift.stdout
    data = json.loads(ws.cli("plan", "--drift", "--format", "json").stdout)
    assert data["differs"] and data["differs"][0].startswith("FreeSpinEvent/spring: excluded player(s) still bound")


def test_players_beyond_the_read_budget_are_listed_as_not_compared(ws: JdbWorkspace) -> None:
    players = [f"player{i:05d}" for i in range(1, 121)]  # more than one plan's Action 71 budget (100)
    ws.write("manifests/events.yaml", event_doc(ws, players=players))
    apply(ws)
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "! FreeSpinEvent: players not compared (1 resource(s)): not every declared player was checked" in plan.stdout
    assert "No changes" not in plan.stdout and "matches" not in plan.stdout


def test_no_kind_read_never_says_no_changes(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.faults(error_rate=1.0)
    for fmt in ("text", "markdown", "json"):
        r = ws.cli("plan", "--format", fmt)
        assert r.exit_code == 1, r.stdout + r.stderr
        assert "No changes" not in r.stdout and "matches" not in r.stdout, r.stdout
        assert "live state could not be read" in r.stderr
        if fmt == "json":
            [gap] = json.loads(r.stdout)["incomplete"]
            assert gap["kind"] == "FreeSpinEvent" and gap["field"] == ""
        else:
            assert "FreeSpinEvent: live state not read: " in r.stdout
            assert "Incomplete: 1 kind(s) not read." in r.stdout
    drift = ws.cli("plan", "--drift")
    assert drift.exit_code == 1 and "Drift: none" not in drift.stderr, drift.stdout + drift.stderr
    assert "Drift: not known: 1 kind(s) could not be read. Incomplete: 1 kind(s) not read." in drift.stderr
    assert "FreeSpinEvent: live state not read: " in drift.stdout  # the report says which kind, and why
    assert "error: FreeSpinEvent: live state could not be read" in drift.stderr


def test_a_saved_plan_updating_an_event_terminated_out_of_band_is_stale(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins II"))
    assert ws.cli("plan", "--out", "plan.json").exit_code == 0
    [event] = ws.live()
    ws.client.terminate_event(agent=AGENT, event_id=event["eventId"])  # the back office stops it
    for fmt in ("text", "markdown"):
        res = ws.cli("apply", "plan.json", "--format", fmt)
        assert res.exit_code == 3, res.stdout + res.stderr
        assert "already in the desired state" not in res.stdout
        assert "terminated out of band since the plan" in res.stdout, res.stdout
    assert [e["status"] for e in ws.events()] == ["TERMINATED"] and ws.events()[0]["name"] == "Spring spins"


def test_a_saved_plan_whose_target_was_reached_is_skipped(ws: JdbWorkspace) -> None:
    """Positive control for item 2: applied twice, the second run finds the target reached."""
    ws.write("manifests/events.yaml", event_doc(ws))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, name="Spring spins II"))
    assert ws.cli("plan", "--out", "plan.json").exit_code == 0
    assert ws.cli("apply", "plan.json").exit_code == 0
    again = ws.cli("apply", "plan.json")
    assert again.exit_code == 0 and "already in the desired state" in again.stdout, again.stdout + again.stderr


def test_a_saved_plan_updating_an_event_that_expired_since_is_stale(ws: JdbWorkspace) -> None:
    """Not out of band, but the same untruth: an event that expired after the plan was made is
    not "already in the desired state" when the plan's change was never made."""
    end = datetime.fromtimestamp(int(time.time()) + 4, TZ8).isoformat()
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), endTime=end))
    apply(ws)
    ws.write("manifests/events.yaml", event_doc(ws, startTime=when(ws, -1), endTime=end, machineTypes=[14077]))
    assert ws.cli("plan", "--out", "plan.json").exit_code == 0
    time.sleep(max(0.0, datetime.fromisoformat(end).timestamp() - time.time()) + 0.5)
    ws.clock.now = time.time()  # the emulator's clock follows: the event has EXPIRED
    res = ws.cli("apply", "plan.json")
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "STALE   update FreeSpinEvent/spring" in res.stdout and "already in the desired state" not in res.stdout
    drift = ws.cli("plan", "--drift")
    assert drift.exit_code == 2 and "differ in ways apply cannot change (FreeSpinEvent/spring)" in drift.stderr
    assert [e["status"] for e in ws.events()] == ["EXPIRED"] and ws.events()[0]["machineTypes"] == [14077, 14085]

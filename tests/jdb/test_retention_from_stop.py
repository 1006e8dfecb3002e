"""When does a stopped event's retention start? The Action 71 seed keeps an event "for 180 days
after the free spin reward expires" and does not say when a TERMINATED (Action 73) event expires:
at its ``endTime`` or when it was stopped. The emulator's ``event_retention_from`` knob answers
``end`` (the default) or ``stop``, and the product is tested against both (and against
``event_retention_days`` 180 or forever): an event with a long window that someone stopped more
than 180 days ago is never created again silently, whether JDB still shows it TERMINATED or has
forgotten it. A create whose start is more than 180 days past and that JDB does not show is
blocked unless ``spec.createAfterRetention: true`` says it was never granted.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.vendors.jdb.emulator import JdbEmulator

from .conftest import AGENT, SANDBOX_DC, SANDBOX_IV, SANDBOX_KEY, Clock, JdbWorkspace, RawJdb
from .test_free_spin_event import event_doc

TZ8 = timezone(timedelta(hours=8))
DAY = 86_400
WRITES = (72, 73, 74, 75, 77)
BOTH = pytest.mark.parametrize("event_retention_from", ["end", "stop"])
DAYS = pytest.mark.parametrize("event_retention_days", [180, None], ids=["180-days", "forever"])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), TZ8).isoformat()


def _event(raw: RawJdb, *, start: float, end: float, tid: str) -> dict[str, Any]:
    return raw.call(
        {
            "action": 72,
            "name": "Spring spins",
            "startTime": _iso(start),
            "endTime": _iso(end),
            "machineTypes": [14077, 14085],
            "bet": "2.5",
            "times": 10,
            "type": "NORMAL",
            "minWithdrawal": "10",
            "maxWithdrawal": "100",
            "transactionId": tid,
            "players": ["player00001", "player00002", "player00003"],
        }
    )


def _stopped(raw: RawJdb, clock: Clock, *, stopped_days_ago: int, end_days: int = 400) -> tuple[str, str, int]:
    """An event made 400 days ago, started 390 days ago, ending ``end_days`` from now (a long
    window), stopped with Action 73 ``stopped_days_ago`` days ago (the emulator's clock set back,
    then restored): as it would stand in JDB today. Returns its start, end and eventId."""
    real = clock.now
    start, end = real - 390 * DAY, real + end_days * DAY
    clock.now = real - 400 * DAY
    body = _event(raw, start=start, end=end, tid="long-window")
    assert body["status"] == "0000", body
    event_id = int(body["data"]["eventId"])
    clock.now = real - stopped_days_ago * DAY
    assert raw.call({"action": 73, "eventId": event_id}) == {"status": "0000"}
    clock.now = real
    return _iso(start), _iso(end), event_id


def _forgotten(emulator: JdbEmulator, stopped_days_ago: int) -> bool:
    """What the knobs say about an event stopped that long ago whose endTime is still ahead."""
    days = emulator.event_retention_days
    return days is not None and emulator.event_retention_from == "stop" and stopped_days_ago > days


# -- the emulator's answers (raw HTTP, no client) ----------------------------------------------------
@BOTH
@DAYS
@pytest.mark.parametrize("stopped_days_ago", [200, 100])
def test_emulator_keeps_a_stopped_event_by_the_retention_knobs(
    raw: RawJdb, clock: Clock, jdb_emulator: JdbEmulator, stopped_days_ago: int
) -> None:
    _, _, event_id = _stopped(raw, clock, stopped_days_ago=stopped_days_ago)
    now = clock.now
    search = raw.call({"action": 76, "startTime": _iso(now - 500 * DAY), "endTime": _iso(now + 500 * DAY)})
    players = raw.call({"action": 71, "uid": "player00001"})
    bind = raw.call({"action": 74, "eventId": event_id, "players": ["player00004"]})
    stop = raw.call({"action": 73, "eventId": event_id})
    again = _event(raw, start=now + DAY, end=now + 8 * DAY, tid="long-window")  # the same transactionId
    if _forgotten(jdb_emulator, stopped_days_ago):  # "stop": 180 days after Action 73, its window still open
        assert search == {"status": "0000", "data": []} and players == {"status": "0000", "data": []}
        assert bind == {"status": "9015", "err_text": "Event not exist."}
        assert stop == {"status": "9998", "err_text": "Event not exist."}
        assert again["data"]["eventId"] != event_id  # the transactionId is gone too
    else:  # "end" (kept until 180 days after its endTime), forever, or stopped less than 180 days ago
        assert [(r["eventId"], r["status"]) for r in search["data"]] == [(event_id, "TERMINATED")]
        assert [r["status"] for r in players["data"]] == ["TERMINATED"]
        assert bind["status"] == stop["status"] == "9998"
        assert again["data"]["eventId"] == event_id


@BOTH
@pytest.mark.parametrize("ended_days_ago", [200, 100])
def test_emulator_counts_an_expired_event_from_its_end_under_both_answers(raw: RawJdb, clock: Clock, ended_days_ago: int) -> None:
    real = clock.now
    clock.now = real - (ended_days_ago + 10) * DAY
    body = _event(raw, start=clock.now + DAY, end=real - ended_days_ago * DAY, tid="expired")
    assert body["status"] == "0000", body
    clock.now = real
    search = raw.call({"action": 76, "startTime": _iso(real - 500 * DAY), "endTime": _iso(real)})
    if ended_days_ago > 180:
        assert search == {"status": "0000", "data": []}
    else:
        assert [r["status"] for r in search["data"]] == ["EXPIRED"]


def test_emulator_refuses_an_unknown_retention_start() -> None:
    with pytest.raises(ValueError, match="event_retention_from"):
        JdbEmulator(dc=SANDBOX_DC, key=SANDBOX_KEY, iv=SANDBOX_IV, event_retention_from="later")


def test_emulator_state_without_the_termination_time_takes_the_update_time(tmp_path: Path) -> None:
    """State kept by an emulator before ``terminated_ms`` existed: the column is added and a
    terminated event's time of termination is its update time (Action 73 set it last)."""
    clock = Clock(1_900_000_000.0)
    old = JdbEmulator(tmp_path, dc=SANDBOX_DC, key=SANDBOX_KEY, iv=SANDBOX_IV, clock=clock)
    old.db.execute(
        "INSERT INTO events (agent, transaction_id, name, type, start_ms, start_off, end_ms, end_off, machine_types, bet,"
        " min_w, max_w, terminated, created_ms, update_ms) VALUES (?, 't', 'n', 'NORMAL', 1, 0, 2, 0, '[1]', '1',"
        " '-1', '-1', 1, 0, 1234)",
        (AGENT,),
    )
    old.db.execute("DROP INDEX events_terminated")
    old.db.execute("ALTER TABLE events DROP COLUMN terminated_ms")
    old.db.close()
    JdbEmulator(tmp_path, dc=SANDBOX_DC, key=SANDBOX_KEY, iv=SANDBOX_IV, clock=clock, event_retention_days=None).db.close()
    db = sqlite3.connect(tmp_path / "jdb.sqlite")
    assert db.execute("SELECT terminated, terminated_ms FROM events").fetchall() == [(1, 1234)]
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'events_terminated'").fetchone() is not None
    db.close()


# -- the product against each answer -------------------------------------------------------------------
@BOTH
@DAYS
def test_an_event_stopped_long_ago_with_its_window_open_is_never_granted_again(
    ws: JdbWorkspace, raw: RawJdb, clock: Clock
) -> None:
    start, end, event_id = _stopped(raw, clock, stopped_days_ago=200)
    forgotten = _forgotten(ws.emulator, 200)
    assert len(ws.events()) == (0 if forgotten else 1)
    before = {a: ws.emulator.action_counts[a] for a in WRITES}
    ws.write("manifests/events.yaml", event_doc(ws, startTime=start, endTime=end))
    plan = ws.cli("plan", "--detailed-exitcode")
    markdown = ws.cli("plan", "--format", "markdown")
    if forgotten:  # JDB shows nothing: the create is proposed, blocked, and says why and how
        assert plan.exit_code == 2, plan.stdout + plan.stderr
        assert "+ create FreeSpinEvent/spring" in plan.stdout
        blocked = [ln for ln in plan.stdout.splitlines() if ln.strip().startswith("blocked:")]
        assert len(blocked) == 1 and "is more than 180 days past and JDB shows no such event" in blocked[0]
        assert "possibly counted from when it was stopped" in blocked[0] and "spec.createAfterRetention: true" in blocked[0]
        assert "**Blocked:**" in markdown.stdout and "createAfterRetention" in markdown.stdout
        (change,) = json.loads(ws.cli("plan", "--format", "json").stdout)["changes"]
        assert change["action"] == "create" and "spec.createAfterRetention: true" in change["data"]["blocked"]
    else:  # JDB still shows it TERMINATED: terminated out of band, nothing to do
        assert plan.exit_code == 0, plan.stdout + plan.stderr
        assert "+ create" not in plan.stdout and f"terminated out of band: event {event_id}" in plan.stdout
    res = ws.cli("apply", "--auto-approve")
    if forgotten:
        assert res.exit_code == 1, res.stdout + res.stderr
        assert "FreeSpinEvent/spring" in res.stderr and "spec.createAfterRetention: true" in res.stderr
    else:
        assert res.exit_code == 0, res.stdout + res.stderr
    assert {a: ws.emulator.action_counts[a] for a in WRITES} == before  # no Action 72, no write at all
    assert len(ws.events()) == (0 if forgotten else 1)


@BOTH
def test_create_after_retention_creates_an_old_start_once(ws: JdbWorkspace) -> None:
    """A brand-new JDB (a restore): an event that started 200 days ago and runs 30 days more. The
    plan cannot tell it from one stopped and forgotten: blocked without the field, created once with it."""
    now = ws.clock.now
    start, end = _iso(now - 200 * DAY), _iso(now + 30 * DAY)
    ws.write("manifests/events.yaml", event_doc(ws, startTime=start, endTime=end))
    refused = ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "spec.createAfterRetention: true" in refused.stderr, refused.stdout + refused.stderr
    assert ws.emulator.action_counts[72] == 0 and ws.events() == []
    ws.write("manifests/events.yaml", event_doc(ws, startTime=start, endTime=end, createAfterRetention=True))
    plan = ws.cli("plan")
    assert "+ create FreeSpinEvent/spring" in plan.stdout and "blocked:" not in plan.stdout, plan.stdout
    assert "spec.createAfterRetention: startTime" in plan.stdout  # the reviewer sees the acknowledgement
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.emulator.action_counts[72] == 1
    assert [(e["status"], e["numberOfPlayers"]) for e in ws.events()] == [("ACTIVE", 3)]
    again = ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0 and "+ create" not in again.stdout, again.stdout + again.stderr
    assert ws.cli("apply", "--auto-approve").exit_code == 0 and ws.emulator.action_counts[72] == 1


@BOTH
@pytest.mark.parametrize("started_days_ago", [179, 1])
def test_an_event_starting_within_the_retention_is_created_without_the_field(ws: JdbWorkspace, started_days_ago: int) -> None:
    now = ws.clock.now
    ws.write("manifests/events.yaml", event_doc(ws, startTime=_iso(now - started_days_ago * DAY), endTime=_iso(now + 30 * DAY)))
    plan = ws.cli("plan")
    assert "+ create FreeSpinEvent/spring" in plan.stdout and "blocked:" not in plan.stdout, plan.stdout
    assert "createAfterRetention" not in plan.stdout
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.emulator.action_counts[72] == 1 and [e["status"] for e in ws.events()] == ["ACTIVE"]


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_two_thousand_blocked_old_starts_plan_and_refuse_in_short_output(ws: JdbWorkspace) -> None:
    """Old manifests restored by hand (not from an export): 2,000 events started 200 days ago and
    still running. Every create is blocked; the plan and the refusal stay short, nothing is written."""
    now = ws.clock.now
    start, end = _iso(now - 200 * DAY), _iso(now + 30 * DAY)
    docs = "---\n".join(
        event_doc(ws, f"old{i}", name=f"Old {i}", startTime=start, endTime=end, players=["player00001"]) for i in range(2000)
    )
    ws.write("manifests/events.yaml", docs)
    plan = ws.cli("plan")
    assert plan.exit_code == 0, plan.stdout[-2000:] + plan.stderr
    assert (
        plan.stdout.count("blocked: startTime") == 20 and len(plan.stdout.splitlines()) < 400
    )  # 20 changes shown, the rest counted
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 1 and "spec.createAfterRetention: true" in res.stderr
    assert len(res.stderr) < 20_000 and "1980 more" in res.stderr, res.stderr[-500:]
    assert ws.emulator.action_counts[72] == 0 and ws.events() == []

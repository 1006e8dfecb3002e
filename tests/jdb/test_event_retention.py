"""JDB event retention (issue 22): the Action 71 seed says events are "retained for 180 days after
the free spin reward expires". How they disappear is not written, so the emulator's
``event_retention_days`` knob is 180 (the default: gone from every action once ``endTime`` is more
than 180 days past) or ``None`` (kept forever), and the product is tested against both: a declared
event whose window is past is a no-op whether JDB still shows it EXPIRED or has forgotten it —
never created again.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest


from .conftest import Clock, JdbWorkspace, RawJdb
from .test_free_spin_event import event_doc

TZ8 = timezone(timedelta(hours=8))
DAY = 86_400


# the conftest's emulator, with each answer of the knob the tests below read
pytestmark = pytest.mark.parametrize("event_retention_days", [180, None], ids=["180-days", "forever"])


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), TZ8).isoformat()


def _create_in_the_past(raw: RawJdb, clock: Clock, *, days_ago: int, terminate: bool = False) -> tuple[str, str, int]:
    """An event made ``days_ago`` days ago (the emulator's clock set back, then restored), a week
    long: as it would stand in JDB today. Returns its start, end and eventId."""
    real = clock.now
    clock.now = real - days_ago * DAY
    start, end = _iso(clock.now + DAY), _iso(clock.now + 8 * DAY)
    body = raw.call(
        {
            "action": 72,
            "name": "Spring spins",
            "startTime": start,
            "endTime": end,
            "machineTypes": [14077, 14085],
            "bet": "2.5",
            "times": 10,
            "type": "NORMAL",
            "minWithdrawal": "10",
            "maxWithdrawal": "100",
            "transactionId": f"retention-{days_ago}",
            "players": ["player00001", "player00002", "player00003"],
        }
    )
    assert body["status"] == "0000", body
    event_id = body["data"]["eventId"]
    if terminate:
        clock.now += 2 * DAY  # stopped while ACTIVE
        assert raw.call({"action": 73, "eventId": event_id})["status"] == "0000"
    clock.now = real
    return start, end, event_id


@pytest.mark.parametrize("terminate", [False, True], ids=["expired", "terminated"])
def test_emulator_forgets_an_event_180_days_after_its_end(
    raw: RawJdb, clock: Clock, event_retention_days: int | None, terminate: bool
) -> None:
    start, end, event_id = _create_in_the_past(raw, clock, days_ago=200, terminate=terminate)
    search = raw.call({"action": 76, "startTime": _iso(time.time() - 400 * DAY), "endTime": _iso(time.time())})
    players = raw.call({"action": 71, "uid": "player00001"})
    bind = raw.call({"action": 74, "eventId": event_id, "players": ["player00004"]})
    stop = raw.call({"action": 73, "eventId": event_id})
    if event_retention_days is None:
        assert [r["eventId"] for r in search["data"]] == [event_id]
        assert [r["status"] for r in players["data"]] == ["TERMINATED" if terminate else "EXPIRED"]
        assert bind["status"] == stop["status"] == "9998"  # an ended event binds nobody, is not stopped again
    else:
        assert search == {"status": "0000", "data": []} and players == {"status": "0000", "data": []}
        assert bind == {"status": "9015", "err_text": "Event not exist."}
        assert stop == {"status": "9998", "err_text": "Event not exist."}


def test_an_event_within_the_retention_is_kept(raw: RawJdb, clock: Clock) -> None:
    _, _, event_id = _create_in_the_past(raw, clock, days_ago=100)
    search = raw.call({"action": 76, "startTime": _iso(time.time() - 400 * DAY), "endTime": _iso(time.time())})
    assert [(r["eventId"], r["status"]) for r in search["data"]] == [(event_id, "EXPIRED")]


@pytest.mark.parametrize("terminate", [False, True], ids=["expired", "terminated"])
def test_a_declared_event_that_aged_out_is_never_granted_again(
    ws: JdbWorkspace, raw: RawJdb, clock: Clock, event_retention_days: int | None, terminate: bool
) -> None:
    start, end, _ = _create_in_the_past(raw, clock, days_ago=200, terminate=terminate)
    before = ws.events()
    assert len(before) == (0 if event_retention_days is not None else 1)
    ws.write("manifests/events.yaml", event_doc(ws, startTime=start, endTime=end))
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr  # no change proposed
    assert "+ create FreeSpinEvent" not in plan.stdout and "-/+ replace" not in plan.stdout and "1 unchanged" in plan.stdout
    # what the plan says: JDB still shows it (EXPIRED, or TERMINATED: stopped, not made again) or it aged out
    said = "terminated" if terminate and event_retention_days is None else "expired"
    assert said in plan.stdout.lower()
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.emulator.action_counts[72] == 1 and ws.emulator.action_counts[74] == 0  # only the old create
    assert ws.events() == before

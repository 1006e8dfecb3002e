"""The JDB emulator's answers where the documents are silent (issue #22), one test per knob and
value, over real HTTP with hand-built requests (no client)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from .conftest import Clock, RawJdb
from .test_emulator import create, event_fields, iso, search


def player_rows(raw: RawJdb, uid: str) -> list[dict]:
    body = raw.call({"action": 71, "uid": uid})
    assert body["status"] == "0000", body
    return list(body["data"])


@pytest.mark.parametrize("bonuschips_times_answer", ["null", "echo"])
def test_bonus_chips_times_answer(raw: RawJdb, clock: Clock, bonuschips_times_answer: str) -> None:
    create(raw, clock, type="BONUSCHIPS", times=1, bonusChips="100", chipsMultiplier="2.5", players=["player00001"])
    [row] = player_rows(raw, "player00001")
    assert row["times"] == (1 if bonuschips_times_answer == "echo" else None)
    assert row["requiredTurnover"] == "250.000"


@pytest.mark.parametrize("repeat_transaction", ["answer", "bind"])
def test_a_repeated_transaction_id(raw: RawJdb, clock: Clock, repeat_transaction: str) -> None:
    first = create(raw, clock, players=["player00001"])
    again = raw.call(event_fields(clock, name="Other", players=["player00002", "ghost"]))
    assert again["status"] == "0000" and again["data"]["eventId"] == first  # seed: the existing eventId
    [event] = search(raw, clock)
    assert event["name"] == "Spring spins"  # nothing new created, nothing changed
    if repeat_transaction == "bind":
        assert again["data"]["notExistedPlayers"] == ["ghost"] and event["numberOfPlayers"] == 2
    else:
        assert again["data"]["notExistedPlayers"] == [] and event["numberOfPlayers"] == 1


@pytest.mark.parametrize("update_fields", ["newest", "older"])
def test_which_fields_action_77_changes(raw: RawJdb, clock: Clock, update_fields: str) -> None:
    event_id = create(raw, clock)
    start = datetime.fromtimestamp(clock.now, timezone(timedelta(hours=1))) + timedelta(hours=2)
    update = {
        "action": 77,
        "eventId": event_id,
        "name": "Renamed",
        "machineTypes": [14077],
        "bet": "3",
        "minWithdrawal": "-1",
        "maxWithdrawal": "-1",
        "startTime": iso(start),
        "endTime": iso(start + timedelta(days=2)),
    }
    body = raw.call(update)
    if update_fields == "newest":
        assert body["status"] == "8000" and "startTime cannot be modified" in body["err_text"]
    else:
        assert body["status"] == "0000", body
        [event] = search(raw, clock)
        assert (event["name"], event["startTime"]) == ("Renamed", iso(start))
    missing = raw.call({k: v for k, v in update.items() if k not in ("startTime", "endTime")})
    assert missing["status"] == ("0000" if update_fields == "newest" else "8000")


@pytest.mark.parametrize("update_active", ["allowed", "refused"])
def test_action_77_on_an_active_event(raw: RawJdb, clock: Clock, update_active: str) -> None:
    event_id = create(raw, clock)
    clock.advance(2 * 3600)  # the event has started
    body = raw.call(
        {
            "action": 77,
            "eventId": event_id,
            "name": "Renamed",
            "machineTypes": [14077],
            "bet": "3",
            "minWithdrawal": "-1",
            "maxWithdrawal": "-1",
        }
    )
    if update_active == "allowed":
        assert body == {"status": "0000"}
    else:
        assert body == {"status": "9998", "err_text": "This action cannot be executed as the event status is ACTIVE."}


@pytest.mark.parametrize("bind_bound", ["noop", "failed", "error"])
def test_action_74_for_a_bound_player(raw: RawJdb, clock: Clock, bind_bound: str) -> None:
    event_id = create(raw, clock, players=["player00001"])
    body = raw.call({"action": 74, "eventId": str(event_id), "players": ["player00001", "player00002"]})
    [event] = search(raw, clock)
    if bind_bound == "error":
        assert body["status"] == "9998" and event["numberOfPlayers"] == 1  # refused whole: nothing bound
        return
    assert body["status"] == "0000", body
    assert body["data"]["failedBindingPlayers"] == ([] if bind_bound == "noop" else ["player00001"])
    assert event["numberOfPlayers"] == 2  # the bound player stays bound either way

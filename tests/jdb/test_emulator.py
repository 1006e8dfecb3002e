"""The JDB emulator against the documents, over real HTTP with hand-built requests (no client)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.vendors.jdb.crypto import JdbCipher
from reconciler.sandbox.base import Request
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import JdbEmulator

from .conftest import AGENT, SANDBOX_DC, SANDBOX_IV, SANDBOX_KEY, Clock, RawJdb

PARAM = "The parameter of input error, please check your parameter is correct or not. parameter:"


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds")


def event_fields(clock: Clock, **overrides: Any) -> dict[str, Any]:
    start = datetime.fromtimestamp(clock.now, timezone(timedelta(hours=1))) + timedelta(hours=1)
    fields = {
        "action": 72,
        "name": "Spring spins",
        "startTime": iso(start),
        "endTime": iso(start + timedelta(days=1)),
        "machineTypes": [14077, 14085],
        "bet": "2.000",
        "times": 10,
        "type": "NORMAL",
        "minWithdrawal": "10.000",
        "maxWithdrawal": "100.000",
        "transactionId": "tx-1",
    }
    fields.update(overrides)
    return fields


def create(raw: RawJdb, clock: Clock, **overrides: Any) -> int:
    body = raw.call(event_fields(clock, **overrides))
    assert body["status"] == "0000", body
    return int(body["data"]["eventId"])


def search(raw: RawJdb, clock: Clock) -> list[dict[str, Any]]:
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    body = raw.call({"action": 76, "startTime": iso(now - timedelta(days=30)), "endTime": iso(now + timedelta(days=30))})
    assert body["status"] == "0000", body
    return list(body["data"])


# -- envelope ---------------------------------------------------------------------------------
def test_get_query_post_form_and_post_json_are_all_accepted(raw: RawJdb) -> None:
    x = raw.seal({"action": 76, "startTime": "2024-07-22T04:05:33+01:00", "endTime": "2024-07-23T04:05:33.000+01:00"})
    url = f"{raw.url}/apiRequest.do"
    answers = [
        httpx.get(url, params={"dc": SANDBOX_DC, "x": x}),
        httpx.post(url, data={"dc": SANDBOX_DC, "x": x}),
        httpx.post(url, json={"dc": SANDBOX_DC, "x": x}),
    ]
    assert [r.json() for r in answers] == [{"status": "0000", "data": []}] * 3


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"x": "abc"}, "9002"),
        ({"dc": "s", "x": "abc"}, "9002"),
        ({"dc": "other", "x": "abc"}, "9003"),
        ({"dc": SANDBOX_DC}, "9004"),
        ({"dc": SANDBOX_DC, "x": "not-a-cipher"}, "9006"),
    ],
)
def test_envelope_errors(raw: RawJdb, fields: dict[str, str], status: str) -> None:
    assert raw.post_form(fields).json()["status"] == status


def test_stale_timestamp_is_9005_with_the_documented_text(raw: RawJdb, clock: Clock) -> None:
    x = raw.cipher.seal({"action": 76, "ts": int((clock.now - 31) * 1000), "parent": AGENT})
    assert raw.post_form({"dc": SANDBOX_DC, "x": x}).json() == {
        "status": "9005",
        "err_text": "Assertion(SAML) didn't pass the timestamp validation.",
    }


def test_unknown_action_and_agent(raw: RawJdb) -> None:
    assert raw.call({"action": 99})["status"] == "9007"
    assert raw.call({"action": 76, "parent": "nobody"})["status"] == "7001"


def test_gzip_when_asked(raw: RawJdb, clock: Clock) -> None:
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    x = raw.seal({"action": 76, "startTime": iso(now), "endTime": iso(now)})
    with httpx.Client() as client:
        request = client.build_request(
            "POST", f"{raw.url}/apiRequest.do", data={"dc": SANDBOX_DC, "x": x}, headers={"Accept-Encoding": "gzip"}
        )
        resp = client.send(request, stream=True)
        raw_body = b"".join(resp.iter_raw())
    assert resp.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw_body)) == {"status": "0000", "data": []}


# -- Action 72 / 76 ---------------------------------------------------------------------------
@pytest.mark.parametrize("jdb_mode", ["extended"])  # reads undocumented Action 76 fields
def test_create_reports_unknown_players_and_search_shows_the_event(raw: RawJdb, clock: Clock) -> None:
    body = raw.call(event_fields(clock, players=["player00001", "player00002", "ghost"]))
    assert body["status"] == "0000"
    assert body["data"]["notExistedPlayers"] == ["ghost"]
    assert body["data"]["failedBindingPlayers"] == []
    [event] = search(raw, clock)
    assert event["eventId"] == body["data"]["eventId"]
    assert (event["numberOfPlayers"], event["status"], event["bet"]) == (2, "INACTIVE", "2.000")


def test_repeated_transaction_id_returns_the_existing_event(raw: RawJdb, clock: Clock) -> None:
    first = create(raw, clock)
    again = create(raw, clock, name="a different name")
    assert again == first
    assert [e["name"] for e in search(raw, clock)] == ["Spring spins"]


@pytest.mark.parametrize(
    ("overrides", "err_text"),
    [
        ({"name": None}, PARAM + "name is required"),
        ({"transactionId": None}, PARAM + "transactionId is required"),
        ({"minWithdrawal": "200"}, PARAM + "minWithdrawal must be less than or equal to maxWithdrawal"),
        ({"type": "BONUSCHIPS"}, PARAM + "bonusChips is required"),
        ({"name": "x" * 71}, PARAM + "name is invalid"),
    ],
)
def test_create_validation(raw: RawJdb, clock: Clock, overrides: dict[str, Any], err_text: str) -> None:
    fields = {k: v for k, v in event_fields(clock, **overrides).items() if v is not None}
    assert raw.call(fields) == {"status": "8000", "err_text": err_text}


def test_create_refuses_an_end_time_in_the_past(raw: RawJdb, clock: Clock) -> None:
    past = datetime.fromtimestamp(clock.now, timezone.utc) - timedelta(hours=1)
    body = raw.call(event_fields(clock, startTime=iso(past - timedelta(hours=1)), endTime=iso(past)))
    assert body["status"] == "8000" and "endTime" in body["err_text"]


def test_create_accepts_at_most_50000_players(raw: RawJdb, clock: Clock) -> None:
    body = raw.call(event_fields(clock, players=[f"p{i}" for i in range(50_001)]))
    assert body["status"] == "8000" and "players" in body["err_text"]


@pytest.mark.parametrize("bonuschips_times", ["ignored"])  # sends no times
@pytest.mark.parametrize("jdb_mode", ["extended"])  # reads undocumented Action 76 fields
def test_bonus_chips_event(raw: RawJdb, clock: Clock) -> None:
    create(raw, clock, type="BONUSCHIPS", times=None, bonusChips="100", chipsMultiplier="2.5")
    [event] = search(raw, clock)
    assert (event["times"], event["totalTimes"], event["requiredTurnover"]) == (None, None, "250.000")


# -- status and state rules -------------------------------------------------------------------
def test_status_follows_the_clock_and_termination(raw: RawJdb, clock: Clock) -> None:
    event_id = create(raw, clock)
    assert search(raw, clock)[0]["status"] == "INACTIVE"
    clock.advance(2 * 3600)
    assert search(raw, clock)[0]["status"] == "ACTIVE"
    assert raw.call({"action": 73, "eventId": event_id}) == {"status": "0000"}
    assert search(raw, clock)[0]["status"] == "TERMINATED"
    assert raw.call({"action": 73, "eventId": event_id}) == {
        "status": "9998",
        "err_text": "This action cannot be executed as the event status is TERMINATED.",
    }


def test_expired_after_the_end(raw: RawJdb, clock: Clock) -> None:
    create(raw, clock)
    clock.advance(3 * 86400)
    assert search(raw, clock)[0]["status"] == "EXPIRED"


def test_bind_and_unbind_rules(raw: RawJdb, clock: Clock) -> None:
    event_id = create(raw, clock)
    assert raw.call({"action": 74, "eventId": 1, "players": ["player00001"]}) == {
        "status": "9015",
        "err_text": "Event not exist.",
    }
    assert raw.call({"action": 74, "eventId": str(event_id)})["err_text"] == PARAM + "players is required"
    bound = raw.call({"action": 74, "eventId": event_id, "players": ["player00001", "player00001", "zz"]})
    assert bound == {"status": "0000", "data": {"failedBindingPlayers": [], "notExistedPlayers": ["zz"]}}
    assert raw.call({"action": 75, "eventId": event_id, "players": ["player00001"]}) == {"status": "0000"}
    assert search(raw, clock)[0]["numberOfPlayers"] == 0
    clock.advance(2 * 3600)
    assert raw.call({"action": 75, "eventId": event_id, "players": ["player00001"]}) == {
        "status": "9998",
        "err_text": "Only INACTIVE event has right to do this action.",
    }


@pytest.mark.parametrize("jdb_mode", ["extended"])  # reads undocumented Action 76 fields
def test_update_changes_mutable_fields_only(raw: RawJdb, clock: Clock) -> None:
    event_id = create(raw, clock)
    base = event_fields(clock)
    update = {k: base[k] for k in ("name", "machineTypes", "minWithdrawal", "startTime", "endTime")}
    assert raw.call({"action": 77, "eventId": event_id, **update, "bet": "5", "maxWithdrawal": "-1"}) == {"status": "0000"}
    [event] = search(raw, clock)
    assert (event["bet"], event["maxWithdrawal"]) == ("5.000", "-1")
    moved = {**update, "bet": "5", "maxWithdrawal": "-1", "endTime": iso(datetime.now(timezone.utc) + timedelta(days=9))}
    body = raw.call({"action": 77, "eventId": event_id, **moved})
    assert body["status"] == "8000" and "endTime cannot be modified" in body["err_text"]


def test_player_events(raw: RawJdb, clock: Clock) -> None:
    create(raw, clock, players=["player00003"])
    body = raw.call({"action": 71, "uid": "player00003"})
    assert [(e["name"], e["times"], e["useTimes"], e["status"]) for e in body["data"]] == [("Spring spins", 10, 0, "INACTIVE")]
    assert raw.call({"action": 71, "uid": "player00004"}) == {"status": "0000", "data": []}
    assert raw.call({"action": 71, "uid": "stranger"}) == {"status": "7501", "err_text": "User ID cannot be found."}
    assert raw.call(
        {"action": 71, "uid": "player00003", "startTime": "2024-07-23T04:05:33+01:00", "endTime": "2024-07-22T04:05:33+01:00"}
    ) == {"status": "8009", "err_text": "Time interval exceeds the allowable range."}


# -- registry, faults, persistence -------------------------------------------------------------
def test_player_registry_admin(jdb_emulator: JdbEmulator, raw: RawJdb, clock: Clock) -> None:
    post = Request(
        "POST",
        "/_sandbox/jdb/players",
        "",
        {},
        json.dumps({"agent": AGENT, "players": ["vip1", "vip2"], "locked": False}).encode(),
    )
    resp = jdb_emulator.admin(post)
    assert resp is not None and json.loads(resp.body) == {"agent": AGENT, "registered": 2}
    jdb_emulator.register_players(AGENT, ["frozen"], locked=True)
    body = raw.call(event_fields(clock, players=["vip1", "frozen", "nobody"]))
    assert body["data"]["failedBindingPlayers"] == ["frozen"]
    assert body["data"]["notExistedPlayers"] == ["nobody"]


def test_injected_error_is_a_system_error(jdb_server: EmulatorServer, raw: RawJdb) -> None:
    httpx.post(f"{raw.url}/_sandbox/faults", json={"fail_next": 1})
    resp = raw.post_form({"dc": SANDBOX_DC, "x": raw.seal({"action": 76})})
    assert resp.status_code == 503 and resp.json()["status"] == "9999"


@pytest.mark.parametrize(
    "busy_status,http_status,err_text",
    [
        ("9999", 503, "System busy, please try again later."),
        ("9012", 200, "Try again later."),
        ("9017", 200, "Work in process, try again later."),
    ],
)
def test_fail_next_writes_refuses_writes_only_with_the_busy_status(
    jdb_emulator: JdbEmulator, raw: RawJdb, clock: Clock, busy_status: str, http_status: int, err_text: str
) -> None:
    httpx.post(f"{raw.url}/_sandbox/faults", json={"fail_next_writes": 1}).raise_for_status()
    read = raw.call({"action": 76, "startTime": "2020-01-01T00:00:00.000+00:00", "endTime": "2020-01-02T00:00:00.000+00:00"})
    assert read["status"] == "0000"  # a read goes through
    resp = raw.post_form({"dc": SANDBOX_DC, "x": raw.seal(event_fields(clock))})
    assert (resp.status_code, resp.json()) == (http_status, {"status": busy_status, "err_text": err_text})
    assert jdb_emulator.action_counts[72] == 0  # refused, not handled
    create(raw, clock)  # the knob is spent: the same write is made


def test_drop_next_replies_handles_a_read_and_loses_its_reply(jdb_emulator: JdbEmulator, raw: RawJdb) -> None:
    httpx.post(f"{raw.url}/_sandbox/faults", json={"drop_next_replies": 1}).raise_for_status()
    with pytest.raises(httpx.RemoteProtocolError):
        raw.post_form({"dc": SANDBOX_DC, "x": raw.seal({"action": 76})})
    assert jdb_emulator.action_counts[76] == 1  # handled, then the reply was dropped
    assert httpx.get(f"{raw.url}/_sandbox/faults").json()["drop_next_replies"] == 0
    assert (
        raw.call({"action": 76, "startTime": "2020-01-01T00:00:00.000+00:00", "endTime": "2020-01-02T00:00:00.000+00:00"})[
            "status"
        ]
        == "0000"
    )


def test_state_persists_in_sqlite(tmp_path: Path, clock: Clock) -> None:
    def serve() -> EmulatorServer:
        return EmulatorServer(JdbEmulator(tmp_path, dc=SANDBOX_DC, key=SANDBOX_KEY, iv=SANDBOX_IV, clock=clock))

    with serve() as server:
        create(RawJdb(server.url, JdbCipher(SANDBOX_KEY, SANDBOX_IV), clock), clock)
    with serve() as server:
        assert len(search(RawJdb(server.url, JdbCipher(SANDBOX_KEY, SANDBOX_IV), clock), clock)) == 1

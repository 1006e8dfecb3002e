"""Every request/response example of the JDB seed documents (Actions 29, 71, 72) replayed against
the emulator with hand-built envelopes (not our client).

The examples' ``x`` values are sealed with JDB's own (unpublished) key, so the replay seals each
example's JSON with the sandbox key instead; ``reference/jdb.md`` §1.4 has the known-answer tests
of the envelope itself. Each example's ``ts`` is years old, so sent verbatim it must be refused with
the documented ``9005`` answer; the replay then sends it with a current ``ts`` against an emulator
whose clock stands at the example's time. Where an example contradicts its own parameter table
(Action 72's omits the mandatory ``transactionId`` and has ``startTime == endTime``), the verbatim
request gets the documented ``8000`` answer and a corrected one the documented success shape.
Responses are compared field by field where the emulator can know the value, and by shape
(same keys, same JSON types) where it depends on play the emulator does not simulate.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator

import pytest

from reconciler.vendors.jdb.crypto import JdbCipher
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import PARAM, JdbEmulator

from .conftest import SANDBOX_DC, SANDBOX_IV, SANDBOX_KEY, Clock, RawJdb

A29_REQUEST = {
    "action": 29,
    "ts": 1447452951820,
    "parent": "testag",
    "starttime": "08-12-2016 17:45:00",
    "endtime": "08-12-2016 17:46:00",
    "gTypes": [0, 7],
}
A29_SLOT_RECORD = json.loads("""{"historyId":"5250145823902","playerId":"test01","gType":0,"mtype":8001,
"gameDate":"06-06-2017 09:56:09","bet":-0.4,"win":0.4,"total":0,"currency":"RB","jackpot":0,"jackpotContribute":-0.002,
"denom":0.02,"lastModifyTime":"06-06-2017 09:56:09","playerIp":"10.20.6.86","clientType":"WEB","hasFreegame":0,
"systemTakeWin":0,"beforeBalance":"8477.425","afterBalance":"8477.425"}""")
A29_ERROR = {"status": "9005", "err_text": "Assertion(SAML) didn't pass the timestamp validation."}

A71_REQUEST = {
    "action": 71,
    "ts": 1704790101741,
    "parent": "testag",
    "uid": "testplayer",
    "startTime": "2024-07-22T04:05:33+01:00",
    "endTime": "2024-07-23T04:05:33+01:00",
    "status": 1,
    "types": ["NORMAL", "FEATURE"],
}
A71_RESPONSE = json.loads("""{"status":"0000","data":[
{"eventId":12345,"name":"test normal event name","currency":"RB","times":3,"useTimes":3,"requiredTurnover":null,
 "accumulatedTurnover":null,"startTime":"2024-07-17T16:00:00.000+01:00","endTime":"2024-07-22T16:00:00.000+01:00",
 "type":"NORMAL","status":"EXPIRED","machineTypes":[14050,14053],"alreadySettle":true,"cashout":"1.000",
 "updateTime":"2024-07-22T16:00:00.000+01:00"},
{"eventId":12346,"name":"test bonus chips event name","currency":"RB","times":null,"useTimes":null,
 "requiredTurnover":100,"accumulatedTurnover":50,"startTime":"2024-07-17T16:00:00.000+01:00",
 "endTime":"2024-07-22T16:00:00.000+01:00","type":"BONUSCHIPS","status":"EXPIRED","machineTypes":[14041,14087],
 "alreadySettle":true,"cashout":"0","updateTime":"2024-07-22T16:00:00.000+01:00"}]}""")
A71_NOT_DOWNLINE = {"status": "7501", "err_text": "User ID cannot be found."}
A71_RANGE = {"status": "8009", "err_text": "Time interval exceeds the allowable range."}

A72_REQUEST = {
    "action": 72,
    "ts": 1711555200000,
    "parent": "testag",
    "name": "TEST EVENT NAME",
    "startTime": "2024-07-22T04:05:33.000+01:00",
    "endTime": "2024-07-22T04:05:33.000+01:00",
    "machineTypes": [14077, 14085],
    "bet": "2.000",
    "times": 10,
    "type": "NORMAL",
    "minWithdrawal": "10.000",
    "maxWithdrawal": "100.000",
    "players": ["player1", "player2"],
}
A72_DATA = {"eventId": 12345, "failedBindingPlayers": ["failed1", "failed2"], "notExistedPlayers": ["not_exist1", "not_exist2"]}
A72_NAME_ERROR = {"status": "8000", "err_text": PARAM + "name is required"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def sample() -> Iterator[tuple[RawJdb, JdbEmulator]]:
    clock = Clock(at("2024-07-17T12:00:00+01:00"))
    emulator = JdbEmulator(
        dc=SANDBOX_DC,
        key=SANDBOX_KEY,
        iv=SANDBOX_IV,
        agents=["testag"],
        clock=clock,
        players=["testplayer", "player1", "player2", "test01"],
    )
    with EmulatorServer(emulator) as server:
        yield RawJdb(server.url, JdbCipher(SANDBOX_KEY, SANDBOX_IV), clock), emulator


def send(raw: RawJdb, body: dict[str, Any], *, fresh_ts: bool = True) -> dict[str, Any]:
    payload = {**body, "ts": int(raw.clock() * 1000)} if fresh_ts else body
    answer = raw.post_form({"dc": SANDBOX_DC, "x": raw.cipher.seal(payload)}).json()
    assert isinstance(answer, dict)
    return answer


def same_shape(answer: Any, example: Any) -> None:
    if isinstance(example, dict):
        assert isinstance(answer, dict) and set(answer) == set(example), (sorted(answer), sorted(example))
        for key in example:
            same_shape(answer[key], example[key])
    elif isinstance(example, list) and example:
        assert isinstance(answer, list)
        for item in answer:
            same_shape(item, example[0])
    elif example is not None and answer is not None:
        number = (int, float)
        assert isinstance(answer, number) if isinstance(example, number) else type(answer) is type(example), (answer, example)


def test_examples_with_their_old_ts_get_the_documented_9005(sample: tuple[RawJdb, JdbEmulator]) -> None:
    raw, _ = sample
    for example in (A29_REQUEST, A71_REQUEST, A72_REQUEST):
        assert send(raw, example, fresh_ts=False) == A29_ERROR


def test_action29_example(sample: tuple[RawJdb, JdbEmulator]) -> None:
    raw, emulator = sample
    # the emulator reads report times in GMT-4; stand 10 minutes after the example's window
    raw.clock.now = at("2016-12-08T17:56:00-04:00")
    answer = send(raw, A29_REQUEST)
    assert answer["status"] == "0000" and isinstance(answer["data"], list)
    for record in answer["data"]:
        assert record["gType"] in (0, 7)
        if record["gType"] == 0:
            same_shape(record, A29_SLOT_RECORD)
    # "no data" is 0000 with an empty array: some minute of the hour has no record
    empty = None
    for m in range(0, 50):
        window = {"starttime": f"08-12-2016 17:{m:02d}:00", "endtime": f"08-12-2016 17:{m:02d}:00"}
        answer = send(raw, {**A29_REQUEST, **window})
        if not answer.get("data"):
            empty = answer
            break
    assert empty == {"status": "0000", "data": []}


def test_action71_examples(sample: tuple[RawJdb, JdbEmulator]) -> None:
    raw, emulator = sample
    common = {
        "action": 72,
        "parent": "testag",
        "startTime": "2024-07-17T16:00:00.000+01:00",
        "endTime": "2024-07-22T16:00:00.000+01:00",
        "bet": "1",
        "minWithdrawal": "-1",
        "maxWithdrawal": "-1",
        "players": ["testplayer"],
    }
    normal = send(
        raw,
        {
            **common,
            "name": "test normal event name",
            "type": "NORMAL",
            "times": 3,
            "machineTypes": [14050, 14053],
            "transactionId": "sample-71-normal",
        },
    )
    chips = send(
        raw,
        {
            **common,
            "name": "test bonus chips event name",
            "type": "BONUSCHIPS",
            "times": 1,
            "bonusChips": "50",
            "chipsMultiplier": "2",
            "machineTypes": [14041, 14087],
            "transactionId": "sample-71-chips",
        },
    )
    assert normal["status"] == chips["status"] == "0000"
    raw.clock.now = at("2024-07-23T12:00:00+01:00")  # both have EXPIRED, as in the example
    # the request example asks for ACTIVE NORMAL/FEATURE events starting in a one-day window: none
    assert send(raw, A71_REQUEST) == {"status": "0000", "data": []}
    answer = send(raw, {**A71_REQUEST, "startTime": "2024-07-17T00:00:00+01:00", "status": None, "types": None})
    assert answer["status"] == "0000"
    same_shape(answer, A71_RESPONSE)
    for got, want in zip(answer["data"], A71_RESPONSE["data"], strict=True):
        for key in ("name", "currency", "times", "type", "status", "machineTypes", "startTime", "endTime"):
            assert got[key] == want[key], key
        turnover = got["requiredTurnover"]
        assert (turnover is None) == (want["requiredTurnover"] is None)
        if turnover is not None:
            assert Decimal(str(turnover)) == Decimal(str(want["requiredTurnover"]))
    assert send(raw, {**A71_REQUEST, "uid": "notdownline"}) == A71_NOT_DOWNLINE
    assert send(raw, {**A71_REQUEST, "startTime": A71_REQUEST["endTime"], "endTime": A71_REQUEST["startTime"]}) == A71_RANGE


def test_action72_examples(sample: tuple[RawJdb, JdbEmulator]) -> None:
    raw, emulator = sample
    verbatim = send(raw, A72_REQUEST)
    assert verbatim["status"] == "8000" and verbatim["err_text"].startswith(PARAM)  # no transactionId; end == start
    emulator.register_players("testag", ["failed1", "failed2"], locked=True)
    corrected = {
        **A72_REQUEST,
        "transactionId": "sample-72",
        "startTime": "2024-07-22T04:05:33.000+01:00",
        "endTime": "2024-07-29T04:05:33.000+01:00",
        "players": ["player1", "player2", "failed1", "failed2", "not_exist1", "not_exist2"],
    }
    answer = send(raw, corrected)
    assert answer["status"] == "0000"
    assert {**answer["data"], "eventId": 12345} == A72_DATA
    assert send(raw, {k: v for k, v in corrected.items() if k != "name"}) == A72_NAME_ERROR

"""The emulator's documented behaviour beyond the manual's samples, with plain httpx (not our client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import reconciler.vendors.tcaplus.emulator.reads as tcaplus_reads  # PartkeyGetRecord reads its cap there
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator
from tests.tcaplus.conftest import APP_ID, PASSWORD, PASSWORD_MD5, TABLES, ZONE_ID

PATH = f"/ver1.0/apps/{APP_ID}/zones/{ZONE_ID}/tables/%s/records"
PLAYER = {"player_id": 7, "player_name": "ann lee", "player_email": "ann@example.com", "game_server_id": 3}
PLAYER_KEYS = {k: PLAYER[k] for k in ("player_id", "player_name", "player_email")}


class Api:
    """Bare HTTP calls in the manual's format."""

    def __init__(self, http: httpx.Client):
        self.http = http

    def call(
        self,
        method: str,
        target: str,
        *,
        table: str = "game_players",
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw_body: bytes | None = None,
    ) -> tuple[int, dict[str, Any]]:
        h = {
            "x-tcaplus-target": f"Tcaplus.{target}",
            "x-tcaplus-version": "Tcaplus3.32.0",
            "x-tcaplus-pwd-md5": PASSWORD_MD5,
            "x-tcaplus-idl-type": "protobuf",
            **(headers or {}),
        }
        h = {k: v for k, v in h.items() if v is not None}
        url = PATH % table
        if query:
            url += "?" + "&".join(f"{k}={quote(v if isinstance(v, str) else json.dumps(v), safe='')}" for k, v in query.items())
        content = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        resp = self.http.request(method, url, headers=h, content=content)
        return resp.status_code, resp.json()

    def add(self, record: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
        return self.call("POST", "AddRecord", body={"Record": record}, headers=headers)

    def set(self, record: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
        return self.call("PUT", "SetRecord", body={"Record": record}, headers=headers)

    def get(self, keys: dict[str, Any], **query: Any) -> tuple[int, dict[str, Any]]:
        return self.call("GET", "GetRecord", query={"keys": keys, **query})


@pytest.fixture
def tcaplus_api(tcaplus_url: str) -> Iterator[Api]:
    with httpx.Client(base_url=tcaplus_url, timeout=5.0, verify=False) as http:
        yield Api(http)


def code(answer: tuple[int, dict[str, Any]]) -> tuple[int, int]:
    return answer[0], answer[1]["ErrorCode"]


# -- routing, authentication, headers -------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"x-tcaplus-pwd-md5": "0" * 32}, (401, -279)),
        ({"x-tcaplus-pwd-md5": None}, (401, -279)),
        ({"x-tcaplus-pwd-md5": PASSWORD}, (401, -279)),
        ({"x-tcaplus-pwd-md5": PASSWORD_MD5.upper()}, (404, 261)),
        ({"x-tcaplus-target": None}, (400, -11539)),
        ({"x-tcaplus-target": "Tcaplus.Traverse"}, (400, -11539)),
        ({"x-tcaplus-target": "Tcaplus.SetRecord"}, (400, -2067)),
        ({"x-tcaplus-version": None}, (400, -11539)),
        ({"x-tcaplus-idl-type": None}, (400, -11539)),
        ({"x-tcaplus-idl-type": "tdr"}, (400, -11539)),
        ({"x-tcaplus-idl-type": "PB"}, (404, 261)),
    ],
)
def test_headers_and_authentication(tcaplus_api: Api, headers: dict[str, str], expected: tuple[int, int]) -> None:
    assert code(tcaplus_api.call("GET", "GetRecord", query={"keys": PLAYER_KEYS}, headers=headers)) == expected


def test_wrong_app_zone_table_and_path(tcaplus_api: Api) -> None:
    url = f"/ver1.0/apps/{APP_ID + 1}/zones/{ZONE_ID}/tables/game_players/records"
    h = {
        "x-tcaplus-target": "Tcaplus.GetRecord",
        "x-tcaplus-version": "Tcaplus3.32.0",
        "x-tcaplus-pwd-md5": PASSWORD_MD5,
        "x-tcaplus-idl-type": "protobuf",
    }
    assert tcaplus_api.http.get(url, headers=h).status_code == 401
    other_zone = tcaplus_api.http.get(url.replace(f"apps/{APP_ID + 1}/zones/{ZONE_ID}", f"apps/{APP_ID}/zones/9"), headers=h)
    assert (other_zone.status_code, other_zone.json()["ErrorCode"]) == (404, -12819)
    assert code(tcaplus_api.call("GET", "GetRecord", table="nope", query={"keys": {}})) == (404, -12819)
    resp = tcaplus_api.http.get("/ver2.0/anything", headers=h)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (404, -11539)


def test_injected_fault_is_an_internal_error(tcaplus_api: Api, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.set_faults({"fail_next": 1})
    assert tcaplus_api.get(PLAYER_KEYS) == (500, {"ErrorCode": -1037, "ErrorMsg": "Internal system error: system busy"})
    assert code(tcaplus_api.get(PLAYER_KEYS)) == (404, 261)


# -- reads -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, (400, -5395)),
        ({"keys": {"player_id": 7}}, (400, -5395)),
        ({"keys": {**PLAYER_KEYS, "level": 1}}, (400, -1811)),
        ({"keys": {**PLAYER_KEYS, "player_id": "7"}}, (400, -1811)),
        ({"keys": "{not json"}, (400, -2579)),
        ({"keys": PLAYER_KEYS, "select": ["nope"]}, (400, -1811)),
        ({"keys": PLAYER_KEYS, "select": "pay"}, (400, -2579)),
        ({"keys": PLAYER_KEYS, "select": '"pay"'}, (400, -1811)),
        ({"keys": PLAYER_KEYS, "select": ["login_timestamp.x"]}, (400, -1811)),
    ],
)
def test_get_record_errors(tcaplus_api: Api, query: dict[str, Any], expected: tuple[int, int]) -> None:
    tcaplus_api.add(PLAYER)
    assert code(tcaplus_api.call("GET", "GetRecord", query=query)) == expected


def test_get_with_select_and_field_get(tcaplus_api: Api) -> None:
    tcaplus_api.add({**PLAYER, "pay": {"pay_id": 1, "amount": 5}, "level": 2})
    status, body = tcaplus_api.get(PLAYER_KEYS, select=["pay.amount", "level", "is_online"])
    assert status == 200 and body["Record"] == {**PLAYER_KEYS, "pay": {"amount": 5}, "level": 2}
    assert code(tcaplus_api.call("GET", "FieldGetRecord", query={"keys": PLAYER_KEYS})) == (400, -1811)
    status, body = tcaplus_api.call("GET", "FieldGetRecord", query={"keys": PLAYER_KEYS, "select": ["game_server_id"]})
    assert body == {"ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 1, "Record": {**PLAYER_KEYS, "game_server_id": 3}}


def test_keys_with_spaces_and_unicode_decode_from_percent_and_plus(tcaplus_api: Api, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.plus_as_space = True  # the knob: '+' read as a space (the manual asks for %20 only)
    record = {**PLAYER, "player_name": "李 雷+1"}
    tcaplus_api.add(record)
    keys = json.dumps({**PLAYER_KEYS, "player_name": "李 雷+1"}, ensure_ascii=False)
    for encoded in (quote(keys, safe=""), quote(keys, safe="").replace("%20", "+")):
        resp = tcaplus_api.http.get(
            f"{PATH % 'game_players'}?keys={encoded}",
            headers={
                "x-tcaplus-target": "Tcaplus.GetRecord",
                "x-tcaplus-version": "Tcaplus3.32.0",
                "x-tcaplus-pwd-md5": PASSWORD_MD5,
                "x-tcaplus-idl-type": "protobuf",
            },
        )
        assert resp.json()["Record"] == record


def test_plus_is_a_literal_plus_by_default_and_the_client_sends_percent_20(
    tcaplus_api: Api,
    tcaplus_emulator: TcaplusEmulator,
) -> None:
    tcaplus_emulator.plus_as_space = False  # the default answer
    record = {**PLAYER, "player_name": "李 雷+1"}
    tcaplus_api.add(record)
    keys = json.dumps({**PLAYER_KEYS, "player_name": "李 雷+1"}, ensure_ascii=False)
    headers = {
        "x-tcaplus-target": "Tcaplus.GetRecord",
        "x-tcaplus-version": "Tcaplus3.32.0",
        "x-tcaplus-pwd-md5": PASSWORD_MD5,
        "x-tcaplus-idl-type": "protobuf",
    }
    assert (
        tcaplus_api.http.get(f"{PATH % 'game_players'}?keys={quote(keys, safe='')}", headers=headers).json()["Record"] == record
    )
    plus = quote(keys, safe="").replace("%20", "+")
    assert tcaplus_api.http.get(f"{PATH % 'game_players'}?keys={plus}", headers=headers).json()["ErrorCode"] != 0


# -- AddRecord / SetRecord -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"Record": {**PLAYER, "nick": "x"}}, (400, -2579)),
        ({"Record": {**PLAYER, "level": -1}}, (400, -2579)),
        ({"Record": {**PLAYER, "pay": {"amount": 1}}}, (400, -2323)),  # payment.pay_id is required
        ({"Record": {k: v for k, v in PLAYER.items() if k != "game_server_id"}}, (400, -2323)),
        ({"Record": {k: v for k, v in PLAYER.items() if k != "player_email"}}, (400, -5395)),
        ({"ReturnValues": "x"}, (400, -11539)),
        ([1, 2], (400, -2579)),
    ],
)
def test_add_record_rejects_bad_records(tcaplus_api: Api, body: Any, expected: tuple[int, int]) -> None:
    assert code(tcaplus_api.call("POST", "AddRecord", body=body)) == expected
    assert code(tcaplus_api.get(PLAYER_KEYS)) == (404, 261)


def test_add_record_non_json_body(tcaplus_api: Api) -> None:
    assert code(tcaplus_api.call("POST", "AddRecord", raw_body=b"not json")) == (400, -2579)


def test_add_existing_record_fails_and_echoes_return_values(tcaplus_api: Api) -> None:
    assert code(tcaplus_api.add(PLAYER)) == (200, 0)
    status, body = tcaplus_api.call("POST", "AddRecord", body={"ReturnValues": "rv-1", "Record": {**PLAYER, "game_server_id": 9}})
    assert (status, body) == (400, {"ErrorCode": -1293, "ErrorMsg": "The record already exists", "ReturnValues": "rv-1"})
    assert tcaplus_api.get(PLAYER_KEYS)[1]["Record"]["game_server_id"] == 3


@pytest.mark.parametrize(
    "check, client_version, expected_version",
    [(None, None, 4), ("1", "3", 4), ("1", "-1", 4), ("1", "0", 4), ("2", "10", 10), ("2", "-1", 4), ("3", "99", 4)],
)
def test_set_record_version_policies(
    tcaplus_api: Api, check: str | None, client_version: str | None, expected_version: int
) -> None:
    tcaplus_api.set(PLAYER, **{"x-tcaplus-data-version-check": "2", "x-tcaplus-data-version": "3"})
    headers = {"x-tcaplus-data-version-check": check, "x-tcaplus-data-version": client_version}
    status, body = tcaplus_api.set({**PLAYER, "level": 1}, **{k: v for k, v in headers.items() if v is not None})
    assert (status, body["RecordVersion"]) == (200, expected_version)


def test_set_record_version_mismatch_keeps_the_record(tcaplus_api: Api) -> None:
    tcaplus_api.set(PLAYER)
    tcaplus_api.set({**PLAYER, "level": 5})
    status, body = tcaplus_api.set({**PLAYER, "level": 9}, **{"x-tcaplus-data-version-check": "1", "x-tcaplus-data-version": "1"})
    assert (status, body["ErrorCode"]) == (400, -7949)
    assert tcaplus_api.get(PLAYER_KEYS)[1]["RecordVersion"] == 2 and tcaplus_api.get(PLAYER_KEYS)[1]["Record"]["level"] == 5


def test_set_record_with_version_match_on_a_missing_record_inserts(tcaplus_api: Api) -> None:
    status, body = tcaplus_api.set(PLAYER, **{"x-tcaplus-data-version-check": "1", "x-tcaplus-data-version": "5"})
    assert (status, body["RecordVersion"]) == (200, 1)


def test_add_record_with_forced_version(tcaplus_api: Api) -> None:
    assert (
        tcaplus_api.add(PLAYER, **{"x-tcaplus-data-version-check": "2", "x-tcaplus-data-version": "42"})[1]["RecordVersion"] == 42
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"x-tcaplus-data-version-check": "4"},
        {"x-tcaplus-data-version": "x", "x-tcaplus-data-version-check": "1"},
        {"x-tcaplus-result-flag": "5"},
        {"x-tcaplus-result-flag": "two"},
    ],
)
def test_bad_header_values(tcaplus_api: Api, headers: dict[str, str]) -> None:
    assert code(tcaplus_api.set(PLAYER, **headers)) == (400, -1811)


@pytest.mark.parametrize(
    "flag, expected",
    [("0", None), ("1", {**PLAYER, "level": 2}), ("2", {**PLAYER, "level": 2}), ("3", {**PLAYER, "level": 1})],
)
def test_set_record_result_flags(tcaplus_api: Api, flag: str, expected: dict[str, Any] | None) -> None:
    tcaplus_api.set({**PLAYER, "level": 1})
    body = tcaplus_api.set({**PLAYER, "level": 2}, **{"x-tcaplus-result-flag": flag})[1]
    assert body.get("Record") == expected


def test_set_record_replaces_the_whole_record(tcaplus_api: Api) -> None:
    tcaplus_api.set({**PLAYER, "level": 1, "is_online": True})
    tcaplus_api.set(PLAYER)
    assert tcaplus_api.get(PLAYER_KEYS)[1]["Record"] == PLAYER


# -- FieldSetRecord / FieldIncRecord ---------------------------------------------------------------


def field_set(tcaplus_api: Api, record: dict[str, Any], paths: list[str] | None, **headers: str) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"Record": record}
    if paths is not None:
        body["FieldPath"] = paths
    return tcaplus_api.call("PUT", "FieldSetRecord", body=body, headers=headers)


def test_field_set_changes_only_the_paths(tcaplus_api: Api) -> None:
    tcaplus_api.set({**PLAYER, "level": 1, "pay": {"pay_id": 1, "amount": 10, "method": "card"}})
    status, body = field_set(
        tcaplus_api,
        {**PLAYER_KEYS, "level": 4, "pay": {"amount": 20}, "is_online": True},
        ["level", "pay.amount"],
        **{"x-tcaplus-result-flag": "2"},
    )
    assert status == 200 and body["RecordVersion"] == 2
    assert body["Record"] == {**PLAYER, "level": 4, "pay": {"pay_id": 1, "amount": 20, "method": "card"}}


def test_field_set_ignores_version_check_as_the_manual_says(tcaplus_api: Api) -> None:
    tcaplus_api.set(PLAYER)
    status, body = field_set(
        tcaplus_api,
        {**PLAYER_KEYS, "level": 4},
        ["level"],
        **{"x-tcaplus-data-version-check": "1", "x-tcaplus-data-version": "77"},
    )
    assert (status, body["RecordVersion"]) == (200, 2)


@pytest.mark.parametrize(
    "record, paths, expected",
    [
        ({**PLAYER_KEYS, "level": 4}, None, (400, -1811)),
        ({**PLAYER_KEYS, "level": 4}, [], (400, -1811)),
        ({**PLAYER_KEYS, "level": 4}, ["player_id"], (400, -1811)),
        ({**PLAYER_KEYS, "level": 4}, ["rating"], (400, -1811)),
        ({**PLAYER_KEYS, "level": 4}, ["nope"], (400, -1811)),
        ({**PLAYER_KEYS, "player_email": "other@x", "level": 4}, ["level"], (404, 261)),
    ],
)
def test_field_set_errors(tcaplus_api: Api, record: dict[str, Any], paths: list[str] | None, expected: tuple[int, int]) -> None:
    tcaplus_api.set(PLAYER)
    assert code(field_set(tcaplus_api, record, paths)) == expected


def test_field_set_missing_field_path_message(tcaplus_api: Api) -> None:
    tcaplus_api.set(PLAYER)
    assert field_set(tcaplus_api, {**PLAYER_KEYS, "level": 4}, None)[1]["ErrorMsg"] == (
        "Invalid parameter: Missing FieldPath when call FieldOperate Target."
    )


def field_inc(
    tcaplus_api: Api, record: dict[str, Any], paths: list[str] | None = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"Record": record}
    if paths is not None:
        body["FieldPath"] = paths
    return tcaplus_api.call("PUT", "FieldIncRecord", body=body, headers={"x-tcaplus-result-flag": "1", **headers})


def test_field_inc_counts_absent_fields_as_zero(tcaplus_api: Api) -> None:
    tcaplus_api.set({**PLAYER, "pay": {"pay_id": 1}})
    status, body = field_inc(tcaplus_api, {**PLAYER_KEYS, "level": 3, "game_server_id": -1, "pay": {"pay_id": 2}})
    assert status == 200 and body["RecordVersion"] == 2
    assert body["Record"] == {**PLAYER_KEYS, "level": 3, "game_server_id": 2, "pay": {"pay_id": 3}}
    status, body = field_inc(
        tcaplus_api, {**PLAYER_KEYS, "level": 1, "game_server_id": 100}, ["level"], **{"x-tcaplus-result-flag": "2"}
    )
    assert body["Record"]["level"] == 4 and body["Record"]["game_server_id"] == 2


@pytest.mark.parametrize(
    "record, expected",
    [
        ({**PLAYER_KEYS, "rating": 1.0}, (400, -1811)),  # double
        ({**PLAYER_KEYS, "is_online": True}, (400, -1811)),
        ({**PLAYER_KEYS, "login_timestamp": ["x"]}, (400, -1811)),  # repeated
        ({**PLAYER_KEYS, "game_server_id": 2**31 - 3}, (400, -1811)),  # int32 overflow (3 + ...)
        ({**PLAYER_KEYS, "level": -1}, (400, -2579)),  # a uint32 delta cannot be negative
        (PLAYER_KEYS, (400, -1811)),  # nothing to increment
        ({**PLAYER_KEYS, "player_email": "zz@x", "level": 1}, (404, 261)),
    ],
)
def test_field_inc_errors(tcaplus_api: Api, record: dict[str, Any], expected: tuple[int, int]) -> None:
    tcaplus_api.set(PLAYER)
    assert code(field_inc(tcaplus_api, record)) == expected
    assert tcaplus_api.get(PLAYER_KEYS)[1]["RecordVersion"] == 1


# -- DeleteRecord ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, expected", [("0", None), ("1", {}), ("2", {}), ("3", PLAYER)])
def test_delete_record_result_flags(tcaplus_api: Api, flag: str, expected: dict[str, Any] | None) -> None:
    tcaplus_api.set(PLAYER)
    status, body = tcaplus_api.call(
        "DELETE", "DeleteRecord", body={"Record": PLAYER_KEYS}, headers={"x-tcaplus-result-flag": flag}
    )
    assert (status, body.get("Record"), body["RecordVersion"]) == (200, expected, -1)
    assert code(tcaplus_api.get(PLAYER_KEYS)) == (404, 261)


def test_delete_missing_record(tcaplus_api: Api) -> None:
    assert code(tcaplus_api.call("DELETE", "DeleteRecord", body={"Record": PLAYER_KEYS})) == (404, 261)


# -- PartkeyGetRecord ------------------------------------------------------------------------------


def partkey(tcaplus_api: Api, index: str | None, keys: dict[str, Any], **query: Any) -> tuple[int, dict[str, Any]]:
    return tcaplus_api.call("GET", "PartkeyGetRecord", query={"keys": keys, **query}, headers={"x-tcaplus-index-name": index})


def seed_players(tcaplus_api: Api, n: int, player_id: int = 7) -> None:
    for i in range(n):
        tcaplus_api.set({**PLAYER, "player_id": player_id, "player_email": f"p{i}@x"})


def test_partkey_paging(tcaplus_api: Api) -> None:
    seed_players(tcaplus_api, 5)
    seed_players(tcaplus_api, 2, player_id=8)
    status, body = partkey(tcaplus_api, "index_2", {"player_id": 7}, limit="2", offset="1", select=["level"])
    assert status == 200
    assert [r["Record"]["player_email"] for r in body["MultiRecords"]] == ["p1@x", "p2@x"]
    assert (body["RemainNum"], body["TotalNum"]) == (2, 5)
    assert body["MultiRecords"][0] == {"RecordVersion": 1, "Record": {**PLAYER_KEYS, "player_email": "p1@x"}}
    status, body = partkey(tcaplus_api, "index_2", {"player_id": 7}, offset="9")
    assert (status, body["MultiRecords"], body["RemainNum"], body["TotalNum"]) == (200, [], 0, 5)


def test_partkey_answer_is_capped(tcaplus_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcaplus_reads, "MAX_BATCH_RECORDS", 3)
    seed_players(tcaplus_api, 5)
    body = partkey(tcaplus_api, "index_1", {"player_id": 7, "player_name": "ann lee"}, limit="100")[1]
    assert (len(body["MultiRecords"]), body["RemainNum"], body["TotalNum"]) == (3, 2, 5)


@pytest.mark.parametrize(
    "index, keys, query, expected",
    [
        (None, {"player_id": 7}, {}, (400, -1811)),
        ("index_9", {"player_id": 7}, {}, (404, -34565)),
        ("index_1", {"player_id": 7}, {}, (400, -5395)),
        ("index_2", {"player_id": 7, "player_name": "x"}, {}, (400, -1811)),
        ("index_2", {"player_id": 7}, {"limit": "0"}, (400, -1811)),
        ("index_2", {"player_id": 7}, {"offset": "-1"}, (400, -1811)),
        ("index_2", {"player_id": 7}, {"limit": "x"}, (400, -1811)),
        ("index_2", {"player_id": 8}, {}, (404, 261)),
    ],
)
def test_partkey_errors(
    tcaplus_api: Api, index: str | None, keys: dict[str, Any], query: dict[str, str], expected: tuple[int, int]
) -> None:
    seed_players(tcaplus_api, 1)
    assert code(partkey(tcaplus_api, index, keys, **query)) == expected


# -- persistence -----------------------------------------------------------------------------------


def test_records_persist_in_the_state_folder(tmp_path: Path) -> None:
    def start() -> EmulatorServer:
        emu = TcaplusEmulator(tmp_path, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
        return EmulatorServer(emu).start()

    server = start()
    with httpx.Client(base_url=server.url, timeout=5.0, verify=False) as http:
        assert code(Api(http).set(PLAYER)) == (200, 0)
    server.stop()
    assert (tmp_path / "tcaplus.sqlite").exists()
    emu = TcaplusEmulator(tmp_path, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
    try:
        assert emu.records("game_players") == [(1, PLAYER)]
        assert "password" not in repr(emu).lower() and PASSWORD_MD5 not in repr(emu)
    finally:
        emu.close()


def test_a_table_can_use_a_message_of_another_name(tmp_path: Path) -> None:
    tables = {"players": (TABLES["game_players"], "game_players")}
    emu = TcaplusEmulator(app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=tables)
    try:
        assert emu.tables["players"].name == "players" and emu.tables["players"].primary_key[0] == "player_id"
    finally:
        emu.close()

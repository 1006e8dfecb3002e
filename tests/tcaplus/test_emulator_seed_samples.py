"""Every request/response sample of the RESTful API v1.0 manual replays against the emulator.

The requests are sent with plain httpx (not our client), with the manual's URLs (query strings
verbatim), headers and bodies. Two deliberate substitutions:

- the host is the emulator's; the path ``/ver1.0/apps/2/zones/1/tables/tb_example/records`` is kept;
- ``x-tcaplus-pwd-md5``: the samples send the raw key of the ``md5sum`` example
  (``c3eda5f0…``) instead of its MD5 (a documented defect, reference/tcaplus.md §1.2). The emulator's
  password is that key, and the header carries its MD5 ``879423b8…`` as the manual's text demands;
  :func:`test_sample_header_with_raw_key_is_rejected` shows the literal header fails with -279.

Each sample needs a starting state (the manual's samples are not one consistent sequence: its
SetRecord answers version 1, so it ran on an empty table). Each test builds that state through the
API itself (AddRecord / SetRecord with version policy 2) and then compares the whole answer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.tcaplus.conftest import PASSWORD, PASSWORD_MD5

PATH = "/ver1.0/apps/2/zones/1/tables/tb_example/records"


def sample_headers(lines: list[str]) -> dict[str, str]:
    """The manual's ``"name:value"`` header lists, with the password header fixed (see module doc)."""
    headers = dict(line.split(":", 1) for line in lines)
    assert headers["x-tcaplus-pwd-md5"] == PASSWORD
    headers["x-tcaplus-pwd-md5"] = PASSWORD_MD5
    return headers


BASE = ["x-tcaplus-version:Tcaplus3.32.0", f"x-tcaplus-pwd-md5:{PASSWORD}"]

# -- the manual's samples, verbatim -----------------------------------------------------------------

ADD_HEADERS = ["x-tcaplus-target:Tcaplus.AddRecord", *BASE, "x-tcaplus-result-flag:1", "x-tcaplus-idl-type:protobuf"]
ADD_REQUEST = json.loads("""{
 "ReturnValues": "Send to tcaplus by calvinshao",
 "Record": {
  "name": "calvinshao",
  "lockid": [50, 60, 70],
  "pay": {"pay_times": 2, "total_money": 10000, "pay_id": 5,
          "auth": {"pay_keys": "adqwacsasafasda", "update_time": 1528018372}},
  "region": 101, "uin": 100, "is_available": true, "gamesvrid": 4099, "logintime": 404
 }
}""")
ADD_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 1,
 "ReturnValues": "Send to tcaplus by calvinshao",
 "Record": {
  "name": "calvinshao",
  "lockid": [50, 60, 70],
  "pay": {"pay_times": 2, "total_money": 10000, "pay_id": 5,
          "auth": {"pay_keys": "adqwacsasafasda", "update_time": 1528018372}},
  "region": 101, "uin": 100, "is_available": true, "gamesvrid": 4099, "logintime": 404
 }
}""")

GET_QUERY = "keys=%7B%22region%22%3A%20101%2C%20%22name%22%3A%20%22calvinshao%22%2C%20%22uin%22%3A%20100%7D"
GET_HEADERS = ["x-tcaplus-target:Tcaplus.GetRecord", *BASE, "x-tcaplus-idl-type:protobuf"]
GET_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 1,
 "Record": {
  "name": "calvinshao", "lockid": [50, 60, 70],
  "pay": {"pay_times": 2, "total_money": 10000, "pay_id": 5,
          "auth": {"pay_keys": "adqwacsasafasda", "update_time": 1528018372}},
  "region": 101, "uin": 100, "is_available": true, "gamesvrid": 4099, "logintime": 404
 }
}""")

SET_HEADERS = [
    "x-tcaplus-target:Tcaplus.SetRecord",
    *BASE,
    "x-tcaplus-result-flag:2",
    "x-tcaplus-data-version-check:2",
    "x-tcaplus-data-version:-1",
    "x-tcaplus-idl-type:Protobuf",
]
SET_REQUEST = json.loads("""{
 "ReturnValues": "Send to tcaplus by calvinshao",
 "Record": {
  "name": "calvinshao", "lockid": [50, 60, 70, 80, 90, 100],
  "pay": {"pay_times": 3, "total_money": 12000, "pay_id": 5,
          "auth": {"pay_keys": "adqwacsasafasda", "update_time": 1528018372}},
  "region": 101, "uin": 100, "is_available": false, "gamesvrid": 4099, "logintime": 404
 }
}""")
SET_RESPONSE = {"ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 1, **SET_REQUEST}

DELETE_HEADERS = ["x-tcaplus-target:Tcaplus.DeleteRecord", *BASE, "x-tcaplus-result-flag:1", "x-tcaplus-idl-type:protobuf"]
DELETE_REQUEST = json.loads("""{
 "ReturnValues": "Send to tcaplus by calvinshao",
 "Record": {"region": 101, "name": "calvinshao", "uin": 100}
}""")
DELETE_RESPONSE = json.loads("""{
 "ErrorCode": 0, "Record": {}, "RecordVersion": -1, "ReturnValues": "Send to tcaplus by calvinshao"
}""")

FIELD_GET_QUERY = (
    "keys=%7B%22region%22%3A%20101%2C%20%22name%22%3A%20%22calvinshao%22%2C%20%22uin%22%3A%20100%7D"
    "&select=%5B%22gamesvrid%22%2C%20%22lockid%22%2C%20%22pay.auth.pay_keys%22%2C%20%22pay.total_money%22%5D"
)
FIELD_GET_HEADERS = ["x-tcaplus-target:Tcaplus.FieldGetRecord", *BASE, "x-tcaplus-idl-type:protobuf"]
FIELD_GET_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 1,
 "Record": {
  "name": "calvinshao", "lockid": [50, 60, 70],
  "pay": {"total_money": 10000, "auth": {"pay_keys": "adqwacsasafasda"}},
  "region": 101, "uin": 100, "gamesvrid": 4099
 }
}""")

FIELD_SET_HEADERS = [
    "x-tcaplus-target:Tcaplus.FieldSetRecord",
    *BASE,
    "x-tcaplus-result-flag:1",
    "x-tcaplus-data-version-check:1",
    "x-tcaplus-data-version:-1",
    "x-tcaplus-idl-type:Protobuf",
]
FIELD_SET_REQUEST = json.loads("""{
 "ReturnValues": "aaaaaaaaaa",
 "FieldPath": ["gamesvrid", "logintime", "pay.total_money", "pay.auth.pay_keys"],
 "Record": {
  "name": "calvinshao",
  "pay": {"total_money": 17190, "auth": {"pay_keys": "bingo"}},
  "region": 101, "uin": 100, "gamesvrid": 1719, "logintime": 1719
 }
}""")
FIELD_SET_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 3, "ReturnValues": "aaaaaaaaaa",
 "Record": {
  "name": "calvinshao",
  "pay": {"total_money": 17190, "auth": {"pay_keys": "bingo"}},
  "region": 101, "uin": 100, "gamesvrid": 1719, "logintime": 1719
 }
}""")

FIELD_INC_HEADERS = [
    "x-tcaplus-target:Tcaplus.FieldIncRecord",
    *BASE,
    "x-tcaplus-result-flag:1",
    "x-tcaplus-data-version-check:1",
    "x-tcaplus-data-version:-1",
    "x-tcaplus-idl-type:Protobuf",
]
FIELD_INC_REQUEST = json.loads("""{
 "ReturnValues": "aaaaaaaaaa",
 "Record": {
  "name": "calvinshao",
  "pay": {"total_money": -1, "auth": {"update_time": -1}},
  "region": 101, "uin": 100, "gamesvrid": 2, "logintime": -2
 }
}""")
FIELD_INC_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed", "RecordVersion": 9, "ReturnValues": "aaaaaaaaaa",
 "Record": {
  "name": "calvinshao",
  "pay": {"total_money": 11999, "auth": {"update_time": 921}},
  "region": 101, "uin": 100, "gamesvrid": 4101, "logintime": 98
 }
}""")

PARTKEY_QUERY = (
    "keys=%7B%22name%22%3A%20%22calvinshao%22%2C%20%22uin%22%3A%20100%7D"
    "&select=%5B%22gamesvrid%22%2C%20%22lockid%22%2C%20%22pay.total_money%22%2C%20%22pay.auth.pay_keys%22%5D"
)
PARTKEY_HEADERS = [
    "x-tcaplus-target:Tcaplus.PartkeyGetRecord",
    *BASE,
    "x-tcaplus-idl-type:protobuf",
    "x-tcaplus-index-name:index_name",
]
PARTKEY_RESPONSE = json.loads("""{
 "ErrorCode": 0, "ErrorMsg": "Succeed",
 "MultiRecords": [
  {"RecordVersion": 9, "Record": {
    "name": "calvinshao", "lockid": [50, 60, 70, 80, 90, 100],
    "pay": {"total_money": 11999, "auth": {"pay_keys": "adqwacsasafasda"}},
    "region": 101, "uin": 100, "gamesvrid": 4101}},
  {"RecordVersion": 1, "Record": {
    "name": "calvinshao", "lockid": [50, 60, 70, 80],
    "pay": {"total_money": 10000, "auth": {"pay_keys": "adqwacsasafasda"}},
    "region": 102, "uin": 100, "gamesvrid": 4100}},
  {"RecordVersion": 1, "Record": {
    "name": "calvinshao", "lockid": [60, 70, 80, 90],
    "pay": {"total_money": 10000, "auth": {"pay_keys": "adqwacsasafasda"}},
    "region": 103, "uin": 100, "gamesvrid": 4101}}
 ],
 "RemainNum": 0,
 "TotalNum": 3
}""")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def http(tcaplus_url: str) -> httpx.Client:
    with httpx.Client(base_url=tcaplus_url, timeout=5.0, verify=False) as c:
        yield c


def send(http: httpx.Client, method: str, headers: list[str], *, query: str = "", body: Any = None) -> httpx.Response:
    url = f"{PATH}?{query}" if query else PATH
    content = json.dumps(body).encode() if body is not None else None
    return http.request(method, url, headers=sample_headers(headers), content=content)


def seed(http: httpx.Client, record: dict[str, Any], *, version: int | None = None) -> None:
    """Store ``record`` (SetRecord); with ``version``, force that version (check policy 2)."""
    headers = ["x-tcaplus-target:Tcaplus.SetRecord", *BASE, "x-tcaplus-idl-type:protobuf"]
    if version is not None:
        headers += ["x-tcaplus-data-version-check:2", f"x-tcaplus-data-version:{version}"]
    resp = send(http, "PUT", headers, body={"Record": record})
    assert resp.json()["ErrorCode"] == 0, resp.text
    if version is not None:
        assert resp.json()["RecordVersion"] == version


def expect(resp: httpx.Response, status: int, body: dict[str, Any]) -> None:
    assert (resp.status_code, resp.json()) == (status, body)


# -- the samples -----------------------------------------------------------------------------------


def test_add_record_sample(http: httpx.Client) -> None:
    expect(send(http, "POST", ADD_HEADERS, body=ADD_REQUEST), 200, ADD_RESPONSE)


def test_get_record_sample(http: httpx.Client) -> None:
    send(http, "POST", ADD_HEADERS, body=ADD_REQUEST)
    expect(send(http, "GET", GET_HEADERS, query=GET_QUERY), 200, GET_RESPONSE)


def test_set_record_sample_on_an_empty_table(http: httpx.Client) -> None:
    expect(send(http, "PUT", SET_HEADERS, body=SET_REQUEST), 200, SET_RESPONSE)


def test_set_record_sample_over_an_existing_record_bumps_the_version(http: httpx.Client) -> None:
    send(http, "POST", ADD_HEADERS, body=ADD_REQUEST)
    expect(send(http, "PUT", SET_HEADERS, body=SET_REQUEST), 200, {**SET_RESPONSE, "RecordVersion": 2})
    assert send(http, "GET", GET_HEADERS, query=GET_QUERY).json()["Record"] == SET_REQUEST["Record"]


def test_delete_record_sample(http: httpx.Client) -> None:
    send(http, "POST", ADD_HEADERS, body=ADD_REQUEST)
    expect(send(http, "DELETE", DELETE_HEADERS, body=DELETE_REQUEST), 200, DELETE_RESPONSE)
    expect(send(http, "GET", GET_HEADERS, query=GET_QUERY), 404, {"ErrorCode": 261, "ErrorMsg": "The record does not exist"})


def test_field_get_record_sample(http: httpx.Client) -> None:
    send(http, "POST", ADD_HEADERS, body=ADD_REQUEST)
    expect(send(http, "GET", FIELD_GET_HEADERS, query=FIELD_GET_QUERY), 200, FIELD_GET_RESPONSE)


def test_field_set_record_sample(http: httpx.Client) -> None:
    seed(http, ADD_REQUEST["Record"], version=2)
    expect(send(http, "PUT", FIELD_SET_HEADERS, body=FIELD_SET_REQUEST), 200, FIELD_SET_RESPONSE)
    after = send(http, "GET", GET_HEADERS, query=GET_QUERY).json()
    assert after["RecordVersion"] == 3
    assert after["Record"]["pay"] == {
        "pay_times": 2,
        "total_money": 17190,
        "pay_id": 5,
        "auth": {"pay_keys": "bingo", "update_time": 1528018372},
    }
    assert (after["Record"]["gamesvrid"], after["Record"]["logintime"], after["Record"]["lockid"]) == (1719, 1719, [50, 60, 70])


def test_field_inc_record_sample(http: httpx.Client) -> None:
    before = json.loads(json.dumps(SET_REQUEST["Record"]))
    before["pay"]["auth"]["update_time"] = 922
    before["logintime"] = 100
    seed(http, before, version=8)
    expect(send(http, "PUT", FIELD_INC_HEADERS, body=FIELD_INC_REQUEST), 200, FIELD_INC_RESPONSE)
    after = send(http, "GET", GET_HEADERS, query=GET_QUERY).json()
    assert after["RecordVersion"] == 9
    assert after["Record"]["pay"]["pay_times"] == 3 and after["Record"]["lockid"] == [50, 60, 70, 80, 90, 100]


def test_partkey_get_record_sample(http: httpx.Client) -> None:
    first = json.loads(json.dumps(SET_REQUEST["Record"]))
    first["pay"]["total_money"], first["gamesvrid"] = 11999, 4101
    seed(http, first, version=9)
    for region, lockid, gamesvrid in ((102, [50, 60, 70, 80], 4100), (103, [60, 70, 80, 90], 4101)):
        seed(http, {**ADD_REQUEST["Record"], "region": region, "lockid": lockid, "gamesvrid": gamesvrid})
    seed(http, {**ADD_REQUEST["Record"], "name": "someone_else"})  # outside the index keys
    expect(send(http, "GET", PARTKEY_HEADERS, query=PARTKEY_QUERY), 200, PARTKEY_RESPONSE)


def test_unencoded_sample_urls_decode_the_same(http: httpx.Client, tcaplus_emulator: Any) -> None:
    """The manual asks for %20; with the ``plus_as_space`` knob a '+' for a space decodes to the
    same JSON (without it, '+' stays a plus: see tests/tcaplus/test_emulator.py)."""
    tcaplus_emulator.plus_as_space = True
    send(http, "POST", ADD_HEADERS, body=ADD_REQUEST)
    plus = FIELD_GET_QUERY.replace("%20", "+")
    expect(send(http, "GET", FIELD_GET_HEADERS, query=plus), 200, FIELD_GET_RESPONSE)


def test_sample_header_with_raw_key_is_rejected(http: httpx.Client) -> None:
    headers = dict(line.split(":", 1) for line in GET_HEADERS)  # the literal sample header
    resp = http.get(f"{PATH}?{GET_QUERY}", headers=headers)
    assert resp.status_code == 401 and resp.json()["ErrorCode"] == -279

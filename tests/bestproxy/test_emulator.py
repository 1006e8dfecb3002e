"""The BestProxy emulator over real HTTP (plain httpx, no product client).

Every endpoint's success and documented failures, batch semantics, persistence, fault knobs.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import httpx
import pyotp
import pytest

try:  # default "prepend" import mode puts this directory on sys.path
    from emulator_fixtures import (
        APP_KEY,
        SANDBOX_VERIFY_CODE,
        TOTP_SECRET,
        USER_PRODUCT_IDS,
        BestProxyApi,
        running_bestproxy,
    )
except ImportError:  # pragma: no cover - package-style layout
    from tests.bestproxy.emulator_fixtures import (  # type: ignore[no-redef]
        APP_KEY,
        SANDBOX_VERIFY_CODE,
        TOTP_SECRET,
        USER_PRODUCT_IDS,
        BestProxyApi,
        running_bestproxy,
    )

from reconciler.sandbox.base import Faults
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import KNOBS, BestProxyEmulator

LIST = "/gateway/whitelist-account/list"
ADD = "/gateway/whitelist-account/add"
DELETE = "/gateway/whitelist-account/delete"
ENABLE = "/gateway/whitelist-account/enable"
DISABLE = "/gateway/whitelist-account/disable"
CHANGE_PASSWORD = "/gateway/whitelist-account/change-password"
CHANGE_REMARK = "/gateway/whitelist-account/change-remark"
CHANGE_LIMIT = "/gateway/whitelist-account/change-limit"
ACCOUNT_CHANGE = "/gateway/proxy-account/change"
IP_LIST = "/gateway/proxy-ip/list"
IP_ADD = "/gateway/proxy-ip/add"
IP_DELETE = "/gateway/proxy-ip/delete"

OK = {"code": 200, "msg": "success", "data": None}
ACCOUNT_FIELDS = {
    "id",
    "username",
    "password",
    "created_at",
    "remark",
    "product_type",
    "usage_flow",
    "limit_flow",
    "status",
}
TS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture(scope="module")
def bestproxy_module_server() -> Iterator[EmulatorServer]:
    # One server per module: stopping a server costs ~0.5 s (serve_forever's poll interval).
    with running_bestproxy() as srv:
        yield srv


@pytest.fixture
def emu(bestproxy_module_server: EmulatorServer) -> BestProxyEmulator:
    """The module's emulator, reset to an empty account with no faults."""
    emulator = bestproxy_module_server.emulator
    assert isinstance(emulator, BestProxyEmulator)
    emulator.wipe()
    emulator.faults = Faults()
    emulator.verified = True
    emulator.set_knobs(**{name: answers[0] for name, answers in KNOBS.items()})  # the default answers
    emulator.clock = time.time
    emulator.totp_secret = TOTP_SECRET
    emulator.user_product_ids = {k: list(v) for k, v in USER_PRODUCT_IDS.items()}
    emulator.stats.clear()
    return emulator


@pytest.fixture
def api(bestproxy_module_server: EmulatorServer, emu: BestProxyEmulator) -> Iterator[BestProxyApi]:
    client = BestProxyApi(bestproxy_module_server.url)
    yield client
    client.close()


def param_error(resp: httpx.Response, *fields: str) -> dict[str, list[str]]:
    """Assert an ErrorResponse naming exactly ``fields``; return its errors."""
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"code", "message", "errors"}, body
    assert body["code"] == 400 and body["message"] == "Parameter error"
    assert set(body["errors"]) == set(fields), body["errors"]
    return body["errors"]


def add(api: BestProxyApi, accounts: str, product_type: Any = 9, **kw: Any) -> httpx.Response:
    return api.post(ADD, accounts=accounts, product_type=product_type, **kw)


# -- auth and envelope ------------------------------------------------------------------------


def test_invalid_or_missing_app_key_is_code_3(api: BestProxyApi) -> None:
    for resp in (
        api.get(LIST, app_key="wrong"),
        api.http.get(LIST),
        api.post(ADD, app_key="wrong", accounts="user1:pass123", product_type=9),
        api.http.post(ADD, json={"accounts": "user1:pass123", "product_type": 9}),
        api.post(IP_DELETE, app_key="", ips="1.1.1.1", verify_type="phone", verify_code="000000"),
    ):
        assert resp.status_code == 200
        assert resp.json() == {"code": 3, "msg": "invalid app_key", "data": None}
    assert api.accounts() == {}


def test_app_key_in_query_json_body_or_form(api: BestProxyApi) -> None:
    assert api.http.post(ADD, params={"app_key": APP_KEY}, json={"accounts": "q1:pass123", "product_type": 9}).json() == OK
    assert api.post(ADD, accounts="j1:pass123", product_type=9).json() == OK
    assert api.post_form(ADD, accounts="f1:pass123", product_type=9).json() == OK
    # A body key wins over the query key.
    r = api.http.post(
        ADD,
        params={"app_key": APP_KEY},
        json={"app_key": "wrong", "accounts": "x1:pass123", "product_type": 9},
    )
    assert r.json()["code"] == 3
    assert set(api.accounts()) == {"q1", "j1", "f1"}


def test_unknown_path_and_wrong_method(api: BestProxyApi) -> None:
    r = api.get("/gateway/nope")
    assert r.status_code == 404 and r.json() == {"code": 404, "msg": "Not Found", "data": None}
    r = api.post(LIST)
    assert r.status_code == 405 and r.json()["code"] == 405
    r = api.get(ADD)
    assert r.status_code == 405


def test_unparseable_body_is_a_parameter_error(api: BestProxyApi) -> None:
    r = api.http.post(ADD, content=b"{not json", headers={"Content-Type": "application/json"})
    param_error(r, "body")
    r = api.http.post(ADD, json=[1, 2])
    param_error(r, "body")


# -- whitelist-account/list and add -----------------------------------------------------------


def test_add_then_list_returns_exactly_the_documented_fields(api: BestProxyApi) -> None:
    assert add(api, "alice1:secret1,bob2:Secret22", product_type=14, remark="team a").json() == OK
    accounts = api.accounts()
    assert set(accounts) == {"alice1", "bob2"}
    a = accounts["alice1"]
    assert set(a) == ACCOUNT_FIELDS
    assert isinstance(a["id"], int) and a["id"] != accounts["bob2"]["id"]
    assert a["password"] == "secret1" and accounts["bob2"]["password"] == "Secret22"
    assert a["remark"] == "team a"
    assert a["product_type"] == 14
    assert a["limit_flow"] == 0 and a["status"] == 1
    assert TS.fullmatch(a["created_at"])
    assert "daily_limit" not in a and "udp" not in a


def test_usage_flow_is_nonzero_and_moves_on_every_read(api: BestProxyApi) -> None:
    add(api, "u1:pass123,u2:pass123")
    first = {u: a["usage_flow"] for u, a in api.accounts().items()}
    second = {u: a["usage_flow"] for u, a in api.accounts().items()}
    assert all(v > 0 for v in first.values())
    assert all(second[u] > first[u] for u in first)


def test_add_accepts_form_encoded_product_type(api: BestProxyApi) -> None:
    assert api.post_form(ADD, accounts="form1:pass123", product_type="25", remark="").json() == OK
    assert api.accounts()["form1"]["product_type"] == 25


@pytest.mark.parametrize(
    "accounts",
    [
        "",  # missing
        "user1",  # no password
        "user 1:pass123",  # space
        "user_1:pass123",  # symbol in username
        "user1:pass-123",  # symbol in password
        "user1:pass1",  # 5 characters
        "user1:pass5678901234567",  # 17 characters
        "user1:pass123,",  # empty entry
        "user1:pass123, user2:pass123",  # space after the comma
        "a" * 65 + ":pass123",  # username too long
    ],
)
def test_add_rejects_malformed_accounts(api: BestProxyApi, emu: BestProxyEmulator, accounts: str) -> None:
    emu.password_length = "everywhere"  # the knob: length checked on add too (the document states it only on change)
    param_error(add(api, accounts), "accounts")
    assert api.accounts() == {}


def test_add_error_messages_never_echo_passwords(api: BestProxyApi) -> None:
    errors = param_error(add(api, "user1:p@ssword,mistyped"), "accounts")
    assert "p@ssword" not in str(errors) and "mistyped" not in str(errors)


def test_documented_add_needs_no_product_type_and_checks_no_password_length(api: BestProxyApi) -> None:
    """The defaults answer as the document reads: product_type "Required: No" on add; a password
    length (6-16) is stated only for /gateway/proxy-account/change."""
    assert api.post(ADD, accounts="np1:pass123").json() == OK
    assert api.accounts()["np1"]["product_type"] == 9  # the emulator's guess for the absent type
    assert add(api, "short1:abc").json() == OK
    assert api.post(CHANGE_PASSWORD, account="short1", password="x1").json() == OK
    param_error(api.post(ACCOUNT_CHANGE, account="short1", password="abc"), "password")


def test_add_rejects_bad_product_type_and_remark(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    emu.add_product_type = "required"  # the knob: the document marks product_type "Required: No"
    emu.password_length = "everywhere"  # "bad:x" below is also a short password
    param_error(api.post(ADD, accounts="user1:pass123"), "product_type")
    param_error(add(api, "user1:pass123", product_type=10), "product_type")
    param_error(add(api, "user1:pass123", product_type="x"), "product_type")
    param_error(add(api, "user1:pass123", product_type=True), "product_type")
    param_error(add(api, "user1:pass123", product_type=9.0), "product_type")
    param_error(add(api, "user1:pass123", remark=7), "remark")
    # Every problem is reported at once.
    param_error(api.post(ADD, accounts="bad:x", product_type=1, remark="r" * 65), "accounts", "product_type", "remark")
    assert api.accounts() == {}


def test_remark_length_rule(api: BestProxyApi) -> None:
    assert add(api, "r1:pass123", remark="x" * 64).json() == OK
    param_error(add(api, "r2:pass123", remark="x" * 65), "remark")
    assert add(api, "r3:pass123", remark="备" * 32).json() == OK
    param_error(add(api, "r4:pass123", remark="备" * 33), "remark")
    # One CJK character puts the whole remark under the 32-character limit.
    param_error(add(api, "r5:pass123", remark="备" + "x" * 32), "remark")
    assert add(api, "r6:pass123", remark="备" + "x" * 31).json() == OK
    assert api.accounts()["r3"]["remark"] == "备" * 32
    assert set(api.accounts()) == {"r1", "r3", "r6"}


def test_add_batch_is_all_or_nothing(api: BestProxyApi) -> None:
    assert add(api, "taken1:pass123").json() == OK
    errors = param_error(add(api, "new1:pass123,taken1:pass999,new2:pass123"), "accounts")
    assert "taken1" in errors["accounts"][0]
    assert set(api.accounts()) == {"taken1"}
    assert api.accounts()["taken1"]["password"] == "pass123"
    # Usernames are unique across product types too.
    param_error(add(api, "taken1:pass123", product_type=25), "accounts")


def test_add_rejects_duplicate_usernames_in_a_batch(api: BestProxyApi) -> None:
    errors = param_error(add(api, "dup1:pass123,other:pass123,dup1:pass456"), "accounts")
    assert "dup1" in errors["accounts"][0]
    assert api.accounts() == {}


def test_usernames_are_case_sensitive(api: BestProxyApi) -> None:
    assert add(api, "User1:pass123,user1:pass123").json() == OK
    assert set(api.accounts()) == {"User1", "user1"}


def test_account_not_verified_is_code_156(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    add(api, "v1:pass123")
    emu.verified = False
    not_verified = {"code": 156, "msg": "account not verified", "data": None}
    assert add(api, "v2:pass123").json() == not_verified
    assert api.post(DISABLE, accounts="v1").json() == not_verified
    assert api.post(CHANGE_REMARK, account="v1", remark="x").json() == not_verified
    assert api.get(LIST).json()["code"] == 200
    assert set(api.accounts()) == {"v1"} and api.accounts()["v1"]["status"] == 1


# -- delete / enable / disable ----------------------------------------------------------------


def test_delete_enable_disable_in_batches(api: BestProxyApi) -> None:
    add(api, "a1:pass123,a2:pass123,a3:pass123")
    assert api.post(DISABLE, accounts="a1,a2").json() == OK
    assert {u: a["status"] for u, a in api.accounts().items()} == {"a1": 0, "a2": 0, "a3": 1}
    # Repeating is harmless.
    assert api.post(DISABLE, accounts="a1").json() == OK
    assert api.post_form(ENABLE, accounts="a1,a3").json() == OK
    assert {u: a["status"] for u, a in api.accounts().items()} == {"a1": 1, "a2": 0, "a3": 1}
    assert api.post(DELETE, accounts="a1,a2").json() == OK
    assert set(api.accounts()) == {"a3"}
    # A deleted name can be added again at once, and gets a new id.
    old_id = {u: a["id"] for u, a in api.accounts().items()}
    assert add(api, "a1:newpass1").json() == OK
    assert api.accounts()["a1"]["id"] > max(old_id.values())


@pytest.mark.parametrize("path", [DELETE, ENABLE, DISABLE])
def test_batch_with_an_unknown_account_changes_nothing(api: BestProxyApi, path: str) -> None:
    add(api, "k1:pass123,k2:pass123")
    api.post(DISABLE, accounts="k2")
    before = {u: a["status"] for u, a in api.accounts().items()}
    errors = param_error(api.post(path, accounts="k1,ghost,k2"), "accounts")
    assert "ghost" in errors["accounts"][0]
    assert {u: a["status"] for u, a in api.accounts().items()} == before


@pytest.mark.parametrize("accounts", ["", "k1,k1", "k1,", "k1:pass123", "k 1"])
@pytest.mark.parametrize("path", [DELETE, ENABLE, DISABLE])
def test_batch_rejects_malformed_lists(api: BestProxyApi, path: str, accounts: str) -> None:
    add(api, "k1:pass123")
    param_error(api.post(path, accounts=accounts), "accounts")
    assert api.accounts()["k1"]["status"] == 1


# -- change-password / change-remark / change-limit -------------------------------------------


def test_change_password_remark_limit(api: BestProxyApi) -> None:
    add(api, "c1:pass123", remark="old")
    assert api.post(CHANGE_PASSWORD, account="c1", password="NewPass99").json() == OK
    assert api.post(CHANGE_REMARK, account="c1", remark="新的备注").json() == OK
    assert api.post_form(CHANGE_LIMIT, account="c1", limit="102400").json() == OK
    a = api.accounts()["c1"]
    assert (a["password"], a["remark"], a["limit_flow"]) == ("NewPass99", "新的备注", 102400)
    assert api.post(CHANGE_REMARK, account="c1", remark="").json() == OK
    assert api.post(CHANGE_LIMIT, account="c1", limit=0).json() == OK
    a = api.accounts()["c1"]
    assert (a["remark"], a["limit_flow"]) == ("", 0)


def test_change_endpoints_validate(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    emu.password_length = "everywhere"  # the knob: change-password checks the length too
    add(api, "c1:pass123", remark="keep")
    param_error(api.post(CHANGE_PASSWORD, account="c1"), "password")
    param_error(api.post(CHANGE_PASSWORD, account="c1", password="short"), "password")
    param_error(api.post(CHANGE_PASSWORD, account="c1", password="has space1"), "password")
    param_error(api.post(CHANGE_PASSWORD, password="pass123456"), "account")
    param_error(api.post(CHANGE_PASSWORD, account="c-1", password="pass123456"), "account")
    param_error(api.post(CHANGE_REMARK, account="c1"), "remark")
    param_error(api.post(CHANGE_REMARK, account="c1", remark="x" * 65), "remark")
    param_error(api.post(CHANGE_LIMIT, account="c1"), "limit")
    param_error(api.post(CHANGE_LIMIT, account="c1", limit=102401), "limit")
    param_error(api.post(CHANGE_LIMIT, account="c1", limit=-1), "limit")
    param_error(api.post(CHANGE_LIMIT, account="c1", limit="1.5"), "limit")
    for path, extra in (
        (CHANGE_PASSWORD, {"password": "pass123456"}),
        (CHANGE_REMARK, {"remark": "x"}),
        (CHANGE_LIMIT, {"limit": 5}),
    ):
        errors = param_error(api.post(path, account="ghost", **extra), "account")
        assert "ghost" in errors["account"][0]
    a = api.accounts()["c1"]
    assert (a["password"], a["remark"], a["limit_flow"]) == ("pass123", "keep", 0)


# -- proxy-account/change ---------------------------------------------------------------------


def test_proxy_account_change_sets_only_given_fields(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    add(api, "p1:pass123", remark="r0", product_type=14)
    assert api.post(ACCOUNT_CHANGE, account="p1", limit=50, daily_limit=5).json() == OK
    rec = emu.account_record("p1")
    assert rec is not None
    assert (rec["password"], rec["remark"], rec["limit_flow"], rec["daily_limit"]) == ("pass123", "r0", 50, 5)
    assert (rec["status"], rec["udp"]) == (1, 0)
    r = api.post(ACCOUNT_CHANGE, account="p1", password="Another1", remark="r1", status=0, udp=1, limit=None)
    assert r.json() == OK
    rec = emu.account_record("p1")
    assert rec is not None
    assert (rec["password"], rec["remark"], rec["limit_flow"], rec["daily_limit"]) == ("Another1", "r1", 50, 5)
    assert (rec["status"], rec["udp"]) == (0, 1)
    # Form body: empty password / integers mean "unchanged"; an empty remark clears.
    assert api.post_form(ACCOUNT_CHANGE, account="p1", password="", limit="", remark="").json() == OK
    rec = emu.account_record("p1")
    assert rec is not None and (rec["password"], rec["limit_flow"], rec["remark"]) == ("Another1", 50, "")
    # Nothing to change is fine.
    assert api.post(ACCOUNT_CHANGE, account="p1").json() == OK
    # The list shows the documented fields only.
    listed = api.accounts()["p1"]
    assert set(listed) == ACCOUNT_FIELDS
    assert (listed["status"], listed["limit_flow"], listed["password"]) == (0, 50, "Another1")


@pytest.mark.parametrize("product_type", [9, 11])
def test_udp_only_for_static_product_types(api: BestProxyApi, emu: BestProxyEmulator, product_type: int) -> None:
    add(api, "d1:pass123", product_type=product_type)
    param_error(api.post(ACCOUNT_CHANGE, account="d1", udp=1, limit=9), "udp")
    rec = emu.account_record("d1")
    assert rec is not None and (rec["udp"], rec["limit_flow"]) == (0, 0)
    # switching UDP off is accepted for every type (the document's own example sends udp: 0)
    assert api.post(ACCOUNT_CHANGE, account="d1", udp=0, limit=8).json() == OK
    emu.set_knobs(udp_other_types="ignored")  # the other answer: accepted, not stored
    assert api.post(ACCOUNT_CHANGE, account="d1", udp=1, limit=9).json() == OK
    rec = emu.account_record("d1")
    assert rec is not None and (rec["udp"], rec["limit_flow"]) == (0, 9)


@pytest.mark.parametrize("product_type", [14, 25])
def test_udp_allowed_for_14_and_25(api: BestProxyApi, emu: BestProxyEmulator, product_type: int) -> None:
    add(api, "d1:pass123", product_type=product_type)
    assert api.post(ACCOUNT_CHANGE, account="d1", udp=1).json() == OK
    rec = emu.account_record("d1")
    assert rec is not None and rec["udp"] == 1


def test_proxy_account_change_validates(api: BestProxyApi) -> None:
    add(api, "p1:pass123", product_type=14)
    param_error(api.post(ACCOUNT_CHANGE, limit=1), "account")
    param_error(api.post(ACCOUNT_CHANGE, account="ghost", limit=1), "account")
    param_error(api.post(ACCOUNT_CHANGE, account="p1", password="abc12"), "password")
    param_error(api.post(ACCOUNT_CHANGE, account="p1", password="a" * 17), "password")  # one over the 16-character maximum
    param_error(api.post(ACCOUNT_CHANGE, account="p1", password="abc_12345"), "password")
    param_error(
        api.post(ACCOUNT_CHANGE, account="p1", status=2, udp=3, limit=102401, daily_limit=-1, remark="y" * 65),
        "status",
        "udp",
        "limit",
        "daily_limit",
        "remark",
    )
    assert api.post(ACCOUNT_CHANGE, account="p1", password="a" * 16, limit=102400).json() == OK


# -- proxy-ip ---------------------------------------------------------------------------------


def test_ip_add_and_list(api: BestProxyApi) -> None:
    assert api.post(IP_ADD, ips="1.1.1.1,2.2.2.2", remark="office", product_type=9).json() == OK
    assert api.post(IP_ADD, ips="3.3.3.3\n4.4.4.4\r\n 5.5.5.5 \n", product_type=14).json() == OK
    assert api.post_form(IP_ADD, ips="1.1.1.1", product_type=25, remark="dc").json() == OK
    assert api.ips() == [
        ("1.1.1.1", 9, "office"),
        ("2.2.2.2", 9, "office"),
        ("3.3.3.3", 14, ""),
        ("4.4.4.4", 14, ""),
        ("5.5.5.5", 14, ""),
        ("1.1.1.1", 25, "dc"),
    ]
    assert api.ips(product_type=14) == [("3.3.3.3", 14, ""), ("4.4.4.4", 14, ""), ("5.5.5.5", 14, "")]
    assert api.ips(product_type=11) == []
    entry = api.get(IP_LIST).json()["data"]["list"][0]
    assert set(entry) == {"ip", "remark", "product_type", "created_at"}
    assert TS.fullmatch(entry["created_at"])
    param_error(api.get(IP_LIST, product_type=10), "product_type")
    param_error(api.get(IP_LIST, product_type="abc"), "product_type")


def test_ip_add_existing_is_a_noop_that_keeps_the_remark(api: BestProxyApi) -> None:
    api.post(IP_ADD, ips="1.1.1.1", remark="first", product_type=9)
    assert api.post(IP_ADD, ips="1.1.1.1,2.2.2.2,2.2.2.2", remark="second", product_type=9).json() == OK
    assert api.ips() == [("1.1.1.1", 9, "first"), ("2.2.2.2", 9, "second")]


@pytest.mark.parametrize(
    "ips", ["", ",", "1.1.1.1,999.1.1.1", "1.1.1.1,01.2.3.4", "10.0.0.0/8", "::1", "1.1.1.1;2.2.2.2", "host.example"]
)
def test_ip_add_rejects_bad_ips_atomically(api: BestProxyApi, ips: str) -> None:
    param_error(api.post(IP_ADD, ips=ips, product_type=9), "ips")
    assert api.ips() == []


def test_ip_add_validates_product_type_and_remark(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=10), "product_type")
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=9, remark="备" * 33), "remark")
    emu.set_knobs(ip_add_product_type="required")  # the guess the document does not make
    param_error(api.post(IP_ADD, ips="1.1.1.1"), "product_type")
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=0), "product_type")
    assert api.ips() == []


def test_ip_add_product_type_is_optional_as_documented(api: BestProxyApi) -> None:
    """The document: product_type Required "No"; its list example shows product_type 0. Without
    one (or with 0, as the document's own add example sends) the entry is listed under 0."""
    assert api.post(IP_ADD, ips="1.1.1.1").json() == OK
    assert api.post(IP_ADD, ips="2.2.2.2", product_type=0, user_product_id=0).json() == OK
    assert api.ips() == [("1.1.1.1", 0, ""), ("2.2.2.2", 0, "")]
    assert api.ips(product_type=0) == api.ips() and api.ips(product_type=9) == []


@pytest.mark.parametrize("ips", ["2001:db8::1", "2001:DB8:0::1", "10.0.0.0/8", "10.0.0.1/24", "2001:db8::/32"])
def test_ip_forms_knob_takes_ipv6_and_cidr_as_sent(api: BestProxyApi, emu: BestProxyEmulator, ips: str) -> None:
    param_error(api.post(IP_ADD, ips=ips, product_type=9), "ips")  # ipv4 only (the default)
    emu.set_knobs(ip_forms="any")
    assert api.post(IP_ADD, ips=ips, product_type=9).json() == OK
    assert api.ips() == [(ips, 9, "")]
    assert api.post(IP_DELETE, ips=ips, verify_type="email", verify_code=SANDBOX_VERIFY_CODE).json() == OK
    assert api.ips() == []
    param_error(api.post(IP_ADD, ips="host.example", product_type=9), "ips")


def test_ip_product_types_knob(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=9).json() == OK
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=14).json() == OK  # many (the default)
    emu.set_knobs(ip_product_types="one")
    errors = param_error(api.post(IP_ADD, ips="1.1.1.1,2.2.2.2", product_type=25), "ips")
    assert "1.1.1.1" in errors["ips"][0]
    assert api.ips() == [("1.1.1.1", 9, ""), ("1.1.1.1", 14, "")]  # whole batch refused
    assert api.post(IP_ADD, ips="3.3.3.3", product_type=25).json() == OK
    assert api.post(IP_ADD, ips="3.3.3.3", product_type=25).json() == OK  # its own type: a no-op
    param_error(api.post(IP_ADD, ips="3.3.3.3", product_type=9), "ips")


def test_batches_partial_applies_the_rest_and_names_the_failures(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    emu.set_knobs(batches="partial", ip_product_types="one")
    add(api, "taken1:pass123")
    errors = param_error(add(api, "new1:pass123,taken1:pass123,bad-1:x"), "accounts")
    assert any("taken1" in e for e in errors["accounts"]) and "entry 3" in " ".join(errors["accounts"])
    assert set(api.accounts()) == {"taken1", "new1"}
    for path in (DISABLE, DELETE):
        errors = param_error(api.post(path, accounts="new1,ghost1"), "accounts")
        assert "ghost1" in errors["accounts"][0]
    assert set(api.accounts()) == {"taken1"}
    api.post(IP_ADD, ips="1.1.1.1", product_type=9)
    errors = param_error(api.post(IP_ADD, ips="1.1.1.1,2.2.2.2,bad", product_type=14), "ips")
    assert len(errors["ips"]) == 2
    assert api.ips() == [("1.1.1.1", 9, ""), ("2.2.2.2", 14, "")]
    param_error(api.post(IP_DELETE, ips="1.1.1.1,bad", verify_type="email", verify_code=SANDBOX_VERIFY_CODE), "ips")
    assert api.ips() == [("2.2.2.2", 14, "")]
    # a batch with no good item changes nothing; a bad field still refuses the whole batch
    param_error(add(api, "taken1:pass123"), "accounts")
    param_error(add(api, "new2:pass123", remark="r" * 65), "remark")
    assert set(api.accounts()) == {"taken1"}


def test_totp_reuse_knob(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    now = 1_750_000_000.0
    emu.clock = lambda: now
    totp = pyotp.TOTP(TOTP_SECRET)
    api.post(IP_ADD, ips="1.1.1.1,2.2.2.2,3.3.3.3", product_type=9)
    code = totp.at(now)
    assert api.post(IP_DELETE, ips="1.1.1.1", verify_type="totp", verify_code=code).json() == OK
    assert api.post(IP_DELETE, ips="2.2.2.2", verify_type="totp", verify_code=code).json() == OK  # accepted
    emu.set_knobs(totp_reuse="refused")
    assert api.post(IP_DELETE, ips="2.2.2.2", verify_type="totp", verify_code=code).json() == OK  # first use
    param_error(api.post(IP_DELETE, ips="3.3.3.3", verify_type="totp", verify_code=code), "verify_code")
    param_error(api.post(IP_DELETE, ips="3.3.3.3", verify_type="totp", verify_code=totp.at(now - 30)), "verify_code")
    assert api.post(IP_DELETE, ips="3.3.3.3", verify_type="totp", verify_code=totp.at(now + 30)).json() == OK
    assert api.ips() == []


def test_knobs_reject_unknown_answers(emu: BestProxyEmulator) -> None:
    with pytest.raises(ValueError):
        emu.set_knobs(batches="sometimes")
    with pytest.raises(ValueError):
        emu.set_knobs(no_such_knob="x")
    with pytest.raises(ValueError):
        BestProxyEmulator(app_key=APP_KEY, ip_forms="ipv6")


def test_ip_add_type_11_needs_an_owned_user_product_id(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=11), "user_product_id")
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=11, user_product_id=0), "user_product_id")
    param_error(api.post(IP_ADD, ips="1.1.1.1", product_type=11, user_product_id=9999), "user_product_id")
    assert api.ips() == []
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=11, user_product_id=1102).json() == OK
    # Ignored for other product types.
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=9, user_product_id=0).json() == OK
    assert [(r["ip"], r["product_type"], r["user_product_id"]) for r in emu.ip_records()] == [
        ("1.1.1.1", 9, None),
        ("1.1.1.1", 11, 1102),
    ]


def test_ip_add_type_11_without_a_mapping_takes_any_positive_id(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    emu.user_product_ids = None
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=11, user_product_id=77).json() == OK
    param_error(api.post(IP_ADD, ips="2.2.2.2", product_type=11, user_product_id=-1), "user_product_id")
    assert api.ips() == [("1.1.1.1", 11, "")]


def test_ip_delete_removes_from_every_product_type(api: BestProxyApi) -> None:
    api.post(IP_ADD, ips="1.1.1.1,2.2.2.2", product_type=9)
    api.post(IP_ADD, ips="1.1.1.1,3.3.3.3", product_type=14)
    r = api.post(IP_DELETE, ips="1.1.1.1,9.9.9.9", verify_type="email", verify_code=SANDBOX_VERIFY_CODE)
    assert r.json() == OK  # 9.9.9.9 was never allowlisted: ignored
    assert api.ips() == [("2.2.2.2", 9, ""), ("3.3.3.3", 14, "")]
    for vtype in ("phone", "wechat"):
        assert api.post_form(IP_DELETE, ips="2.2.2.2", verify_type=vtype, verify_code="000000").json() == OK
    assert api.ips() == [("3.3.3.3", 14, "")]


def test_ip_delete_validates_before_deleting(api: BestProxyApi) -> None:
    api.post(IP_ADD, ips="1.1.1.1,2.2.2.2", product_type=9)
    param_error(api.post(IP_DELETE, ips="1.1.1.1", verify_type="sms", verify_code="000000"), "verify_type")
    param_error(api.post(IP_DELETE, ips="1.1.1.1", verify_code="000000"), "verify_type")
    param_error(api.post(IP_DELETE, ips="1.1.1.1", verify_type="phone"), "verify_code")
    param_error(api.post(IP_DELETE, ips="1.1.1.1", verify_type="phone", verify_code="123456"), "verify_code")
    param_error(api.post(IP_DELETE, verify_type="phone", verify_code="000000"), "ips")
    # delete splits on commas only
    param_error(api.post(IP_DELETE, ips="1.1.1.1\n2.2.2.2", verify_type="phone", verify_code="000000"), "ips")
    param_error(api.post(IP_DELETE, ips="1.1.1.1,bad", verify_type="phone", verify_code="000000"), "ips")
    assert len(api.ips()) == 2


def test_ip_delete_with_totp(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    now = 1_750_000_000.0
    emu.clock = lambda: now
    totp = pyotp.TOTP(TOTP_SECRET)
    api.post(IP_ADD, ips="1.1.1.1,2.2.2.2,3.3.3.3", product_type=9)
    assert api.post(IP_DELETE, ips="1.1.1.1", verify_type="totp", verify_code=totp.at(now)).json() == OK
    # One step either side is accepted (valid_window=1); codes are not single-use.
    assert api.post(IP_DELETE, ips="2.2.2.2", verify_type="totp", verify_code=totp.at(now - 30)).json() == OK
    assert api.post(IP_DELETE, ips="2.2.2.2", verify_type="totp", verify_code=totp.at(now + 30)).json() == OK
    for stale in (totp.at(now - 90), totp.at(now + 90), SANDBOX_VERIFY_CODE):
        if stale in {totp.at(now + d) for d in (-30, 0, 30)}:
            continue  # vanishingly unlikely collision
        param_error(api.post(IP_DELETE, ips="3.3.3.3", verify_type="totp", verify_code=stale), "verify_code")
    assert api.ips() == [("3.3.3.3", 9, "")]


def test_ip_delete_with_totp_against_the_real_clock(api: BestProxyApi) -> None:
    api.post(IP_ADD, ips="1.1.1.1", product_type=9)
    code = pyotp.TOTP(TOTP_SECRET).now()
    assert api.post(IP_DELETE, ips="1.1.1.1", verify_type="totp", verify_code=code).json() == OK


def test_ip_delete_totp_refused_without_a_secret(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    emu.totp_secret = None
    api.post(IP_ADD, ips="1.1.1.1", product_type=9)
    code = pyotp.TOTP(TOTP_SECRET).now()
    param_error(api.post(IP_DELETE, ips="1.1.1.1", verify_type="totp", verify_code=code), "verify_type")
    assert api.post(IP_DELETE, ips="1.1.1.1", verify_type="phone", verify_code="000000").json() == OK


def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        BestProxyEmulator(app_key="")
    with pytest.raises(ValueError):
        BestProxyEmulator(app_key=APP_KEY, totp_secret="not base32!")
    with pytest.raises(ValueError):
        BestProxyEmulator(app_key=APP_KEY, totp_secret="JBSWY3DP")  # 40 bits: too short for pyotp


# -- persistence ------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Any) -> None:
    with running_bestproxy(tmp_path) as srv:
        api = BestProxyApi(srv.url)
        add(api, "keep1:pass123,keep2:pass123", product_type=25, remark="备注")
        api.post(ACCOUNT_CHANGE, account="keep2", daily_limit=7, udp=1, status=0)
        api.post(IP_ADD, ips="1.1.1.1", product_type=11, user_product_id=1101, remark="r")
        before = api.accounts()
        api.close()
    assert (tmp_path / "bestproxy.sqlite").exists()
    with running_bestproxy(tmp_path) as srv:
        api = BestProxyApi(srv.url)
        after = api.accounts()
        for name, acc in before.items():
            assert {k: v for k, v in after[name].items() if k != "usage_flow"} == {
                k: v for k, v in acc.items() if k != "usage_flow"
            }
            assert after[name]["usage_flow"] > acc["usage_flow"]  # persisted, and still moving
        assert api.ips() == [("1.1.1.1", 11, "r")]
        emu = srv.emulator
        assert isinstance(emu, BestProxyEmulator)
        rec = emu.account_record("keep2")
        assert rec is not None and (rec["daily_limit"], rec["udp"], rec["status"]) == (7, 1, 0)
        # ids keep counting after a restart
        add(api, "keep3:pass123")
        assert api.accounts()["keep3"]["id"] > max(a["id"] for a in before.values())
        api.close()


def test_wipe_empties_the_account(api: BestProxyApi, emu: BestProxyEmulator) -> None:
    add(api, "w1:pass123")
    api.post(IP_ADD, ips="1.1.1.1", product_type=9)
    emu.wipe()
    assert api.accounts() == {} and api.ips() == []


# -- fault knobs ------------------------------------------------------------------------------


def test_fail_next_injects_500_in_the_envelope_and_skips_the_write(api: BestProxyApi) -> None:
    api.faults(fail_next=2)
    r = add(api, "f1:pass123")
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"code", "msg", "data"} and body["code"] == 500 and body["data"] is None
    assert api.get(LIST).status_code == 500  # reads are failed too
    assert api.accounts() == {}
    assert add(api, "f1:pass123").json() == OK
    assert set(api.accounts()) == {"f1"}


def test_error_rate_one_fails_everything(api: BestProxyApi) -> None:
    api.faults(error_rate=1.0)
    assert api.get(IP_LIST).status_code == 500
    assert api.post(IP_ADD, ips="1.1.1.1", product_type=9).status_code == 500
    api.faults(error_rate=0.0)
    assert api.ips() == []


def test_drop_next_writes_applies_the_write_but_loses_the_reply(api: BestProxyApi) -> None:
    api.faults(drop_next_writes=2)
    # GETs are not writes: their replies are not dropped and do not use up the knob.
    assert api.accounts() == {}
    with pytest.raises(httpx.TransportError):
        add(api, "lost1:pass123")
    with pytest.raises(httpx.TransportError):
        api.post(IP_ADD, ips="1.1.1.1", product_type=9)
    assert set(api.accounts()) == {"lost1"}
    assert api.ips() == [("1.1.1.1", 9, "")]
    # A blind retry of the add is refused: the account exists (resolve by reading first).
    param_error(add(api, "lost1:pass123"), "accounts")
    assert api.faults()["drop_next_writes"] == 0

"""Every request/response example of the BestProxy OpenAPI seed that the emulator serves, replayed
against it with plain httpx (not our client), in the emulator's documented answers (default knobs).

The examples are schema renderings: their responses say ``"msg": "string"`` and their requests use
placeholders. The replay therefore sends each example body verbatim except for these substitutions,
each forced by the document itself:

- ``app_key`` is the emulator's key (the example's is a placeholder);
- ``/gateway/proxy-ip/delete``: ``"verify_type": "string"`` becomes ``email`` with the sandbox code
  (the document lists phone, email, wechat and totp);
- ``/gateway/proxy-account/change``: the account ``string`` is first added (the example changes
  an existing account); it is added as the document's add example does, with product type 9.

``/gateway/proxy-ip/add`` is sent verbatim (``product_type`` is "Required: No"; its 0 is the
value the list example shows) and so is ``/gateway/proxy-account/change`` (``udp: 0`` on a type 9
account: switching UDP off is accepted whatever the type).

Each answer is compared to the example's *shape*: the same keys at every level, ``code`` 200, the
same JSON types, and ``data: null`` where the example has it.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.bestproxy.emulator_fixtures import APP_KEY, SANDBOX_VERIFY_CODE, BestProxyApi, running_bestproxy

OK_EXAMPLE = {"code": 200, "msg": "string", "data": None}
LIST_EXAMPLE = json.loads("""{
  "code": 200, "msg": "string",
  "data": {"list": [{"id": 0, "username": "string", "password": "string", "created_at": "string",
                      "remark": "string", "product_type": 9, "usage_flow": 0, "limit_flow": 102400, "status": 0}]}
}""")
IP_LIST_EXAMPLE = json.loads("""{
  "code": 200, "msg": "string",
  "data": {"list": [{"ip": "1.1.1.1", "remark": "string", "product_type": 0, "created_at": "string"}]}
}""")
PLACEHOLDER_KEY = "stringstringstringstringstringst"

# (path, the example body verbatim)
WRITES = [
    (
        "/gateway/whitelist-account/add",
        {"app_key": PLACEHOLDER_KEY, "accounts": "user01:pass,user02:pass,user03:pass", "remark": "", "product_type": 9},
    ),
    ("/gateway/whitelist-account/disable", {"app_key": PLACEHOLDER_KEY, "accounts": "user01,user02"}),
    ("/gateway/whitelist-account/enable", {"app_key": PLACEHOLDER_KEY, "accounts": "user01,user02"}),
    ("/gateway/whitelist-account/delete", {"app_key": PLACEHOLDER_KEY, "accounts": "user01,user02"}),
]
USER_WRITES = [
    ("/gateway/whitelist-account/change-password", {"app_key": PLACEHOLDER_KEY, "account": "user", "password": "pass"}),
    ("/gateway/whitelist-account/change-remark", {"app_key": PLACEHOLDER_KEY, "account": "user", "remark": ""}),
    ("/gateway/whitelist-account/change-limit", {"app_key": PLACEHOLDER_KEY, "account": "user", "limit": 0}),
]
ACCOUNT_CHANGE = {
    "app_key": "string",
    "account": "string",
    "password": "string",
    "remark": "string",
    "limit": 0,
    "daily_limit": 0,
    "status": 0,
    "udp": 0,
}
IP_ADD = {"app_key": "string", "ips": "1.1.1.1,2.2.2.2", "remark": "string", "product_type": 0, "user_product_id": 0}
IP_DELETE = {"app_key": "string", "ips": "1.1.1.1,2.2.2.2", "verify_type": "string", "verify_code": "string"}


def same_shape(answer: Any, example: Any) -> None:
    if isinstance(example, dict):
        assert isinstance(answer, dict) and set(answer) == set(example), (answer, example)
        for key in example:
            same_shape(answer[key], example[key])
    elif isinstance(example, list):
        assert isinstance(answer, list) and answer, answer
        for item in answer:
            same_shape(item, example[0])
    elif example is None:
        assert answer is None
    else:
        assert type(answer) is type(example), (answer, example)


@pytest.fixture
def fresh_bestproxy_api() -> Iterator[BestProxyApi]:
    with running_bestproxy() as srv:
        client = BestProxyApi(srv.url)
        yield client
        client.close()


def send(fresh_bestproxy_api: BestProxyApi, path: str, body: dict[str, Any]) -> Any:
    answer = fresh_bestproxy_api.http.post(path, json={**body, "app_key": APP_KEY}).json()
    assert answer["code"] == 200, (path, answer)
    return answer


def test_account_examples_replay(fresh_bestproxy_api: BestProxyApi) -> None:
    for path, body in WRITES:
        same_shape(send(fresh_bestproxy_api, path, body), OK_EXAMPLE)
    assert set(fresh_bestproxy_api.accounts()) == {"user03"}  # add (4-character passwords: no length on add), delete
    fresh_bestproxy_api.http.post(
        "/gateway/whitelist-account/add", json={"app_key": APP_KEY, "accounts": "user:pass1", "product_type": 9}
    )
    for path, body in USER_WRITES:
        same_shape(send(fresh_bestproxy_api, path, body), OK_EXAMPLE)
    listed = fresh_bestproxy_api.get("/gateway/whitelist-account/list").json()
    same_shape(listed, LIST_EXAMPLE)
    user = fresh_bestproxy_api.accounts()["user"]
    assert (user["password"], user["remark"], user["limit_flow"]) == ("pass", "", 0)


@pytest.mark.parametrize("product_type", [9, 14])
def test_proxy_account_change_example_replays(fresh_bestproxy_api: BestProxyApi, product_type: int) -> None:
    send(fresh_bestproxy_api, "/gateway/whitelist-account/add", {"accounts": "string:string", "product_type": product_type})
    same_shape(send(fresh_bestproxy_api, "/gateway/proxy-account/change", ACCOUNT_CHANGE), OK_EXAMPLE)
    assert fresh_bestproxy_api.accounts()["string"]["status"] == 0


def test_ip_examples_replay(fresh_bestproxy_api: BestProxyApi) -> None:
    same_shape(send(fresh_bestproxy_api, "/gateway/proxy-ip/add", IP_ADD), OK_EXAMPLE)
    listed = fresh_bestproxy_api.get("/gateway/proxy-ip/list").json()
    same_shape(listed, IP_LIST_EXAMPLE)
    assert sorted((e["ip"], e["product_type"]) for e in listed["data"]["list"]) == [("1.1.1.1", 0), ("2.2.2.2", 0)]
    delete = {**IP_DELETE, "verify_type": "email", "verify_code": SANDBOX_VERIFY_CODE}
    same_shape(send(fresh_bestproxy_api, "/gateway/proxy-ip/delete", delete), OK_EXAMPLE)
    assert fresh_bestproxy_api.get("/gateway/proxy-ip/list").json()["data"]["list"] == []


def test_invalid_app_key_answers_code_3(fresh_bestproxy_api: BestProxyApi) -> None:
    """The document's failure code for a wrong key (all account endpoints list it)."""
    answer = fresh_bestproxy_api.http.post("/gateway/whitelist-account/add", json=WRITES[0][1]).json()
    assert answer["code"] == 3

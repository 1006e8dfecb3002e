"""BestProxy client: typed errors for documented codes, both envelopes, batching, retries."""

from __future__ import annotations

import httpx
import pytest

from reconciler.vendors.bestproxy.client import (
    BestProxyAccountNotVerified,
    BestProxyClient,
    BestProxyError,
    BestProxyHttpError,
    BestProxyInvalidAppKey,
    BestProxyParameterError,
    parse_envelope,
)
from reconciler.clients.http import RetryPolicy
from reconciler.errors import TransportError
from tests.bestproxy.conftest import APP_KEY, Workspace

FAST = RetryPolicy(attempts=3, wait_initial=0, wait_max=0, wait_jitter=0)


@pytest.fixture
def bestproxy_client(bestproxy_ws: Workspace):
    c = BestProxyClient(bestproxy_ws.url, app_key=APP_KEY, retry=FAST)
    yield c
    c.close()


def test_both_success_envelopes() -> None:
    assert parse_envelope("/x", 200, {"code": 200, "msg": "ok", "data": {"list": []}}) == {"list": []}
    assert parse_envelope("/x", 200, {"code": 0, "message": "Operation successful", "data": [1]}) == [1]


def test_documented_codes_are_typed(bestproxy_ws: Workspace, bestproxy_client: BestProxyClient) -> None:
    with pytest.raises(BestProxyInvalidAppKey) as e:
        BestProxyClient(bestproxy_ws.url, app_key="nope", retry=FAST).list_accounts()
    assert e.value.code == 3
    bestproxy_ws.emulator.verified = False
    with pytest.raises(BestProxyAccountNotVerified) as e2:
        bestproxy_client.add_accounts([("abc1", "Passw0rd1")], product_type=9)
    assert e2.value.code == 156
    bestproxy_ws.emulator.verified = True
    with pytest.raises(BestProxyParameterError) as e3:
        bestproxy_client.change_account("missing1", remark="x")
    assert e3.value.code == 400 and "Parameter error" in str(e3.value)


def test_errors_from_answers_name_vendor_host_operation_and_cause(
    bestproxy_ws: Workspace, bestproxy_client: BestProxyClient
) -> None:
    host = bestproxy_ws.url.removeprefix("http://")  # host:port, never the URL or the query (app_key)
    wrong = BestProxyClient(bestproxy_ws.url, app_key="WrongKey1234", retry=FAST)
    with pytest.raises(BestProxyInvalidAppKey) as e:
        wrong.list_accounts()
    wrong.close()
    assert str(e.value) == f"bestproxy: {host}: GET /gateway/whitelist-account/list: code 3: invalid app_key"
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"fail_next": 1})  # an HTTP 500 envelope to a write
    with pytest.raises(BestProxyError) as e2:
        bestproxy_client.add_accounts([("abc1", "Passw0rd1")], product_type=9)
    assert str(e2.value) == (
        f"bestproxy: {host}: POST /gateway/whitelist-account/add: code 500 HTTP 500: Internal server error (injected fault)"
    )
    with pytest.raises(BestProxyHttpError) as e3:
        parse_envelope("GET /gateway/whitelist-account/list", 502, "<html>bad gateway</html>", host="gw.example:443")
    assert str(e3.value) == "bestproxy: gw.example:443: GET /gateway/whitelist-account/list: HTTP 502: unexpected answer shape"


def test_parameter_error_never_echoes_rejected_accounts(bestproxy_client: BestProxyClient) -> None:
    bestproxy_client.add_accounts([("abc1", "Passw0rd1")], product_type=9)
    with pytest.raises(BestProxyError) as e:
        bestproxy_client.add_accounts([("abc1", "Secret99x")], product_type=9)
    assert "Secret99x" not in str(e.value)


def test_reads_are_retried_after_a_server_error(bestproxy_ws: Workspace, bestproxy_client: BestProxyClient) -> None:
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"fail_next": 2})
    assert bestproxy_client.list_accounts() == []
    assert bestproxy_client.http.request_counts["GET /gateway/whitelist-account/list"] == 3


def test_add_is_not_retried_blindly_after_a_lost_reply(bestproxy_ws: Workspace, bestproxy_client: BestProxyClient) -> None:
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"drop_next_writes": 1})
    with pytest.raises(TransportError):
        bestproxy_client.add_accounts([("abc2", "Passw0rd1")], product_type=9)
    assert bestproxy_client.http.request_counts["POST /gateway/whitelist-account/add"] == 1
    assert [a.username for a in bestproxy_client.list_accounts()] == ["abc2"]


def test_batched_enable_disable_delete(bestproxy_client: BestProxyClient) -> None:
    bestproxy_client.add_accounts([(f"u{i}", "Passw0rd1") for i in range(5)], product_type=14, remark="r")
    bestproxy_client.disable_accounts(["u1", "u2"])
    assert {a.username: a.enabled for a in bestproxy_client.list_accounts()}["u2"] is False
    bestproxy_client.enable_accounts(["u1", "u2"])
    bestproxy_client.delete_accounts(["u0", "u1"])
    assert sorted(a.username for a in bestproxy_client.list_accounts()) == ["u2", "u3", "u4"]
    assert bestproxy_client.http.request_counts["POST /gateway/whitelist-account/delete"] == 1

"""Unknown means unknown (BestProxy): a write answered 200 with a body cut short or not JSON is an
unknown outcome, settled by reading back in the same run — never reported FAILED for a write that
happened, never made twice; a read answered so is asked again. The emulator's ``mangle_replies``
knob cuts the body (``cut``) or replaces it with an HTML page (``not_json``) after handling the
request (docs/resilient-apply.md, "Writes whose reply is lost or unreadable")."""

from __future__ import annotations

import httpx
import pytest

from tests.engine.conftest import Workspace, account_doc, accounts_file

HOW = ["cut", "not_json"]
SCOPE = """
apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: game-accounts}
spec:
  target: ProxyAccount
  match: {usernamePrefix: game}
"""
ALLOWLIST = """
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: dc}
spec:
  productType: 14
  exclusive: true
  entries:
"""


def mangle(ws: Workspace, how: str, match: str, count: int = 1) -> None:
    httpx.post(
        ws.url + "/_sandbox/faults", json={"mangle_replies": [{"how": how, "count": count, "match": match}]}
    ).raise_for_status()


def apply_ok(ws: Workspace, *flags: str) -> str:
    res = ws.cli("apply", "--auto-approve", *flags)
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout and ws.emulator.faults.mangle_replies == []  # the fault did fire
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0
    return res.stdout


@pytest.mark.parametrize("how", HOW)
def test_an_account_add_answered_unreadably_is_read_back_and_not_repeated(bp: Workspace, how: str) -> None:
    accounts_file(bp, ["game01", "game02"], remark="r")
    mangle(bp, how, "/gateway/whitelist-account/add")
    out = apply_ok(bp)
    assert "ok      create ProxyAccount/game01" in out and "ok      create ProxyAccount/game02" in out
    assert sorted(bp.accounts()) == ["game01", "game02"]
    assert bp.stats()["POST /gateway/whitelist-account/add"] == 1  # the read-back found them: no second add


@pytest.mark.parametrize("how", HOW)
def test_an_account_change_answered_unreadably_is_settled(bp: Workspace, how: str) -> None:
    accounts_file(bp, ["game01"], trafficLimitGb=3)
    apply_ok(bp)
    accounts_file(bp, ["game01"], remark="moved", trafficLimitGb=4)
    mangle(bp, how, "/gateway/proxy-account/change")
    out = apply_ok(bp)
    assert "ok      update ProxyAccount/game01" in out
    assert (bp.accounts()["game01"]["remark"], bp.accounts()["game01"]["limit_flow"]) == ("moved", 4)


@pytest.mark.parametrize("how", HOW)
def test_an_account_delete_and_disable_answered_unreadably_are_settled(bp: Workspace, how: str) -> None:
    accounts_file(bp, ["game01", "game02"])
    bp.write("manifests/scope.yaml", SCOPE)
    apply_ok(bp)
    bp.write("manifests/accounts.yaml", account_doc("game01", enabled=False))
    mangle(bp, how, "/gateway/whitelist-account/delete")
    httpx.post(
        bp.url + "/_sandbox/faults",
        json={
            "mangle_replies": [
                {"how": how, "count": 1, "match": "/gateway/whitelist-account/delete"},
                {"how": how, "count": 1, "match": "/gateway/whitelist-account/disable"},
            ]
        },
    ).raise_for_status()
    out = apply_ok(bp, "--force")
    assert "ok      delete ProxyAccount/game02" in out and "ok      update ProxyAccount/game01" in out
    assert {n: a["status"] for n, a in bp.accounts().items()} == {"game01": 0}


@pytest.mark.parametrize("how", HOW)
def test_ip_add_and_delete_answered_unreadably_are_settled(bp: Workspace, how: str) -> None:
    bp.write("manifests/ips.yaml", ALLOWLIST + "    - 10.0.0.1\n    - 10.0.0.2\n")
    mangle(bp, how, "/gateway/proxy-ip/add")
    apply_ok(bp)
    assert bp.ips(14) == {"10.0.0.1": "", "10.0.0.2": ""}
    assert bp.stats()["POST /gateway/proxy-ip/add"] == 1
    bp.write("manifests/ips.yaml", ALLOWLIST + "    - 10.0.0.2\n")
    mangle(bp, how, "/gateway/proxy-ip/delete")
    apply_ok(bp, "--force")
    assert bp.ips(14) == {"10.0.0.2": ""}


@pytest.mark.parametrize("how", HOW)
def test_a_refusal_answered_unreadably_fails_truthfully_after_reading_back(bp: Workspace, how: str) -> None:
    """The add was refused (code 156) but its answer could not be read: reading back shows it did
    not happen, it is sent again, and the readable refusal is what the run reports."""
    accounts_file(bp, ["game01"])
    bp.emulator.verified = False
    mangle(bp, how, "/gateway/whitelist-account/add")
    res = bp.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "FAILED  create ProxyAccount/game01" in res.stdout and "code 156" in res.stdout
    assert bp.accounts() == {} and bp.stats()["POST /gateway/whitelist-account/add"] == 2


@pytest.mark.parametrize("how", HOW)
def test_a_list_answered_unreadably_is_asked_again(bp: Workspace, how: str) -> None:
    accounts_file(bp, ["game01"])
    mangle(bp, how, "/gateway/whitelist-account/list", count=2)
    res = bp.cli("plan")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "Plan: 1 to create" in res.stdout
    assert bp.stats()["GET /gateway/whitelist-account/list"] == 3


def test_the_knob_is_checked(bp: Workspace) -> None:
    for bad in ([{"how": "garble"}], [{"how": "cut", "count": -1}], {"how": "cut"}, [{"how": "cut", "path": "/x"}]):
        r = httpx.post(bp.url + "/_sandbox/faults", json={"mangle_replies": bad})
        assert r.status_code == 400, bad

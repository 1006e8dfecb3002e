"""Plan, apply, re-plan empty; drift through the emulator's own API; batching; write-only fields."""

from __future__ import annotations

import json

from tests.bestproxy.conftest import PASSWORD, Workspace, account_doc


def _manifests(ws: Workspace, n: int = 3, **extra: object) -> None:
    ws.write(
        "manifests/accounts.yaml", "---\n".join(account_doc(f"game{i:02d}", remark=f"player {i}", **extra) for i in range(n))
    )


def test_plan_apply_then_replan_is_empty(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws)
    bestproxy_ws.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec:
          productType: 14
          entries: [10.0.0.1, {ip: 10.0.0.2, remark: office}]
        """,
    )
    plan = bestproxy_ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert "Plan: 4 to create" in plan.stdout
    applied = bestproxy_ws.cli("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output + applied.stderr
    live = bestproxy_ws.accounts()
    assert sorted(live) == ["game00", "game01", "game02"]
    assert live["game01"]["remark"] == "player 1" and live["game01"]["password"] == PASSWORD
    assert bestproxy_ws.ips(14) == {"10.0.0.1": "", "10.0.0.2": "office"}
    again = bestproxy_ws.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout
    assert "No changes" in again.stdout and "4 unchanged" in again.stdout


def test_creates_are_batched_into_one_add_call(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws, n=25)
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    stats = bestproxy_ws.stats()
    assert stats["POST /gateway/whitelist-account/add"] == 1
    assert stats["GET /gateway/whitelist-account/list"] == 1
    assert len(bestproxy_ws.accounts()) == 25


def test_out_of_band_change_shows_as_drift_and_is_repaired(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws)
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    bestproxy_ws.api("/gateway/whitelist-account/change-remark", account="game01", remark="hijacked")
    bestproxy_ws.api("/gateway/whitelist-account/disable", accounts="game02")
    bestproxy_ws.api("/gateway/whitelist-account/change-password", account="game00", password="Other1234")
    plan = bestproxy_ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 2
    assert 'remark: "hijacked" -> "player 1"' in plan.stdout
    assert "enabled: false -> true" in plan.stdout
    assert 'password: "(sensitive)" -> "(sensitive)"' in plan.stdout
    assert "Other1234" not in plan.stdout and PASSWORD not in plan.stdout
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    live = bestproxy_ws.accounts()
    assert live["game01"]["remark"] == "player 1" and live["game02"]["status"] == 1
    assert live["game00"]["password"] == PASSWORD
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_server_owned_usage_is_not_drift(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws)
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    before = bestproxy_ws.accounts()["game00"]["usage_flow"]
    assert bestproxy_ws.accounts()["game00"]["usage_flow"] != before  # the emulator's usage counter moves
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_limits_disabled_and_udp_are_applied_on_create(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write(
        "manifests/a.yaml", account_doc("static01", productType=14, trafficLimitGb=50, dailyLimitGb=5, udp=True, enabled=False)
    )
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    live = bestproxy_ws.accounts()["static01"]
    assert live["limit_flow"] == 50 and live["status"] == 0
    record = bestproxy_ws.emulator.account_record("static01")
    assert record["daily_limit"] == 5 and record["udp"] == 1
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_product_type_change_is_a_replace_needing_opt_in(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("move01", productType=9))
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    bestproxy_ws.write("manifests/a.yaml", account_doc("move01", productType=25))
    plan = bestproxy_ws.cli("plan")
    assert "-/+ replace ProxyAccount/move01" in plan.stdout and "blocked: replacing needs --allow-replace" in plan.stdout
    refused = bestproxy_ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "--allow-replace" in refused.stderr
    assert bestproxy_ws.accounts()["move01"]["product_type"] == 9
    assert bestproxy_ws.cli("apply", "--auto-approve", "--allow-replace").exit_code == 0
    assert bestproxy_ws.accounts()["move01"]["product_type"] == 25


def test_json_plan_and_target(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws)
    out = bestproxy_ws.cli("plan", "--format", "json", "--target", "ProxyAccount/game01")
    data = json.loads(out.stdout)
    assert [c["key"] for c in data["changes"]] == ["game01"]
    assert data["changes"][0]["action"] == "create"
    assert bestproxy_ws.cli("apply", "--auto-approve", "--target", "ProxyAccount/game01").exit_code == 0
    assert list(bestproxy_ws.accounts()) == ["game01"]


def test_apply_without_terminal_needs_auto_approve(bestproxy_ws: Workspace) -> None:
    _manifests(bestproxy_ws, n=1)
    res = bestproxy_ws.cli("apply")
    assert res.exit_code == 1 and "--auto-approve" in res.stderr
    assert bestproxy_ws.accounts() == {}


def test_a_replace_inside_the_five_minute_window_is_pending_not_a_failure(bestproxy_ws: Workspace) -> None:
    """BestProxy completes a delete up to 5 minutes later (seed); the emulator holds a deleted
    username for ``settle_seconds``. The add half of a replace is then reported pending (exit 4),
    with plain creates in the same run unaffected; after the window, the next apply creates it."""
    bestproxy_ws.write("manifests/a.yaml", account_doc("move02", productType=9))
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    now = [1_900_000_000.0]
    bestproxy_ws.emulator.clock = lambda: now[0]
    bestproxy_ws.emulator.settle_seconds = 300
    bestproxy_ws.write("manifests/a.yaml", account_doc("move02", productType=25) + "---\n" + account_doc("fresh02"))
    plan = bestproxy_ws.cli("plan")
    assert "up to 5 minutes" in plan.stdout
    res = bestproxy_ws.cli("apply", "--auto-approve", "--allow-replace")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "pending: retry after 5 minutes" in res.stdout and "fresh02" in bestproxy_ws.accounts()
    assert "move02" not in bestproxy_ws.accounts()
    again = bestproxy_ws.cli("apply", "--auto-approve")
    assert again.exit_code == 4 and "retry after 5 minutes" in again.stdout  # still inside the window: a create now
    now[0] += 301
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    assert bestproxy_ws.accounts()["move02"]["product_type"] == 25
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0

"""Plan, apply, re-plan empty; drift through the emulator's own API; batching; write-only fields."""

from __future__ import annotations

import json

from tests.bestproxy.conftest import PASSWORD, Workspace, account_doc


def _manifests(ws: Workspace, n: int = 3, **extra: object) -> None:
    ws.write("manifests/accounts.yaml", "---\n".join(account_doc(f"game{i:02d}", remark=f"player {i}", **extra) for i in range(n)))


def test_plan_apply_then_replan_is_empty(bp: Workspace) -> None:
    _manifests(bp)
    bp.write("manifests/ips.yaml", """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec:
          productType: 14
          entries: [10.0.0.1, {ip: 10.0.0.2, remark: office}]
        """)
    plan = bp.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 2, plan.output
    assert "Plan: 4 to create" in plan.stdout
    applied = bp.cli("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output + applied.stderr
    live = bp.accounts()
    assert sorted(live) == ["game00", "game01", "game02"]
    assert live["game01"]["remark"] == "player 1" and live["game01"]["password"] == PASSWORD
    assert bp.ips(14) == {"10.0.0.1": "", "10.0.0.2": "office"}
    again = bp.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout
    assert "No changes" in again.stdout and "4 unchanged" in again.stdout


def test_creates_are_batched_into_one_add_call(bp: Workspace) -> None:
    _manifests(bp, n=25)
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    stats = bp.stats()
    assert stats["POST /gateway/whitelist-account/add"] == 1
    assert stats["GET /gateway/whitelist-account/list"] == 1
    assert len(bp.accounts()) == 25


def test_out_of_band_change_shows_as_drift_and_is_repaired(bp: Workspace) -> None:
    _manifests(bp)
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    bp.api("/gateway/whitelist-account/change-remark", account="game01", remark="hijacked")
    bp.api("/gateway/whitelist-account/disable", accounts="game02")
    bp.api("/gateway/whitelist-account/change-password", account="game00", password="Other1234")
    plan = bp.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 2
    assert 'remark: "hijacked" -> "player 1"' in plan.stdout
    assert "enabled: false -> true" in plan.stdout
    assert 'password: "(sensitive)" -> "(sensitive)"' in plan.stdout
    assert "Other1234" not in plan.stdout and PASSWORD not in plan.stdout
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    live = bp.accounts()
    assert live["game01"]["remark"] == "player 1" and live["game02"]["status"] == 1
    assert live["game00"]["password"] == PASSWORD
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


def test_server_owned_usage_is_not_drift(bp: Workspace) -> None:
    _manifests(bp)
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    before = bp.accounts()["game00"]["usage_flow"]
    assert bp.accounts()["game00"]["usage_flow"] != before  # the emulator's usage counter moves
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


def test_limits_disabled_and_udp_are_applied_on_create(bp: Workspace) -> None:
    bp.write("manifests/a.yaml", account_doc("static01", productType=14, trafficLimitGb=50, dailyLimitGb=5, udp=True, enabled=False))
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    live = bp.accounts()["static01"]
    assert live["limit_flow"] == 50 and live["status"] == 0
    record = bp.emulator.account_record("static01")
    assert record["daily_limit"] == 5 and record["udp"] == 1
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


def test_product_type_change_is_a_replace_needing_opt_in(bp: Workspace) -> None:
    bp.write("manifests/a.yaml", account_doc("move01", productType=9))
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    bp.write("manifests/a.yaml", account_doc("move01", productType=25))
    plan = bp.cli("plan")
    assert "-/+ replace ProxyAccount/move01" in plan.stdout and "blocked: replacing needs --allow-replace" in plan.stdout
    refused = bp.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "--allow-replace" in refused.stderr
    assert bp.accounts()["move01"]["product_type"] == 9
    assert bp.cli("apply", "--auto-approve", "--allow-replace").exit_code == 0
    assert bp.accounts()["move01"]["product_type"] == 25


def test_json_plan_and_target(bp: Workspace) -> None:
    _manifests(bp)
    out = bp.cli("plan", "--format", "json", "--target", "ProxyAccount/game01")
    data = json.loads(out.stdout)
    assert [c["key"] for c in data["changes"]] == ["game01"]
    assert data["changes"][0]["action"] == "create"
    assert bp.cli("apply", "--auto-approve", "--target", "ProxyAccount/game01").exit_code == 0
    assert list(bp.accounts()) == ["game01"]


def test_apply_without_terminal_needs_auto_approve(bp: Workspace) -> None:
    _manifests(bp, n=1)
    res = bp.cli("apply")
    assert res.exit_code == 1 and "--auto-approve" in res.stderr
    assert bp.accounts() == {}


def test_a_replace_inside_the_five_minute_window_is_pending_not_a_failure(bp: Workspace) -> None:
    """BestProxy completes a delete up to 5 minutes later (seed); the emulator holds a deleted
    username for ``settle_seconds``. The add half of a replace is then reported pending (exit 4),
    with plain creates in the same run unaffected; after the window, the next apply creates it."""
    bp.write("manifests/a.yaml", account_doc("move02", productType=9))
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    now = [1_900_000_000.0]
    bp.emulator.clock = lambda: now[0]
    bp.emulator.settle_seconds = 300
    bp.write("manifests/a.yaml", account_doc("move02", productType=25) + "---\n" + account_doc("fresh02"))
    plan = bp.cli("plan")
    assert "up to 5 minutes" in plan.stdout
    res = bp.cli("apply", "--auto-approve", "--allow-replace")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "pending: retry after 5 minutes" in res.stdout and "fresh02" in bp.accounts()
    assert "move02" not in bp.accounts()
    again = bp.cli("apply", "--auto-approve")
    assert again.exit_code == 4 and "retry after 5 minutes" in again.stdout  # still inside the window: a create now
    now[0] += 301
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    assert bp.accounts()["move02"]["product_type"] == 25
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0

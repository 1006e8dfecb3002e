"""Prune only inside declared scopes; thresholds need --force; protected resources are kept;
IP allowlist element-level diffs, remark replacement and verified removal."""

from __future__ import annotations

import httpx

from tests.bestproxy.conftest import Workspace, account_doc

SCOPE = """
apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: game-accounts}
spec:
  target: ProxyAccount
  match: {usernamePrefix: game}
  protect: [gamekeep]
"""


def _seed(ws: Workspace, names: list[str]) -> None:
    ws.api("/gateway/whitelist-account/add", accounts=",".join(f"{n}:Seeded123" for n in names), product_type=9, remark="")


def test_prune_deletes_only_inside_scope_and_spares_protected(bestproxy_ws: Workspace) -> None:
    _seed(bestproxy_ws, ["game01", "game02", "gamekeep", "ops01"])
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01") + "---\n" + SCOPE)
    plan = bestproxy_ws.cli("plan")
    assert "- delete ProxyAccount/game02" in plan.stdout
    assert "ProxyAccount/ops01: not declared; outside every prune scope" in plan.stdout
    assert "ProxyAccount/gamekeep: protected by PruneScope/game-accounts" in plan.stdout
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stderr
    assert sorted(bestproxy_ws.accounts()) == ["game01", "gamekeep", "ops01"]


def test_without_scope_nothing_is_deleted(bestproxy_ws: Workspace) -> None:
    _seed(bestproxy_ws, ["game01", "game02"])
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    assert sorted(bestproxy_ws.accounts()) == ["game01", "game02"]


def test_threshold_needs_force(bestproxy_ws: Workspace) -> None:
    names = [f"game{i:02d}" for i in range(12)]
    _seed(bestproxy_ws, names)
    # declare 2 of 12: 10 deletions of 12 existing objects in scope (83% > 30%)
    bestproxy_ws.write(
        "manifests/a.yaml",
        account_doc("game00", password="file:secrets/seeded")
        + "---\n"
        + account_doc("game01", password="file:secrets/seeded")
        + "---\n"
        + SCOPE.replace("  protect: [gamekeep]\n", ""),
    )
    bestproxy_ws.write("manifests/secrets/seeded", "Seeded123")
    plan = bestproxy_ws.cli("plan")
    assert "unsafe: ProxyAccount: 10 of 12 existing objects" in plan.stdout
    refused = bestproxy_ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert len(bestproxy_ws.accounts()) == 12
    forced = bestproxy_ws.cli("apply", "--auto-approve", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert sorted(bestproxy_ws.accounts()) == ["game00", "game01"]


def test_below_minimum_existing_no_threshold(bestproxy_ws: Workspace) -> None:
    _seed(bestproxy_ws, ["game01", "game02", "game03"])
    bestproxy_ws.write("manifests/a.yaml", SCOPE)
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    assert bestproxy_ws.accounts() == {}


def test_protected_resource_is_never_replaced(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("vip01"))
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    doc = account_doc("vip01", productType=25).replace("metadata:\n  name: vip01", "metadata:\n  name: vip01\n  protected: true")
    bestproxy_ws.write("manifests/a.yaml", doc)
    res = bestproxy_ws.cli("apply", "--auto-approve", "--allow-replace")
    assert res.exit_code == 1 and "metadata.protected" in res.stderr
    assert bestproxy_ws.accounts()["vip01"]["product_type"] == 9


ALLOWLIST = """
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: dc}
spec:
  productType: 14
  exclusive: EXCL
  entries:
ENTRIES
"""


def _allowlist(ws: Workspace, entries: list[str], exclusive: bool = True) -> None:
    body = ALLOWLIST.replace("EXCL", str(exclusive).lower()).replace("ENTRIES", "\n".join(f"    - {e}" for e in entries))
    ws.write("manifests/ips.yaml", body)


def test_allowlist_element_diff_batched_add_and_verified_removal(bestproxy_ws: Workspace) -> None:
    live = [f"10.1.{i // 250}.{i % 250}" for i in range(2000)]
    bestproxy_ws.api("/gateway/proxy-ip/add", ips=",".join(live), product_type=14, remark="")
    desired = live[1:] + ["10.9.0.1", "10.9.0.2", "10.9.0.3"]
    _allowlist(bestproxy_ws, desired)
    httpx.post(bestproxy_ws.url + "/_sandbox/stats/reset")
    plan = bestproxy_ws.cli("plan")
    assert "+3 -1 ~0 of 2,000" in plan.stdout
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    stats = bestproxy_ws.stats()
    assert stats["POST /gateway/proxy-ip/add"] == 1
    assert stats["POST /gateway/proxy-ip/delete"] == 1
    assert set(bestproxy_ws.ips(14)) == set(desired)
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_remark_change_is_a_replace_of_that_entry(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.api("/gateway/proxy-ip/add", ips="10.0.0.1,10.0.0.2", product_type=14, remark="old")
    _allowlist(bestproxy_ws, ["{ip: 10.0.0.1, remark: new}", "{ip: 10.0.0.2, remark: old}"])
    plan = bestproxy_ws.cli("plan")
    assert "~1 of 2" in plan.stdout and "replaced (delete + add)" in plan.stdout
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    assert bestproxy_ws.ips(14) == {"10.0.0.1": "new", "10.0.0.2": "old"}


def test_non_exclusive_allowlist_leaves_undeclared_addresses(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.api("/gateway/proxy-ip/add", ips="10.0.0.7", product_type=14, remark="")
    _allowlist(bestproxy_ws, ["10.0.0.1"], exclusive=False)
    plan = bestproxy_ws.cli("plan")
    assert "IpAllowlist/14/10.0.0.7: address not declared" in plan.stdout
    assert bestproxy_ws.cli("apply", "--auto-approve").exit_code == 0
    assert set(bestproxy_ws.ips(14)) == {"10.0.0.1", "10.0.0.7"}


def test_lost_reply_on_create_does_not_duplicate_or_fail(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"drop_next_writes": 1})
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert list(bestproxy_ws.accounts()) == ["game01"]
    assert bestproxy_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_api_error_on_read_is_one_line_without_traceback(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"error_rate": 1.0})
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 1  # the plan's own read fails: an API error, nothing applied
    assert "bestproxy" in res.stderr and "Traceback" not in res.stderr


def test_failed_writes_give_a_partial_apply_with_what_succeeded_listed(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    _allowlist(bestproxy_ws, ["10.0.0.1"])
    bestproxy_ws.emulator.verified = False  # BestProxy answers code 156 to account writes
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    host = bestproxy_ws.url.removeprefix("http://")
    assert f"FAILED  create ProxyAccount/game01: bestproxy: {host}: POST /gateway/whitelist-account/add: code 156" in res.stdout
    assert "ok      create IpAllowlist/14" in res.stdout
    assert bestproxy_ws.ips(14) == {"10.0.0.1": ""} and bestproxy_ws.accounts() == {}

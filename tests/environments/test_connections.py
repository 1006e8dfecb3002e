"""Named connections: several accounts per vendor in one run. Two full sets of emulators (two
BestProxy accounts, two TcaplusDB zones, two JDB agents' platforms) are served at once; the same
identity on two connections is two objects; prune scopes and thresholds are per connection."""

from __future__ import annotations

import json

import yaml

from tests.environments.support import PASSWORDS, Fleet, write_docs, write_estate
from tests.support import nothing_to_apply


def test_one_run_plans_and_applies_across_two_connections_per_vendor(fleet: Fleet) -> None:
    write_estate(fleet)
    planned = fleet.cli("plan")
    assert planned.exit_code == 0, planned.output
    out = planned.stdout
    assert "Plan: 8 to create" in out
    assert "connections: bestproxy/brand-b, bestproxy/default, jdb/brand-b, jdb/default" in out
    assert "+ create ProxyAccount/ops01  " in out and "+ create ProxyAccount/ops01@brand-b  " in out

    applied = fleet.cli("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    a, b = fleet.accounts(fleet.a), fleet.accounts(fleet.b)
    assert sorted(a) == sorted(b) == ["ops01", "qa01"]  # the same username in two accounts: two objects
    assert a["ops01"]["password"] == PASSWORDS["default"] and b["ops01"]["password"] == PASSWORDS["brand-b"]
    assert a["ops01"]["remark"] == "a" and b["ops01"]["remark"] == "brand-b"
    assert fleet.records(fleet.a)[1001]["name"] == "potion a" and fleet.records(fleet.b)[1001]["name"] == "potion brand-b"
    assert fleet.events(fleet.a) == ["Launch a"] and fleet.events(fleet.b) == ["Launch brand-b"]

    again = fleet.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert nothing_to_apply(again.stdout) and "8 unchanged" in again.stdout


def test_a_change_on_one_connection_touches_only_that_connection(fleet: Fleet) -> None:
    write_estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    docs = [d for d in yaml.safe_load_all((fleet.root / "manifests/estate.yaml").read_text())]
    for d in docs:
        if d["metadata"].get("name") == "ops-brand-b":
            d["spec"]["remark"] = "edited"
    write_docs(fleet, "manifests/estate.yaml", docs)
    planned = fleet.cli("plan", "--out", "plan.json")
    assert "~ update ProxyAccount/ops01@brand-b" in planned.stdout and "Plan: 0 to create, 1 to update" in planned.stdout
    saved = json.loads((fleet.root / "plan.json").read_text())
    assert [(c["key"], c["connection"]) for c in saved["changes"]] == [("ops01", "brand-b")]
    applied = fleet.cli("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert fleet.accounts(fleet.b)["ops01"]["remark"] == "edited" and fleet.accounts(fleet.a)["ops01"]["remark"] == "a"


def test_prune_scopes_are_per_connection(fleet: Fleet) -> None:
    write_estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    docs = [
        d for d in yaml.safe_load_all((fleet.root / "manifests/estate.yaml").read_text()) if d["metadata"]["name"] != "qa-brand-b"
    ]  # qa01 leaves brand-b only
    docs.append(
        {
            "apiVersion": "reconciler/v1",
            "kind": "PruneScope",
            "metadata": {"name": "b-accounts", "connection": "brand-b"},
            "spec": {"target": "ProxyAccount", "match": {"usernamePrefix": "qa"}},
        }
    )
    write_docs(fleet, "manifests/estate.yaml", docs)
    planned = fleet.cli("plan")
    deletes = [line.split()[2] for line in planned.stdout.splitlines() if line.startswith("- delete")]
    assert deletes == ["ProxyAccount/qa01@brand-b"]  # the scope is brand-b's: nothing pruned on default
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    assert sorted(fleet.accounts(fleet.b)) == ["ops01"] and sorted(fleet.accounts(fleet.a)) == ["ops01", "qa01"]


def test_thresholds_are_counted_per_connection(fleet: Fleet) -> None:
    write_estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    docs = list(yaml.safe_load_all((fleet.root / "manifests/estate.yaml").read_text()))
    for d in docs:
        if d["kind"] == "ProxyAccount" and d["metadata"].get("connection") == "brand-b":
            d["spec"]["remark"] = "bulk edit"
    write_docs(fleet, "manifests/estate.yaml", docs)
    # 2 of the 2 accounts on brand-b (100% > 50%); counted over both connections it would be 2 of 4
    planned = fleet.cli("plan")
    assert (
        "unsafe: ProxyAccount@brand-b: 2 of 2 existing objects would be updated, replaced or deleted (100% > 50%)"
    ) in planned.stdout, planned.stdout
    refused = fleet.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "safety thresholds" in refused.stderr
    assert {a["remark"] for a in fleet.accounts(fleet.b).values()} == {"brand-b"}
    assert fleet.cli("apply", "--auto-approve", "--force").exit_code == 0
    assert {a["remark"] for a in fleet.accounts(fleet.b).values()} == {"bulk edit"}
    assert {a["remark"] for a in fleet.accounts(fleet.a).values()} == {"a"}


def test_an_unknown_connection_is_an_input_error_at_its_line(fleet: Fleet) -> None:
    fleet.write(
        "manifests/a.yaml",
        """
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata:
          name: ops
          connection: brand-c
        spec: {username: ops01, password: file:secrets/default.txt, productType: 9}
    """,
    )
    res = fleet.cli("plan")
    assert res.exit_code == 1
    assert (
        "manifests/a.yaml:5:15: ProxyAccount/ops metadata.connection: no bestproxy connection named 'brand-c' "
        "in the config (known: default, brand-b)"
    ) in res.stderr
    assert fleet.accounts(fleet.a) == {} and fleet.accounts(fleet.b) == {}

"""Named connections: several accounts per vendor in one run. Two full sets of emulators (two
BestProxy accounts, two TcaplusDB zones, two JDB agents' platforms) are served at once; the same
identity on two connections is two objects; prune scopes and thresholds are per connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from reconciler.sandbox.serve import Sandbox
from reconciler.vendors.jdb.sandbox import SANDBOX_JDB_AGENT
from tests.support import nothing_to_apply, CliWorkspace

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"default": "PwDefault777", "brand-b": "PwBrandB888"}


class Fleet(CliWorkspace):
    """A workspace whose config has the default connections on sandbox A and the named
    connection ``brand-b`` of every vendor on sandbox B."""

    a: Sandbox
    b: Sandbox

    def accounts(self, sbx: Sandbox) -> dict[str, dict[str, Any]]:
        emu = sbx.servers["bestproxy"].emulator
        with emu.lock:
            rows = emu.db.execute("SELECT * FROM accounts").fetchall()
        return {r["username"]: dict(r) for r in rows}

    def records(self, sbx: Sandbox) -> dict[int, dict[str, Any]]:
        return {r["item_id"]: r for _, r in sbx.servers["tcaplus"].emulator.records("item_catalog")}

    def events(self, sbx: Sandbox) -> list[str]:
        emu = sbx.servers["jdb"].emulator
        with emu.lock:
            return [r[0] for r in emu.db.execute("SELECT name FROM events WHERE terminated = 0 ORDER BY name")]


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.chdir(tmp_path)
    proto = tmp_path / "tables" / "item_catalog.proto"
    proto.parent.mkdir()
    proto.write_text((ROOT / "tables" / "item_catalog.proto").read_text())
    tables = {"item_catalog": proto}
    ws = Fleet(tmp_path)
    ws.a = Sandbox(tmp_path / "state-a", tcaplus_tables=tables).start()
    ws.b = Sandbox(tmp_path / "state-b", tcaplus_tables=tables).start()
    try:
        conf_a, conf_b = ws.a.providers(), ws.b.providers()
        for conf in (conf_a, conf_b):
            conf["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
        config = {"apiVersion": "reconciler/v1", "kind": "Config", "providers": conf_a,
                  "connections": {vendor: {"brand-b": conf_b[vendor]} for vendor in ("bestproxy", "tcaplus", "jdb")},
                  "settings": {"threshold_min_existing": 2, "max_change_ratio": 0.5}}
        ws.write("reconciler.yaml", yaml.safe_dump(config, sort_keys=False))
        for conn, pw in PASSWORDS.items():
            ws.write(f"manifests/secrets/{conn}.txt", pw)
        yield ws
    finally:
        ws.a.stop()
        ws.b.stop()


def account(name: str, username: str, *, connection: str | None = None, remark: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if connection:
        meta["connection"] = connection
    return {"apiVersion": "reconciler/v1", "kind": "ProxyAccount", "metadata": meta,
            "spec": {"username": username, "password": f"file:secrets/{connection or 'default'}.txt",
                     "productType": 9, "remark": remark}}


def write_docs(ws: Fleet, rel: str, docs: list[dict[str, Any]]) -> None:
    ws.write(rel, "---\n".join(json.dumps(d) + "\n" for d in docs))


def estate(ws: Fleet, *, remark: str = "") -> None:
    """The same identities on both connections of every vendor."""
    docs: list[dict[str, Any]] = []
    for conn in (None, "brand-b"):
        suffix = f"-{conn}" if conn else ""
        docs += [account(f"ops{suffix}", "ops01", connection=conn, remark=remark or (conn or "a")),
                 account(f"qa{suffix}", "qa01", connection=conn, remark=remark or (conn or "a"))]
        meta: dict[str, Any] = {"name": f"items{suffix}", **({"connection": conn} if conn else {})}
        docs.append({"apiVersion": "reconciler/v1", "kind": "TcaplusRecords", "metadata": meta,
                     "spec": {"table": "item_catalog", "records": [
                         {"region": 1, "item_id": 1001, "name": f"potion {conn or 'a'}", "price": 50}]}})
        meta = {"name": f"launch{suffix}", **({"connection": conn} if conn else {})}
        docs.append({"apiVersion": "reconciler/v1", "kind": "FreeSpinEvent", "metadata": meta, "spec": {
            "name": f"Launch {conn or 'a'}", "agent": SANDBOX_JDB_AGENT, "startTime": "2035-06-01T00:00:00+08:00",
            "endTime": "2035-06-08T00:00:00+08:00", "machineTypes": [14077], "bet": "1", "type": "NORMAL",
            "times": 5, "players": ["player00001"]}})
    write_docs(ws, "manifests/estate.yaml", docs)


def test_one_run_plans_and_applies_across_two_connections_per_vendor(fleet: Fleet) -> None:
    estate(fleet)
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
    estate(fleet)
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
    estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    docs = [d for d in yaml.safe_load_all((fleet.root / "manifests/estate.yaml").read_text())
            if d["metadata"]["name"] != "qa-brand-b"]  # qa01 leaves brand-b only
    docs.append({"apiVersion": "reconciler/v1", "kind": "PruneScope",
                 "metadata": {"name": "b-accounts", "connection": "brand-b"},
                 "spec": {"target": "ProxyAccount", "match": {"usernamePrefix": "qa"}}})
    write_docs(fleet, "manifests/estate.yaml", docs)
    planned = fleet.cli("plan")
    deletes = [line.split()[2] for line in planned.stdout.splitlines() if line.startswith("- delete")]
    assert deletes == ["ProxyAccount/qa01@brand-b"]  # the scope is brand-b's: nothing pruned on default
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    assert sorted(fleet.accounts(fleet.b)) == ["ops01"] and sorted(fleet.accounts(fleet.a)) == ["ops01", "qa01"]



def test_thresholds_are_counted_per_connection(fleet: Fleet) -> None:
    estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    docs = list(yaml.safe_load_all((fleet.root / "manifests/estate.yaml").read_text()))
    for d in docs:
        if d["kind"] == "ProxyAccount" and d["metadata"].get("connection") == "brand-b":
            d["spec"]["remark"] = "bulk edit"
    write_docs(fleet, "manifests/estate.yaml", docs)
    # 2 of the 2 accounts on brand-b (100% > 50%); counted over both connections it would be 2 of 4
    planned = fleet.cli("plan")
    assert ("unsafe: ProxyAccount@brand-b: 2 of 2 existing objects would be updated, replaced or deleted "
            "(100% > 50%)") in planned.stdout, planned.stdout
    refused = fleet.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "safety thresholds" in refused.stderr
    assert {a["remark"] for a in fleet.accounts(fleet.b).values()} == {"brand-b"}
    assert fleet.cli("apply", "--auto-approve", "--force").exit_code == 0
    assert {a["remark"] for a in fleet.accounts(fleet.b).values()} == {"bulk edit"}
    assert {a["remark"] for a in fleet.accounts(fleet.a).values()} == {"a"}


def test_an_unknown_connection_is_an_input_error_at_its_line(fleet: Fleet) -> None:
    fleet.write("manifests/a.yaml", """
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata:
          name: ops
          connection: brand-c
        spec: {username: ops01, password: file:secrets/default.txt, productType: 9}
    """)
    res = fleet.cli("plan")
    assert res.exit_code == 1
    assert ("manifests/a.yaml:5:15: ProxyAccount/ops metadata.connection: no bestproxy connection named 'brand-c' "
            "in the config (known: default, brand-b)") in res.stderr
    assert fleet.accounts(fleet.a) == {} and fleet.accounts(fleet.b) == {}

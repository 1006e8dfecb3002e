"""The quickstart state (``manifests/`` applied to the sandbox) exported, planned against the same
live state (no changes), restored into a wiped sandbox (no changes; the vendors' state equal)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.export.conftest import DrWorkspace, vendor_state
from tests.support import nothing_to_apply

PASSWORDS = ("SandboxOnlyPw1", "SandboxOnlyPw2")


def _no_changes(ws: DrWorkspace, path: str, state: str | None = None) -> str:
    res = ws.run("plan", path, "--detailed-exitcode", state=state)
    assert nothing_to_apply(res.output), res.output
    return res.output


def test_export_plans_empty_and_restores_into_a_wiped_sandbox(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    before = vendor_state(dr.root / dr.state)

    res = dr.run("export", "manifests", "--out", "backup", "--secrets-dir", "backup-secrets")
    assert "Exported 2 FreeSpinEvent, 1 IpAllowlist, 2 ProxyAccount, 3 TcaplusRecords" in res.output
    # the export itself plans as unchanged against the live state it came from
    out = _no_changes(dr, "backup")
    assert "49 unchanged" in out and "0 unmanaged" in out

    # secrets: only in --secrets-dir, mode 0600, referenced as file:
    for name in ("proxy-password-demo01", "proxy-password-demo02"):
        path = dr.root / "backup-secrets" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.read_text().strip() for p in (dr.root / "backup-secrets").iterdir()) == list(PASSWORDS)
    accounts = list(yaml.safe_load_all((dr.root / "backup/bestproxy/accounts.yaml").read_text()))
    assert {a["spec"]["password"] for a in accounts} == {
        "file:../../backup-secrets/proxy-password-demo01",
        "file:../../backup-secrets/proxy-password-demo02",
    }
    written = dr.written("backup")
    for canary in [*PASSWORDS, *dr.credentials()]:
        assert canary.encode() not in written

    # wipe: a new, empty sandbox account; restore from the export alone
    fresh = ".reconciler/restored"
    dr.run("validate", "backup", state=fresh)
    res = dr.run("apply", "backup", "--auto-approve", state=fresh)
    assert " 0 failed" in res.output
    _no_changes(dr, "backup", state=fresh)
    after = vendor_state(dr.root / fresh)
    assert after == before
    assert len(after["bindings"]) == 5 and len(after["records"]) == 44 and after["accounts"][1]["udp"] == 1


def test_export_without_secrets_dir_writes_env_references_and_the_names_to_set(
    dr: DrWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    dr.run("apply", "--auto-approve")
    res = dr.run("export", "manifests", "--out", "backup")
    assert "RECONCILER_PROXY_PASSWORD_DEMO01" in res.output and "SECRETS-TO-SET.txt" in res.output
    names = [line for line in (dr.root / "backup/SECRETS-TO-SET.txt").read_text().splitlines() if not line.startswith("#")]
    assert names == ["RECONCILER_PROXY_PASSWORD_DEMO01", "RECONCILER_PROXY_PASSWORD_DEMO02"]
    accounts = list(yaml.safe_load_all((dr.root / "backup/bestproxy/accounts.yaml").read_text()))
    assert [a["spec"]["password"] for a in accounts] == [
        "env:RECONCILER_PROXY_PASSWORD_DEMO01",
        "env:RECONCILER_PROXY_PASSWORD_DEMO02",
    ]
    written = dr.written("backup") + res.output.encode()
    # --debug logs every HTTP call (a subprocess: logging is configured once per process)
    exe = Path(sys.executable).with_name("reconciler")
    debug = subprocess.run(
        [str(exe), "--debug", "export", "manifests", "--out", "backup-debug", "--sandbox", "--sandbox-state", dr.state],
        cwd=dr.root,
        capture_output=True,
        timeout=120,
    )
    assert debug.returncode == 0 and b"whitelist-account/list" in debug.stderr, debug.stderr[-2000:]
    written += dr.written("backup-debug") + debug.stdout + debug.stderr
    for canary in [*PASSWORDS, *dr.credentials()]:
        assert canary.encode() not in written
    assert not any(p.name.startswith("proxy-password") for p in dr.root.rglob("*"))
    # unset: plan names the missing variable (an input error, nothing sent)
    res = dr.run("plan", "backup", ok=(1,))
    assert "RECONCILER_PROXY_PASSWORD_DEMO01" in res.output
    monkeypatch.setenv("RECONCILER_PROXY_PASSWORD_DEMO01", PASSWORDS[0])
    monkeypatch.setenv("RECONCILER_PROXY_PASSWORD_DEMO02", PASSWORDS[1])
    _no_changes(dr, "backup")


def test_export_is_written_the_way_people_write_manifests(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    dr.run("export", "manifests", "--out", "a", "--secrets-dir", "sa")
    dr.run("export", "manifests", "--out", "b", "--secrets-dir", "sb")
    files = sorted(str(p.relative_to(dr.root / "a")) for p in (dr.root / "a").rglob("*") if p.is_file())
    assert files == [
        "bestproxy/accounts.yaml",
        "bestproxy/allowlists.yaml",
        "jdb/sandboxag/free-spins.yaml",
        "jdb/sandboxag/players/launch-week.txt",
        "jdb/sandboxag/players/vip-bonus-chips.txt",
        "prune-scopes.yaml",
        "tcaplus/data/eu-items.jsonl",
        "tcaplus/item_catalog.yaml",
        "tcaplus/server_config.yaml",
    ]
    # stable: two exports of one state are the same bytes, apart from server-owned comments
    for f in files:
        a = [ln for ln in (dr.root / "a" / f).read_text().splitlines() if "server-owned" not in ln]
        b = [
            ln
            for ln in (dr.root / "b" / f).read_text().replace("../../sb/", "../../sa/").splitlines()
            if "server-owned" not in ln
        ]
        assert a == b, f
    events = (dr.root / "a/jdb/sandboxag/free-spins.yaml").read_text()
    assert "startTime: '2035-06-01T00:00:00+08:00'" in events  # the manifest's spelling of the exact instant
    assert "server-owned, not restored: event 1000" in events and "players" in events
    assert "cannot list" in events
    players = (dr.root / "a/jdb/sandboxag/players/launch-week.txt").read_text()
    assert "cannot be read back from JDB" in players and players.splitlines()[-3:] == [
        "player00001",
        "player00002",
        "player00003",
    ]
    items = (dr.root / "a/tcaplus/item_catalog.yaml").read_text()
    assert "cannot list a table's records" in items and "RecordVersion" in items
    assert "- {region: 1, item_id: 1001, name: Healing potion, price: 50, tags: [consumable]}" in items
    assert "file: data/eu-items.jsonl" in items
    accounts = (dr.root / "a/bestproxy/accounts.yaml").read_text()
    assert "udp: true  # write-only (not returned by the API)" in accounts
    assert "usage_flow" in accounts.split("kind: ProxyAccount")[0]  # a comment, not a field
    for doc in yaml.safe_load_all(accounts):
        assert set(doc["spec"]) <= {
            "username",
            "password",
            "productType",
            "remark",
            "trafficLimitGb",
            "dailyLimitGb",
            "udp",
            "enabled",
        }


def test_out_folder_must_be_new_and_secrets_outside_it(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    (dr.root / "used").mkdir()
    (dr.root / "used" / "x").write_text("x")
    assert "not empty" in dr.run("export", "manifests", "--out", "used", ok=(1,)).output
    res = dr.run("export", "manifests", "--out", "new", "--secrets-dir", "new/secrets", ok=(1,))
    assert "must not be inside --out" in res.output
    assert not (dr.root / "new").exists() or not any((dr.root / "new").rglob("*"))
    # file: references may point only inside the workspace root: secrets elsewhere could not be read back
    res = dr.run("export", "manifests", "--out", "new", "--secrets-dir", str(dr.root.parent / "outside"), ok=(1,))
    assert "inside the workspace root" in res.output and not (dr.root.parent / "outside").exists()


def test_target_limits_the_export_and_an_unknown_target_is_an_error(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    dr.run("export", "manifests", "--out", "one", "--secrets-dir", "s1", "--target", "FreeSpinEvent/launch-week")
    files = sorted(str(p.relative_to(dr.root / "one")) for p in (dr.root / "one").rglob("*") if p.is_file())
    assert files == ["jdb/sandboxag/free-spins.yaml", "jdb/sandboxag/players/launch-week.txt"]
    res = dr.run("export", "manifests", "--out", "two", "--target", "ProxyAccount/nobody", ok=(1,))
    assert "ProxyAccount/nobody" in res.output
    assert os.listdir(dr.root) and not (dr.root / "two").exists()


def test_plan_lists_every_unmanaged_object_it_can_see(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    dr.write("console/pw", "ConsolePw77")
    dr.write(
        "console/all.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: residential}
        spec: {productType: 25, entries: [192.0.2.7]}
        ---
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata: {name: ops01}
        spec: {username: ops01, password: "file:pw", productType: 9}
        ---
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {name: stray}
        spec:
          table: item_catalog
          records: [{region: 2, item_id: 2999, name: stray, price: 1}, {region: 8, item_id: 8001, name: far, price: 1}]
        ---
        apiVersion: reconciler/v1
        kind: FreeSpinEvent
        metadata: {name: console-promo}
        spec: {name: Console promo, agent: sandboxag, startTime: "2035-08-01T00:00:00Z", endTime: "2035-08-02T00:00:00Z",
               machineTypes: [14077], bet: "1", type: NORMAL, times: 1}
        """,
    )
    dr.run("apply", "console", "--auto-approve")
    import json

    data = json.loads(dr.run("plan", "--format", "json").output)
    assert data["changes"] == []
    seen = {(u["kind"], u["key"]): u["reason"] for u in data["unmanaged"]}
    assert "no manifest declares" in seen[("IpAllowlist", "25/192.0.2.7")]
    assert ("ProxyAccount", "ops01") in seen
    assert "under index by_region" in seen[("TcaplusRecords", "item_catalog|2|2999")]
    assert ("TcaplusRecords", "item_catalog|8|8001") not in seen  # no declared record uses region 8: out of sight
    assert any(k == "FreeSpinEvent" and "Console promo" in r for (k, _), r in seen.items())
    # the text plan shows them too
    assert "192.0.2.7" in dr.run("plan").output


def test_unmanaged_rows_are_not_listed_under_an_index_key_holding_too_many(
    dr: DrWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.vendors.tcaplus.records import plan as tcaplus_records  # where the cap is read

    dr.run("apply", "--auto-approve")
    monkeypatch.setattr(tcaplus_records, "MAX_UNMANAGED_ROWS", 10)  # region 2 holds 40 rows
    out = dr.run("plan", "--detailed-exitcode").output
    assert 'more than 10 rows under index by_region {"region": 2}' in out and nothing_to_apply(out)


def test_export_refuses_to_write_a_provider_credential_found_in_live_data(dr: DrWorkspace) -> None:
    dr.run("apply", "--auto-approve")
    app_key = (dr.root / dr.state / "credentials" / "bestproxy_app_key").read_text().strip()
    dr.write(
        "console/leak.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {{name: leak}}
        spec:
          table: item_catalog
          records: [{{region: 1, item_id: 1999, name: "{app_key}", price: 1}}]
        """,
    )
    dr.run("apply", "console", "--auto-approve")
    res = dr.run("export", "manifests", "--out", "backup", "--secrets-dir", "s", ok=(1,))
    assert "tcaplus/item_catalog.yaml would contain a provider credential" in res.output
    assert app_key not in res.output
    assert not (dr.root / "backup").exists() and not (dr.root / "s").exists()


def test_index_keys_of_declared_records_are_read_up_to_a_limit() -> None:
    from reconciler.vendors.tcaplus.records import MAX_INDEX_KEYSETS, index_keysets
    from reconciler.vendors.tcaplus.protoschema import load_table
    from tests.export.conftest import TABLES

    schema = load_table(str(TABLES["item_catalog"]), "item_catalog")
    few, warnings = index_keysets(schema, [{"region": r, "item_id": 1} for r in (2, 1, 2)])
    assert few == [("by_region", {"region": 1}), ("by_region", {"region": 2})] and not warnings
    many, warnings = index_keysets(schema, [{"region": r, "item_id": 1} for r in range(MAX_INDEX_KEYSETS + 1)])
    assert many == [] and "are not listed" in warnings[0]


def test_a_second_live_event_with_a_declared_display_name_is_named_not_exported(dr: DrWorkspace) -> None:
    from datetime import datetime

    from reconciler.vendors.jdb.client import EventDraft, JdbClient
    from reconciler.sandbox.serve import Sandbox
    from reconciler.vendors.jdb.sandbox import SANDBOX_JDB_AGENT, SANDBOX_JDB_DC

    dr.run("apply", "--auto-approve")
    # made in the JDB console: an earlier event with the same display name
    with Sandbox(dr.root / dr.state) as sbx:
        key, iv = (dr.root / dr.state / "credentials" / n for n in ("jdb_key", "jdb_iv"))
        client = JdbClient(sbx.urls()["jdb"], dc=SANDBOX_JDB_DC, key=key.read_text().strip(), iv=iv.read_text().strip())
        draft = EventDraft(
            name="Launch week spins",
            start=datetime.fromisoformat("2035-01-01T00:00:00+00:00"),
            end=datetime.fromisoformat("2035-01-02T00:00:00+00:00"),
            machine_types=(14077,),
            bet="1",
            type="NORMAL",
            min_withdrawal="-1",
            max_withdrawal="-1",
            times=1,
        )
        client.create_event(agent=SANDBOX_JDB_AGENT, draft=draft, transaction_id="console-twin-0001")
        client.close()
    dr.run("export", "manifests", "--out", "backup", "--secrets-dir", "s")
    events = (dr.root / "backup/jdb/sandboxag/free-spins.yaml").read_text()
    assert "'Launch week spins' has the display name of another exported event" in events
    docs = [d for d in yaml.safe_load_all(events) if d]
    assert [d["metadata"]["name"] for d in docs] == ["launch-week", "vip-bonus-chips"]
    assert docs[0]["spec"]["startTime"] == "2035-06-01T00:00:00+08:00"  # the declared event, not its twin
    # the twin lies in the prune scope "Launch " and no manifest declares it: the export plans
    # exactly as the manifests it came from do
    summary = [ln for ln in dr.run("plan", "backup").output.splitlines() if ln.startswith("Plan:")]
    assert summary == [ln for ln in dr.run("plan").output.splitlines() if ln.startswith("Plan:")]
    assert "1 to delete" in summary[0]


def test_a_running_event_is_restored_as_a_new_event_with_the_same_window(dr: DrWorkspace) -> None:
    running = """
        apiVersion: reconciler/v1
        kind: FreeSpinEvent
        metadata: {name: running}
        spec: {name: Running promo, agent: sandboxag, startTime: "2020-01-01T00:00:00.125Z",
               endTime: "2099-01-01T00:00:00Z", machineTypes: [14077], bet: "1", type: NORMAL, times: 2,
               players: [player00042]ACK}
        """
    # a brand-new event whose start is years past: JDB may have had it, had it stopped and forgotten it
    dr.write("manifests/jdb/running.yaml", running.replace("ACK", ""))
    refused = dr.run("apply", "--auto-approve", ok=(1,))
    assert "FreeSpinEvent/running" in refused.output and "spec.createAfterRetention: true" in refused.output
    dr.write("manifests/jdb/running.yaml", running.replace("ACK", ", createAfterRetention: true"))
    dr.run("apply", "--auto-approve")
    dr.run("export", "manifests", "--out", "backup", "--secrets-dir", "s")
    events = (dr.root / "backup/jdb/sandboxag/free-spins.yaml").read_text()
    assert "ACTIVE" in events and 'startTime: "2020-01-01T00:00:00.125Z"' in events.replace("'", '"')
    # running at the export and started more than 180 days before it: the restore may create it
    acknowledged = {d["metadata"]["name"]: d["spec"].get("createAfterRetention") for d in yaml.safe_load_all(events) if d}
    assert acknowledged == {"launch-week": None, "vip-bonus-chips": None, "running": True}
    assert "createAfterRetention: true  # ACTIVE at the export, started more than 180 days before it" in events
    before = vendor_state(dr.root / dr.state)
    fresh = ".reconciler/restored"
    assert " 0 failed" in dr.run("apply", "backup", "--auto-approve", state=fresh).output
    assert nothing_to_apply(dr.run("plan", "backup", "--detailed-exitcode", state=fresh).output)
    assert vendor_state(dr.root / fresh) == before

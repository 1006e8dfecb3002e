"""Named connections: an export covers every connection of every vendor (files of a named
connection under ``<name>/``, its documents saying ``metadata.connection``), plans as unchanged,
and restores both accounts of every vendor into new, empty ones."""

from __future__ import annotations

import shutil

import httpx
import yaml

from reconciler.sandbox.serve import Sandbox
from tests.environments.support import PASSWORDS, Fleet, write_estate
from tests.support import nothing_to_apply


def _state(sbx: Sandbox) -> dict[str, object]:
    raw = {name: httpx.get(url + "/_sandbox/state").json() for name, url in sbx.urls().items()}
    accounts = sorted((a["username"], a["password"], a["remark"]) for a in raw["bestproxy"]["accounts"])
    records = sorted((r["pk"], r["data"]) for r in raw["tcaplus"]["tcaplus_records"])
    events = sorted((e["name"], e["start_ms"], e["end_ms"], e["bet"]) for e in raw["jdb"]["events"] if not e["terminated"])
    return {"accounts": accounts, "records": records, "events": events, "bindings": len(raw["jdb"]["bindings"])}


def test_every_connection_is_exported_and_restored(fleet: Fleet) -> None:
    write_estate(fleet)
    assert fleet.cli("apply", "--auto-approve").exit_code == 0
    before = (_state(fleet.a), _state(fleet.b))
    res = fleet.cli("export", "manifests", "--out", "backup", "--secrets-dir", "backup-secrets")
    assert res.exit_code == 0, res.output
    assert "Exported 2 FreeSpinEvent, 4 ProxyAccount, 2 TcaplusRecords" in res.stdout
    docs = list(yaml.safe_load_all((fleet.root / "backup/brand-b/bestproxy/accounts.yaml").read_text()))
    assert {d["metadata"]["connection"] for d in docs} == {"brand-b"}
    assert docs[0]["spec"]["password"] == "file:../../../backup-secrets/brand-b-proxy-password-ops01"
    assert (fleet.root / "backup-secrets/brand-b-proxy-password-ops01").read_text().strip() == PASSWORDS["brand-b"]
    assert all(
        "connection" not in d["metadata"] for d in yaml.safe_load_all((fleet.root / "backup/bestproxy/accounts.yaml").read_text())
    )
    assert (fleet.root / "backup/brand-b/jdb/sandboxag/players/launch-brand-b.txt").is_file()
    planned = fleet.cli("plan", "backup", "--detailed-exitcode")
    assert planned.exit_code == 0 and nothing_to_apply(planned.stdout), planned.output

    # both accounts of every vendor are lost: restore into two new, empty sets of emulators
    fleet.a.stop()
    fleet.b.stop()
    shutil.rmtree(fleet.root / "state-a")
    shutil.rmtree(fleet.root / "state-b")
    tables = {"item_catalog": fleet.root / "tables" / "item_catalog.proto"}
    fleet.a = Sandbox(fleet.root / "state-a2", tcaplus_tables=tables).start()
    fleet.b = Sandbox(fleet.root / "state-b2", tcaplus_tables=tables).start()
    conf_a, conf_b = fleet.a.providers(), fleet.b.providers()
    for conf in (conf_a, conf_b):
        conf["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
    config = {
        "apiVersion": "reconciler/v1",
        "kind": "Config",
        "providers": conf_a,
        "connections": {vendor: {"brand-b": conf_b[vendor]} for vendor in ("bestproxy", "tcaplus", "jdb")},
    }
    fleet.write("reconciler.yaml", yaml.safe_dump(config, sort_keys=False))
    applied = fleet.cli("apply", "backup", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    again = fleet.cli("plan", "backup", "--detailed-exitcode")
    assert again.exit_code == 0 and nothing_to_apply(again.stdout), again.output
    assert (_state(fleet.a), _state(fleet.b)) == before

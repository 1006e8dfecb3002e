"""Fixtures for the export/restore tests: a copy of the quickstart workspace (cwd) run against the
embedded sandbox (``--sandbox --sandbox-state``), and the vendors' state read through the
emulators' own admin endpoint (``GET /_sandbox/state``), never through our clients."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import Result

from reconciler.sandbox.serve import Sandbox
from tests.support import CliWorkspace

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"item_catalog": ROOT / "tables" / "item_catalog.proto", "server_config": ROOT / "tables" / "server_config.proto"}


@dataclass
class DrWorkspace(CliWorkspace):
    """The quickstart folder; ``state`` names the sandbox state folder commands run against."""

    state: str = ".reconciler/sandbox"

    def run(self, *args: str, state: str | None = None, ok: tuple[int, ...] = (0,)) -> Result:
        res = self.cli(*args, "--sandbox", "--sandbox-state", state or self.state)
        assert res.exit_code in ok, res.output
        return res

    def credentials(self, state: str | None = None) -> list[str]:
        folder = self.root / (state or self.state) / "credentials"
        return [p.read_text(encoding="utf-8").strip() for p in sorted(folder.iterdir())]

    def written(self, folder: str) -> bytes:
        return b"".join(p.read_bytes() for p in sorted((self.root / folder).rglob("*")) if p.is_file())


@pytest.fixture
def dr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DrWorkspace]:
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    monkeypatch.chdir(tmp_path)
    yield DrWorkspace(tmp_path)


def raw_state(state_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every emulator's stored rows, read over HTTP from ``/_sandbox/state``."""
    with Sandbox(state_dir, tcaplus_tables=dict(TABLES)) as sbx:
        return {name: httpx.get(url + "/_sandbox/state").json() for name, url in sbx.urls().items()}


def vendor_state(state_dir: Path) -> dict[str, Any]:
    """What a restore must bring back, in a form two accounts can be compared in: server-owned
    values (row ids, creation times, usage counters, record versions, event ids, transaction ids)
    left out; ended events left out (they cannot be created again); bindings by event name."""
    raw = raw_state(state_dir)
    bp, jdb, tc = raw["bestproxy"], raw["jdb"], raw["tcaplus"]
    drop = {"id", "created_at", "usage_flow"}
    accounts = sorted(({k: v for k, v in a.items() if k not in drop} for a in bp["accounts"]), key=lambda a: a["username"])
    ips = sorted(
        ({k: v for k, v in i.items() if k not in drop} for i in bp["proxy_ips"]), key=lambda i: (i["product_type"], i["ip"])
    )
    events = {e["event_id"]: e for e in jdb["events"] if not e["terminated"]}  # terminated ones never come back
    drop_event = {"event_id", "transaction_id", "created_ms", "update_ms", "start_off", "end_off"}
    event_rows = sorted(
        ({k: v for k, v in e.items() if k not in drop_event} for e in events.values()), key=lambda e: (e["agent"], e["name"])
    )
    bindings = sorted(
        (events[b["event_id"]]["agent"], events[b["event_id"]]["name"], b["uid"])
        for b in jdb["bindings"]
        if b["event_id"] in events
    )
    records = sorted(((r["tbl"], r["pk"], json.loads(r["data"])) for r in tc["tcaplus_records"]), key=lambda r: (r[0], r[1]))
    return {"accounts": accounts, "ips": ips, "events": event_rows, "bindings": bindings, "records": records}

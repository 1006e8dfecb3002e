"""Named connections (tests/environments/test_connections.py, and the tests that reuse its fleet): a
workspace whose config has the default connections on sandbox A and the named connection
``brand-b`` of every vendor on sandbox B (the ``fleet`` fixture is in tests/conftest.py), and the
documents written into it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.sandbox.serve import Sandbox
from reconciler.vendors.jdb.sandbox import SANDBOX_JDB_AGENT
from tests.support import CliWorkspace

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


def account(name: str, username: str, *, connection: str | None = None, remark: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if connection:
        meta["connection"] = connection
    return {
        "apiVersion": "reconciler/v1",
        "kind": "ProxyAccount",
        "metadata": meta,
        "spec": {
            "username": username,
            "password": f"file:secrets/{connection or 'default'}.txt",
            "productType": 9,
            "remark": remark,
        },
    }


def write_docs(ws: Fleet, rel: str, docs: list[dict[str, Any]]) -> None:
    ws.write(rel, "---\n".join(json.dumps(d) + "\n" for d in docs))


def write_estate(ws: Fleet, *, remark: str = "") -> None:
    """The same identities on both connections of every vendor."""
    docs: list[dict[str, Any]] = []
    for conn in (None, "brand-b"):
        suffix = f"-{conn}" if conn else ""
        docs += [
            account(f"ops{suffix}", "ops01", connection=conn, remark=remark or (conn or "a")),
            account(f"qa{suffix}", "qa01", connection=conn, remark=remark or (conn or "a")),
        ]
        meta: dict[str, Any] = {"name": f"items{suffix}", **({"connection": conn} if conn else {})}
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TcaplusRecords",
                "metadata": meta,
                "spec": {
                    "table": "item_catalog",
                    "records": [{"region": 1, "item_id": 1001, "name": f"potion {conn or 'a'}", "price": 50}],
                },
            }
        )
        meta = {"name": f"launch{suffix}", **({"connection": conn} if conn else {})}
        docs.append(
            {
                "apiVersion": "reconciler/v1",
                "kind": "FreeSpinEvent",
                "metadata": meta,
                "spec": {
                    "name": f"Launch {conn or 'a'}",
                    "agent": SANDBOX_JDB_AGENT,
                    "startTime": "2035-06-01T00:00:00+08:00",
                    "endTime": "2035-06-08T00:00:00+08:00",
                    "machineTypes": [14077],
                    "bet": "1",
                    "type": "NORMAL",
                    "times": 5,
                    "players": ["player00001"],
                },
            }
        )
    write_docs(ws, "manifests/estate.yaml", docs)

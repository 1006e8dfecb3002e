"""Benchmark: `reconciler export manifests` of a generated estate (all four kinds) against the
three emulators on loopback, then `plan` of the export. Prints requests per endpoint, wall time,
CPU time (emulators included: they run in this process), peak memory, and the export's lower
bound of requests.

    python bench/export_roundtrip.py --accounts 2000 --ips 2000 --records 2000 --events 50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.vendors.tcaplus.client import DEFAULT_PAGE_SIZE
from reconciler.sandbox.serve import Sandbox
from reconciler.vendors.jdb.sandbox import SANDBOX_JDB_AGENT

ROOT = Path(__file__).resolve().parents[1]
REGIONS = 4


def _doc(kind: str, name: str, spec: dict) -> str:
    return json.dumps({"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}) + "\n"


def write_estate(root: Path, args: argparse.Namespace) -> None:
    (root / "m").mkdir()
    (root / "m" / "pw").write_text("BenchPass123")
    docs = [
        _doc(
            "ProxyAccount",
            f"b{i}",
            {"username": f"bench{i}", "password": "file:pw", "productType": (9, 14)[i % 2], "remark": f"r{i % 3}"},
        )
        for i in range(args.accounts)
    ]
    entries = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(args.ips)]
    docs.append(_doc("IpAllowlist", "a", {"productType": 14, "entries": entries}))
    for region in range(REGIONS):
        lines = [
            json.dumps({"region": region, "item_id": region * 1_000_000 + k, "name": f"item {k}", "price": k})
            for k in range(args.records // REGIONS)
        ]
        (root / "m" / f"r{region}.jsonl").write_text("\n".join(lines) + "\n")
        docs.append(_doc("TcaplusRecords", f"r{region}", {"table": "item_catalog", "file": f"r{region}.jsonl"}))
    docs += [
        _doc(
            "FreeSpinEvent",
            f"e{e}",
            {
                "name": f"Bench {e}",
                "agent": SANDBOX_JDB_AGENT,
                "startTime": "2035-01-01T00:00:00Z",
                "endTime": f"2035-02-{1 + e % 27:02d}T00:00:00Z",
                "machineTypes": [14077],
                "bet": "1",
                "type": "NORMAL",
                "times": 1,
                "players": [f"player{1 + e:05d}"],
            },
        )
        for e in range(args.events)
    ]
    (root / "m" / "estate.yaml").write_text("---\n".join(docs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--ips", type=int, default=1000)
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--events", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proto = root / "tables" / "item_catalog.proto"  # inside the workspace root, as files must be
        proto.parent.mkdir()
        proto.write_text((ROOT / "tables" / "item_catalog.proto").read_text())
        with Sandbox(root / "state", tcaplus_tables={"item_catalog": proto}) as sbx:
            providers = sbx.providers()
            providers["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
            (root / "reconciler.yaml").write_text(
                yaml.safe_dump({"apiVersion": "reconciler/v1", "kind": "Config", "providers": providers})
            )
            write_estate(root, args)
            cwd = os.getcwd()
            os.chdir(root)
            try:
                runner = CliRunner()
                res = runner.invoke(cli, ["apply", "m", "--auto-approve"])
                print(f"estate   exit={res.exit_code} {(res.stdout.strip().splitlines() or [res.output[-300:]])[-1]}")
                steps = (
                    ("export", ["export", "manifests", "m", "--out", "backup", "--secrets-dir", "sec"]),
                    ("plan", ["plan", "backup"]),
                )
                for step, argv in steps:
                    for url in sbx.urls().values():
                        httpx.post(url + "/_sandbox/stats/reset")
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    res = runner.invoke(cli, argv)
                    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                    stats = {
                        f"{n:9} {k}": v
                        for n, url in sbx.urls().items()
                        for k, v in httpx.get(url + "/_sandbox/stats").json().items()
                    }
                    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.output.strip()[-200:]
                    print(
                        f"{step:8} exit={res.exit_code} requests={sum(stats.values()):5d} wall={wall:6.2f}s "
                        f"cpu={cpu:6.2f}s {last}"
                    )
                    for k, v in sorted(stats.items()):
                        print(f"          {v:5d} {k}")
            finally:
                os.chdir(cwd)
    per_region = args.records // REGIONS
    bound = 1 + 4 + REGIONS * max(1, math.ceil(per_region / DEFAULT_PAGE_SIZE)) + 1 + args.events
    print(
        f"export lower bound: {bound} requests (1 account list, 4 allowlists, {REGIONS} index keys paged by "
        f"{DEFAULT_PAGE_SIZE}, 1 Action 76, 1 Action 71 per event with its own players: Action 76 as documented "
        "returns no endTime or times)"
    )
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

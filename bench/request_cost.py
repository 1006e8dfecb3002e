"""What one TcaplusDB read costs the client, counted in machine instructions (noise-free).

CPU seconds on a shared two-core virtual machine vary by 10-20% between runs of the same code, which
hides a change worth 5%. This script counts instructions instead: a child process reads records
with ``TcaplusClient.aget`` on one event loop (eight in flight, as a plan's reads run) from
``reconciler sandbox serve``, under valgrind's callgrind, once with one request and once with
``--requests`` more; the difference divided by the extra requests is the client's cost per request
in user-space instructions, the same from run to run (the kernel's share, sending and receiving, is
not counted). Without valgrind (or with ``--cpu``) it prints CPU seconds per request instead, the
best of three runs.

    python bench/request_cost.py                       # 2,000 GetRecords of stored records (~30 s)
    python bench/request_cost.py --requests 50 --cpu   # seconds (the smoke test)

Nothing is asserted: compare the figure before and after a change (``git stash``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TABLE = "fleet_flat"
SELECT = ["value", "weight"]  # a declared-mode plan reads the declared fields


def child(cfg_file: str, n: int) -> None:
    """Read ``n`` stored records on one event loop, eight at a time (``RunContext.amap``); print
    the CPU seconds the reads took (after one read that connects and imports what it needs)."""
    from reconciler.vendors.tcaplus.client import TcaplusClient
    from reconciler.kinds.base import RunContext

    cfg = json.loads(Path(cfg_file).read_text())
    client = TcaplusClient(
        cfg["base_url"], app_id=cfg["app_id"], zone_id=cfg["zone_id"], password=cfg["password"], max_connections=8
    )
    # the keys of bench/fleet.py's flat_record(i), written out: importing bench.fleet (httpx and
    # more) would make the child's garbage collections, and so its count, larger than the CLI's
    keys = [{"shard": i % 16, "key": f"k{i:07d}"} for i in range(n)]

    async def one(k: dict[str, Any]) -> Any:
        return await client.aget(TABLE, k, select=SELECT)

    client.run(lambda: one(keys[0]))
    started = time.process_time()
    found = client.run(lambda: RunContext.amap(one, keys, concurrency=8))
    cpu = time.process_time() - started
    if any(r is None for r in found):
        raise SystemExit("a record was not found: the table was not seeded")
    print(f"cpu={cpu:.6f}")


def seed(cfg: dict[str, Any], n: int) -> None:
    from bench.fleet import flat_record
    from reconciler.vendors.tcaplus.client import TcaplusClient
    from reconciler.kinds.base import RunContext

    client = TcaplusClient(
        cfg["base_url"], app_id=cfg["app_id"], zone_id=cfg["zone_id"], password=cfg["password"], max_connections=8
    )

    async def add(i: int) -> Any:
        return await client.aadd(TABLE, flat_record(i))

    client.run(lambda: RunContext.amap(add, range(n), concurrency=8))


def instructions(cfg_file: Path, n: int) -> int:
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "_child",
            str(cfg_file),
            str(n),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def cpu_seconds(cfg_file: Path, n: int) -> float:
    """The CPU seconds ``n`` reads took in a child (start-up not counted)."""
    proc = subprocess.run(
        [sys.executable, __file__, "_child", str(cfg_file), str(n)], check=True, timeout=900, capture_output=True, text=True
    )
    found = re.search(r"^cpu=([\d.]+)$", proc.stdout, re.M)
    if found is None:
        raise SystemExit(f"the child printed no figure:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return float(found.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_child":
        child(sys.argv[2], int(sys.argv[3]))
        return
    from bench.fleet import Fleet, Sandbox, write_fleet

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2_000, help="requests counted (bounded: at most 20,000)")
    ap.add_argument("--cpu", action="store_true", help="CPU seconds instead of instructions (no valgrind)")
    args = ap.parse_args()
    n = max(10, min(args.requests, 20_000))
    use_valgrind = not args.cpu and shutil.which("valgrind") is not None
    ws = Path(tempfile.mkdtemp(prefix="request-cost-"))
    try:
        write_fleet(ws, Fleet.at(0.005, region_size=10, players=5))
        sbx = Sandbox(ws, 0.0, 60.0)
        try:
            c = sbx.config["tcaplus"]
            cfg = {
                "base_url": c["base_url"],
                "app_id": c["app_id"],
                "zone_id": c["zone_id"],
                "password": sbx.secret(c["password"]),
            }
            cfg_file = ws / "tcaplus.json"
            cfg_file.write_text(json.dumps(cfg))
            os.chmod(cfg_file, 0o600)
            seed(cfg, n + 1)
            started = time.perf_counter()
            if use_valgrind:
                base, full = instructions(cfg_file, 1), instructions(cfg_file, n + 1)
                print(f"request cost: {n:,} GetRecords (aget, one event loop, 8 in flight), counted by callgrind")
                print(f"  start-up and one request: {base:,} instructions")
                print(f"  per request: {(full - base) / n:,.0f} instructions (user space; the kernel's share not counted)")
            else:
                best = min(cpu_seconds(cfg_file, n) for _ in range(3))
                print(f"request cost: {n:,} GetRecords (aget, one event loop, 8 in flight), CPU time (best of 3)")
                print(f"  per request: {best / n * 1000:.3f} ms of CPU (user + system, start-up not counted)")
            print(f"  ({time.perf_counter() - started:.1f} s)")
        finally:
            sbx.stop()
    finally:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()

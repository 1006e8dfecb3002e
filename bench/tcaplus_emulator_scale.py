"""The TcaplusDB emulator's cost against its table size: CPU per PartkeyGetRecord page and per
GetRecord, for tables of growing size (regions of 1,000 records under an index). Linear cost means
a flat figure per request as the table grows.

    python bench/tcaplus_emulator_scale.py --sizes 5000 10000 20000 40000

The emulator runs in this process, on loopback, so the figures are client + emulator CPU; the
client's share of a request does not depend on the table's size, so any growth is the emulator's.
Bounded: --pages pages and --gets reads per size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

PROTO = """syntax = "proto3";
package bench;
import "tcaplusservice.optionv1.proto";
message items {
    option(tcaplusservice.tcaplus_primary_key) = "region, item_id";
    option(tcaplusservice.tcaplus_index) = "by_region(region)";
    int32 region = 1;
    int64 item_id = 2;
    string name = 3;
    uint32 price = 4;
}
"""
REGION = 1_000


def measure(size: int, pages: int, gets: int, tmp: Path) -> tuple[float, float]:
    emulator = TcaplusEmulator(app_id=1, zone_id=1, password="bench", tables={"items": tmp / "items.proto"})
    rows = [
        (1, 1, "items", f"[{i // REGION},{i}]", 1, f'{{"region":{i // REGION},"item_id":{i},"name":"n{i}","price":{i % 90}}}')
        for i in range(size)
    ]
    with emulator.transaction():
        emulator.db.executemany("INSERT INTO tcaplus_records (app, zone, tbl, pk, version, data) VALUES (?, ?, ?, ?, ?, ?)", rows)
    if hasattr(emulator, "_rebuild_index"):
        emulator._rebuild_index()  # the seed went straight into SQLite
    regions = size // REGION
    with EmulatorServer(emulator) as server:
        client = TcaplusClient(server.url, app_id=1, zone_id=1, password="bench", max_connections=1)
        client.partkey_get("items", "by_region", {"region": 0}, limit=1024)
        t = time.process_time()
        for p in range(pages):
            page = client.partkey_get("items", "by_region", {"region": p % regions}, limit=1024)
            assert len(page.records) == REGION
        per_page = (time.process_time() - t) / pages
        t = time.process_time()
        for g in range(gets):
            region = g % regions
            assert client.get("items", {"region": region, "item_id": region * REGION + g % REGION})
        per_get = (time.process_time() - t) / gets
        client.close()
    return per_page, per_get


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5_000, 10_000, 20_000, 40_000])
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--gets", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "items.proto").write_text(PROTO)
        print(
            f"{'records':>8} {'ms CPU per 1,000-record page':>30} {'ms CPU per GetRecord':>22}  (client + emulator, one process)"
        )
        first = None
        for size in args.sizes:
            page, get = measure(size, args.pages, args.gets, Path(tmp))
            first = first or (size, page)
            print(
                f"{size:8,} {page * 1000:30.2f} {get * 1000:22.3f}   page cost x{page / first[1]:.2f} for x{size / first[0]:g} records"
            )


if __name__ == "__main__":
    main()

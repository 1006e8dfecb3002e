"""Fleet-scale benchmark: the real CLI against ``reconciler sandbox serve`` (a separate process).

At scale 1x the fleet is 2,000 proxy accounts, one 2,000-address IP allowlist, 200 free-spin
events x 1,000 players and 20,000 TcaplusDB records in two tables: ``fleet_regional`` (an index
``by_region``; one document per region of 1,000 records, pruned by that index) and ``fleet_flat``
(no index; one document of 10,000 records). Scale N multiplies every count (players per event
stay 1,000; TcaplusDB regions stay 1,000 records each).

Per scale it prints, for each scenario — cold apply, no-op plan, plan after 1% out-of-band drift,
and a naive serial loop (one read per object, the clients used directly, one connection) — the
requests each emulator answered, the wall time, the latency lower bound (per vendor
ceil(minimal calls / concurrency) x latency; vendors may run in parallel, so the largest), the
ratio, the client process's CPU (total and per request) and peak RSS, and the emulator process's
CPU; then each vendor's busy time (first request to last answer, from the emulators) against its
own bound; then the targets of issue #13, each marked met or not. Nothing here asserts a timing.

    python bench/fleet.py                       # scale 0.25, 5 ms latency: a few minutes
    python bench/fleet.py --scale 1 2 4         # the full fleet (1x takes several minutes)
    python bench/fleet.py --scale 0.005 --region-size 30 --players-per-event 5   # seconds (the smoke test)
    python bench/fleet.py --profile py-spy --keep /tmp/fleet    # needs py-spy (pip install py-spy)

Every child process runs under a time limit (``--timeout``) and is stopped when it is exceeded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

VENDORS = ("bestproxy", "jdb", "tcaplus")
SHORT = {"bestproxy": "BP", "jdb": "JDB", "tcaplus": "TC"}
# the product's default concurrency per vendor (reconciler/manifest/config.py)
DEFAULT_CONCURRENCY = {"bestproxy": 2, "jdb": 2, "tcaplus": 8}
RECORDS_PER_REGION = 1_000
PLAYERS_PER_EVENT = 1_000
PLAYER_FILES = 20
REMARKS = 4
AGENT = "sandboxag"
PARTKEY_MAX_RECORDS = 1_024  # documented batch-read cap (reference/tcaplus.md; the emulator's cap)
PARTKEY_MAX_BYTES = 256 * 1024  # one PartkeyGetRecord answer (TC-PY)
CLI = "import sys; from reconciler.cli import main; sys.argv[0] = 'reconciler'; main()"

REGIONAL_PROTO = """syntax = "proto3";
package fleet;
import "tcaplusservice.optionv1.proto";
message fleet_regional {
    option(tcaplusservice.tcaplus_primary_key) = "region, item_id";
    option(tcaplusservice.tcaplus_index) = "by_region(region)";
    int32 region = 1;
    int64 item_id = 2;
    string name = 3;
    uint32 price = 4;
    repeated string tags = 5;
}
"""
FLAT_PROTO = """syntax = "proto3";
package fleet;
import "tcaplusservice.optionv1.proto";
message fleet_flat {
    option(tcaplusservice.tcaplus_primary_key) = "shard, key";
    int32 shard = 1;
    string key = 2;
    string value = 3;
    uint32 weight = 4;
}
"""


# -- the fleet ----------------------------------------------------------------------------------


@dataclass
class Fleet:
    scale: float
    accounts: int
    ips: int
    events: int
    regions: int
    flat_records: int
    region_size: int = RECORDS_PER_REGION
    players: int = PLAYERS_PER_EVENT

    @classmethod
    def at(cls, scale: float, *, region_size: int = RECORDS_PER_REGION, players: int = PLAYERS_PER_EVENT) -> "Fleet":
        n = lambda base: max(1, round(base * scale))  # noqa: E731
        return cls(scale, n(2_000), n(2_000), n(200), n(10), n(10_000), region_size, players)

    @property
    def regional_records(self) -> int:
        return self.regions * self.region_size

    def describe(self) -> str:
        return (
            f"{self.accounts:,} proxy accounts, {self.ips:,}-IP allowlist, {self.events:,} free-spin events x "
            f"{self.players:,} players, {self.regional_records + self.flat_records:,} TcaplusDB records "
            f"({self.regions} regions x {self.region_size:,} indexed + {self.flat_records:,} unindexed)"
        )


def regional_record(region: int, i: int) -> dict[str, Any]:
    return {
        "region": region,
        "item_id": region * 1_000_000 + i,
        "name": f"item {region}-{i}",
        "price": 10 + i % 90,
        "tags": ["fleet", f"t{i % 7}"],
    }


def flat_record(i: int) -> dict[str, Any]:
    return {"shard": i % 16, "key": f"k{i:07d}", "value": f"v{i}", "weight": i % 100}


def player(n: int) -> str:
    return f"player{n:05d}"  # the JDB emulator's default players: player00001..player99999


def event_doc(i: int) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: FreeSpinEvent\nmetadata: {{name: fleet-{i:05d}}}\nspec:\n"
        f"  name: Fleet event {i:05d}\n  agent: {AGENT}\n"
        f'  startTime: "2035-06-01T00:00:00+08:00"\n  endTime: "2035-06-30T00:00:00+08:00"\n'
        f'  machineTypes: [14077]\n  bet: "1"\n  type: NORMAL\n  times: 10\n'
        f"  playersFile: ../players/block{i % PLAYER_FILES:02d}.txt\n"
    )


def write_fleet(ws: Path, fleet: Fleet) -> None:
    """The workspace: tables, a tables-only config for ``sandbox serve``, manifests, data files."""
    (ws / "tables").mkdir(parents=True)
    (ws / "tables" / "fleet_regional.proto").write_text(REGIONAL_PROTO)
    (ws / "tables" / "fleet_flat.proto").write_text(FLAT_PROTO)
    (ws / "tables.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Config\nproviders:\n  tcaplus:\n    base_url: http://127.0.0.1:1\n"
        "    app_id: 1\n    zone_id: 1\n    password: env:UNUSED\n    tables:\n"
        "      fleet_regional: {proto: tables/fleet_regional.proto}\n      fleet_flat: {proto: tables/fleet_flat.proto}\n"
    )
    m = ws / "manifests"
    for sub in ("bestproxy", "jdb", "tcaplus", "secrets", "players", "data"):
        (m / sub).mkdir(parents=True)
    (m / "secrets" / "pw").write_text("FleetPass123\n")
    accounts = [
        f"apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {{name: fleet{i:05d}}}\n"
        f"spec: {{username: fleet{i:05d}, password: file:../secrets/pw, productType: 9, remark: team{i % REMARKS}}}\n"
        for i in range(fleet.accounts)
    ]
    (m / "bestproxy" / "accounts.yaml").write_text("---\n".join(accounts))
    ips = "".join(f"    - 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}\n" for i in range(fleet.ips))
    (m / "bestproxy" / "allowlist.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: IpAllowlist\nmetadata: {name: fleet}\nspec:\n  productType: 14\n"
        f"  exclusive: true\n  entries:\n{ips}"
    )
    for b in range(min(PLAYER_FILES, fleet.events)):
        first = b * fleet.players + 1
        (m / "players" / f"block{b:02d}.txt").write_text("".join(f"{player(first + k)}\n" for k in range(fleet.players)))
    (m / "jdb" / "events.yaml").write_text("---\n".join(event_doc(i) for i in range(fleet.events)))
    regional = []
    for r in range(1, fleet.regions + 1):
        with open(m / "data" / f"region{r:03d}.jsonl", "w") as fh:
            fh.writelines(json.dumps(regional_record(r, i)) + "\n" for i in range(fleet.region_size))
        regional.append(
            f"apiVersion: reconciler/v1\nkind: TcaplusRecords\nmetadata: {{name: region{r:03d}}}\nspec:\n"
            f"  table: fleet_regional\n  mode: whole\n  file: ../data/region{r:03d}.jsonl\n"
            f"  prune: {{index: by_region, keys: {{region: {r}}}}}\n"
        )
    (m / "tcaplus" / "regional.yaml").write_text("---\n".join(regional))
    with open(m / "data" / "flat.jsonl", "w") as fh:
        fh.writelines(json.dumps(flat_record(i)) + "\n" for i in range(fleet.flat_records))
    (m / "tcaplus" / "flat.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: TcaplusRecords\nmetadata: {name: flat}\nspec:\n"
        "  table: fleet_flat\n  file: ../data/flat.jsonl\n"
    )


# -- minimal calls (the lower bound) --------------------------------------------------------------


def partkey_pages(records: int, record_bytes: int) -> int:
    per_page = max(1, min(PARTKEY_MAX_RECORDS, PARTKEY_MAX_BYTES // max(1, record_bytes)))
    return max(1, math.ceil(records / per_page))


def minimal_calls(fleet: Fleet, scenario: str) -> dict[str, int]:
    """The fewest requests each vendor's API allows for a scenario.

    BestProxy: one list of accounts, one list of the product type's addresses; a create is one
    ``add`` per (product type, remark) and one ``proxy-ip/add`` per remark. JDB: one Action 76
    (search) per agent — its ``numberOfPlayers`` tells whether the declared players are bound — and
    one Action 72 per new event (it binds up to 50,000 players). TcaplusDB: one PartkeyGetRecord
    page per region (1,024 records or 256 KB per page), one GetRecord per record of the table
    without an index, one AddRecord per new record.
    """
    record_bytes = len(json.dumps({"RecordVersion": 1, "Record": regional_record(999, 999)}, separators=(",", ":")))
    pages = fleet.regions * partkey_pages(fleet.region_size, record_bytes)
    reads = {"bestproxy": 2, "jdb": 1, "tcaplus": pages + fleet.flat_records}
    if scenario == "cold apply":
        return {
            "bestproxy": reads["bestproxy"] + min(REMARKS, fleet.accounts) + 1,
            "jdb": reads["jdb"] + fleet.events,
            "tcaplus": fleet.regions + fleet.flat_records + fleet.regional_records + fleet.flat_records,
        }
    if scenario == "naive loop":
        return {"bestproxy": 2, "jdb": fleet.events, "tcaplus": fleet.regional_records + fleet.flat_records}
    return reads


def lower_bound(minimal: dict[str, int], concurrency: dict[str, int], latency_ms: float) -> float:
    return max(math.ceil(minimal[v] / concurrency[v]) * latency_ms / 1000.0 for v in VENDORS)


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Run:
    scenario: str
    exit_code: int
    wall: float
    cpu: float
    rss_mb: float
    requests: dict[str, int]
    emulator_cpu: float
    lines: int
    load: float = 0.0  # 1-minute load average when the run started (the machine may be shared)
    busy: dict[str, float] = field(default_factory=dict)  # per vendor: first request to last answer
    minimal: dict[str, int] = field(default_factory=dict)
    bound: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run_child(argv: list[str], *, cwd: Path, out: Path, timeout: float) -> tuple[int, float, float, float]:
    """Run a child to completion (killed after ``timeout``): exit code, wall, CPU, peak RSS (MB)."""
    with open(out, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                fh.write(f"\n[bench] killed after {timeout:.0f} s\n".encode())
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


class Sandbox:
    """``reconciler sandbox serve`` in its own process, with the latency knob set on every emulator."""

    def __init__(self, ws: Path, latency_ms: float, timeout: float):
        self.ws = ws
        self.log = open(ws / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLI,
                "sandbox",
                "serve",
                "--state",
                str(ws / "state"),
                "--config",
                "tables.yaml",
                "--config-out",
                "reconciler.yaml",
            ],
            cwd=ws,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while b"Serving" not in (ws / "serve.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"sandbox serve did not start:\n{(ws / 'serve.log').read_text()}")
            time.sleep(0.05)
        import yaml

        self.config = yaml.safe_load((ws / "reconciler.yaml").read_text())["providers"]
        self.urls = {v: self.config[v]["base_url"] for v in VENDORS}
        for url in self.urls.values():
            httpx.post(f"{url}/_sandbox/faults", json={"latency_ms": latency_ms}).raise_for_status()

    def secret(self, ref: str) -> str:
        return Path(ref.removeprefix("file:")).read_text().strip()

    def reset(self) -> None:
        for url in self.urls.values():
            httpx.post(f"{url}/_sandbox/stats/reset").raise_for_status()

    def requests(self) -> dict[str, int]:
        return {v: sum(httpx.get(f"{u}/_sandbox/stats").json().values()) for v, u in self.urls.items()}

    def busy(self) -> dict[str, float]:
        """Seconds each emulator was busy: from its first request to its last answer."""
        out = {}
        for v, u in self.urls.items():
            span = httpx.get(f"{u}/_sandbox/stats/span").json()
            out[v] = (span["last"] - span["first"]) if span["first"] is not None and span["last"] is not None else 0.0
        return out

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def measure(sbx: Sandbox, scenario: str, argv: list[str], *, timeout: float, profile: str | None) -> Run:
    """Run one scenario's child process; ``profile`` (cprofile or py-spy) writes its profile next to it.
    Profiled runs are slower: their figures are for finding hot spots, not for the report."""
    slug = scenario.replace(" ", "-").replace("%", "pct")
    cmd = [sys.executable, *argv]
    if profile == "cprofile" and argv[:2] == ["-c", CLI]:  # the main thread only
        cmd = [sys.executable, "-m", "cProfile", "-o", str(sbx.ws / f"{slug}.prof"), "-m", "reconciler.cli", *argv[2:]]
    elif profile == "py-spy":  # every thread, sampled (py-spy must be installed)
        cmd = ["py-spy", "record", "--threads", "-r", "200", "-f", "raw", "-o", str(sbx.ws / f"{slug}.pyspy.txt"), "--", *cmd]
    sbx.reset()
    emu0, load = sbx.cpu(), os.getloadavg()[0]
    out = sbx.ws / f"{slug}.out"
    code, wall, cpu, rss = run_child(cmd, cwd=sbx.ws, out=out, timeout=timeout)
    lines = out.read_bytes().count(b"\n")
    return Run(scenario, code, wall, cpu, rss, sbx.requests(), sbx.cpu() - emu0, lines, load, sbx.busy())


# -- out-of-band drift and the naive loop (both use the clients directly) -------------------------


def clients(providers: dict[str, Any], secret: Any, *, connections: int) -> tuple[Any, Any, Any]:
    from reconciler.vendors.bestproxy.client import BestProxyClient
    from reconciler.vendors.jdb.client import JdbClient
    from reconciler.vendors.tcaplus.client import TcaplusClient

    bp, tc, jd = providers["bestproxy"], providers["tcaplus"], providers["jdb"]
    return (
        BestProxyClient(bp["base_url"], app_key=secret(bp["app_key"]), max_connections=connections),
        JdbClient(jd["base_url"], dc=jd["dc"], key=secret(jd["key"]), iv=secret(jd["iv"]), max_connections=connections),
        TcaplusClient(
            tc["base_url"],
            app_id=tc["app_id"],
            zone_id=tc["zone_id"],
            password=secret(tc["password"]),
            max_connections=connections,
        ),
    )


def drift(sbx: Sandbox, fleet: Fleet) -> str:
    """Change 1% of every kind behind the reconciler's back (counted nowhere)."""
    bp, jd, tc = clients(sbx.config, sbx.secret, connections=4)
    every = 100
    try:
        n_acc = 0
        for i in range(0, fleet.accounts, every):
            bp.change_account(f"fleet{i:05d}", remark="drifted")
            n_acc += 1
        extra = [f"192.168.{k // 256}.{k % 256}" for k in range(max(1, fleet.ips // every))]
        bp.add_ips(extra, product_type=14, remark="drift")
        n_rec = 0
        for r in range(1, fleet.regions + 1):
            for i in range(0, fleet.region_size, every):
                rec = regional_record(r, i)
                tc.set("fleet_regional", {**rec, "price": rec["price"] + 1})
                n_rec += 1
        for i in range(0, fleet.flat_records, every):
            tc.set("fleet_flat", {**flat_record(i), "value": "drifted"})
            n_rec += 1
        start, end = datetime(2035, 1, 1, tzinfo=timezone.utc), datetime(2036, 1, 1, tzinfo=timezone.utc)
        events = sorted(jd.search_events(agent=AGENT, start=start, end=end), key=lambda e: str(e.get("name")))
        n_ev = 0
        for e in events[::every]:
            jd.bind_players(agent=AGENT, event_id=e["eventId"], players=[player(99_000 + n_ev)])
            n_ev += 1
    finally:
        for c in (bp, jd, tc):
            c.close()
    return f"{n_acc} account remarks, {len(extra)} extra IPs, {n_rec} records, {n_ev} events with an undeclared player"


def naive_loop(ws: Path) -> None:
    """One read per object, one after another (the baseline): run in its own process."""
    import yaml

    providers = yaml.safe_load((ws / "reconciler.yaml").read_text())["providers"]
    fleet = Fleet(**json.loads((ws / "fleet.json").read_text()))
    secret = lambda ref: Path(ref.removeprefix("file:")).read_text().strip()  # noqa: E731
    bp, jd, tc = clients(providers, secret, connections=1)
    start, end = datetime(2035, 1, 1, tzinfo=timezone.utc), datetime(2036, 1, 1, tzinfo=timezone.utc)
    found = 0
    found += len(bp.list_accounts())
    found += len(bp.list_ips(14))
    for i in range(fleet.events):
        found += len(jd.search_events(agent=AGENT, start=start, end=end, name=f"Fleet event {i:05d}"))
    for r in range(1, fleet.regions + 1):
        for i in range(fleet.region_size):
            rec = regional_record(r, i)
            found += tc.get("fleet_regional", {"region": r, "item_id": rec["item_id"]}) is not None
    for i in range(fleet.flat_records):
        rec = flat_record(i)
        found += tc.get("fleet_flat", {"shard": rec["shard"], "key": rec["key"]}) is not None
    print(f"naive loop: {found} objects read")


# -- report ---------------------------------------------------------------------------------------


def fmt_req(d: dict[str, int]) -> str:
    return " / ".join(f"{d.get(v, 0):,}" for v in VENDORS)


def report(fleet: Fleet, runs: list[Run], latency_ms: float, drift_note: str) -> list[tuple[str, bool | None, str]]:
    print(f"\n== scale {fleet.scale:g}x: {fleet.describe()}")
    print(
        f"   latency {latency_ms:g} ms per request; concurrency "
        + ", ".join(f"{v} {DEFAULT_CONCURRENCY[v]}" for v in VENDORS)
        + "; drift: "
        + (drift_note or "-")
    )
    head = (
        f"{'scenario':<16}{'exit':>5} {'requests BP / JDB / TC':>25} {'minimal BP / JDB / TC':>24} {'wall s':>8}"
        f" {'bound s':>8} {'ratio':>6} {'cpu s':>7} {'ms/req':>7} {'RSS MB':>7} {'emu cpu s':>9} {'emu ms/req':>10} {'lines':>7} {'load':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        ratio = f"{r.wall / r.bound:5.1f}x" if r.bound > 0 else "     -"
        per_req = r.cpu * 1000 / r.total if r.total else 0.0
        emu_req = r.emulator_cpu * 1000 / r.total if r.total else 0.0
        print(
            f"{r.scenario:<16}{r.exit_code:>5} {fmt_req(r.requests):>25} {fmt_req(r.minimal):>24} {r.wall:8.2f}"
            f" {r.bound:8.2f} {ratio:>6} {r.cpu:7.2f} {per_req:7.3f} {r.rss_mb:7.0f} {r.emulator_cpu:9.2f} {emu_req:10.3f} {r.lines:>7,} {r.load:5.1f}"
        )
    print(
        "per vendor: busy seconds (first request to last answer) / its own bound (ceil(minimal / concurrency) x latency)"
        " -> ratio; with vendors run side by side the wall would approach the largest busy time"
    )
    for r in runs:
        parts = []
        for v in VENDORS:
            own = math.ceil(r.minimal.get(v, 0) / DEFAULT_CONCURRENCY[v]) * latency_ms / 1000.0
            ratio = f"{r.busy.get(v, 0.0) / own:.1f}x" if own > 0 and r.scenario != "naive loop" else "-"
            parts.append(f"{SHORT[v]} {r.busy.get(v, 0.0):6.2f} / {own:5.2f} s {ratio:>6}")
        print(f"  {r.scenario:<16}" + "   ".join(parts))
    by = {r.scenario: r for r in runs}
    checks: list[tuple[str, bool | None, str]] = []

    def ratio_check(name: str, scenario: str) -> None:
        r = by.get(scenario)
        if r is None or r.bound <= 0:
            checks.append((name, None, "not measured (latency 0 has no bound)"))
        else:
            checks.append((name, r.wall <= 1.5 * r.bound, f"{r.wall / r.bound:.2f}x of {r.bound:.2f} s"))

    ratio_check("no-op plan <= 1.5x its lower bound", "no-op plan")
    ratio_check("cold apply <= 1.5x its lower bound", "cold apply")
    noop, naive = by.get("no-op plan"), by.get("naive loop")
    if noop and naive:
        speed = naive.wall / noop.wall
        checks.append(("no-op plan >= 10x faster than the naive loop", speed >= 10, f"{speed:.1f}x"))
        print(f"speed-up of the no-op plan over the naive loop: {speed:.1f}x")
    else:
        checks.append(("no-op plan >= 10x faster than the naive loop", None, "naive loop not run"))
    cli_runs = [r for r in runs if r.scenario != "naive loop" and r.total]
    worst = max((r.cpu * 1000 / r.total for r in cli_runs), default=0.0)
    checks.append(("client CPU <= 0.3 ms per request", worst <= 0.3 if cli_runs else None, f"worst {worst:.3f} ms"))
    peak = max((r.rss_mb for r in cli_runs), default=0.0)
    checks.append((f"peak RSS <= 250 MB at 1x (x{fleet.scale:g} here)", peak <= 250 * max(1.0, fleet.scale), f"{peak:.0f} MB"))
    failed = [r.scenario for r in runs if r.exit_code not in (0, 2)]
    if failed:
        print(f"!! non-zero exit: {', '.join(failed)} (see the *.out files in the workspace)")
    return checks


def run_once(fleet: Fleet, args: argparse.Namespace, ws: Path) -> tuple[list[Run], str]:
    """Every scenario once, against a fresh sandbox (its own state folder)."""
    sbx = Sandbox(ws, args.latency_ms, args.timeout)
    runs: list[Run] = []
    note = ""
    try:
        steps = [
            ("cold apply", ["apply", "manifests", "--auto-approve"]),
            ("no-op plan", ["plan", "manifests"]),
            ("drift plan 1%", ["plan", "manifests"]),
        ]
        for scenario, cmd in steps:
            if scenario.startswith("drift"):
                note = drift(sbx, fleet)
            run = measure(
                sbx, scenario, ["-c", CLI, *cmd, "--config", "reconciler.yaml"], timeout=args.timeout, profile=args.profile
            )
            runs.append(run)
            print(f"  {scenario}: exit {run.exit_code}, {run.total:,} requests, {run.wall:.1f} s", flush=True)
        if args.naive:
            run = measure(
                sbx, "naive loop", [str(Path(__file__).resolve()), "_naive", str(ws)], timeout=args.timeout, profile=None
            )
            runs.append(run)
            print(f"  naive loop: exit {run.exit_code}, {run.total:,} requests, {run.wall:.1f} s", flush=True)
    finally:
        sbx.stop()
    return runs, note


def run_scale(scale: float, args: argparse.Namespace, root: Path) -> tuple[Fleet, list[Run], list[tuple[str, bool | None, str]]]:
    fleet = Fleet.at(scale, region_size=args.region_size, players=args.players_per_event)
    ws = root / f"scale-{scale:g}"
    t0 = time.perf_counter()
    write_fleet(ws, fleet)
    (ws / "fleet.json").write_text(json.dumps(fleet.__dict__))
    print(f"\n[scale {scale:g}x] fleet written in {time.perf_counter() - t0:.1f} s to {ws}", flush=True)
    rounds: list[list[Run]] = []
    for n in range(args.repeat):
        if n:
            shutil.rmtree(ws / "state")
            print(f"  -- repeat {n + 1} of {args.repeat}", flush=True)
        runs, note = run_once(fleet, args, ws)
        rounds.append(runs)
    # per scenario, the run with the median wall time (all of its figures); every round runs the same scenarios
    runs = [sorted(same, key=lambda r: r.wall)[len(same) // 2] for same in zip(*rounds, strict=True)]
    for r in runs:
        r.minimal = minimal_calls(
            fleet, "cold apply" if r.scenario == "cold apply" else "naive loop" if r.scenario == "naive loop" else "plan"
        )
        r.bound = 0.0 if r.scenario == "naive loop" else lower_bound(r.minimal, DEFAULT_CONCURRENCY, args.latency_ms)
    if args.repeat > 1:
        print(f"  (each row: the median of {args.repeat} runs by wall time)")
    return fleet, runs, report(fleet, runs, args.latency_ms, note)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_naive":
        naive_loop(Path(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, nargs="+", default=[0.25], help="fleet sizes (1 = the issue's fleet)")
    ap.add_argument("--latency-ms", type=float, default=5.0, help="latency the emulators add to every request")
    ap.add_argument("--region-size", type=int, default=RECORDS_PER_REGION, help="records per indexed region")
    ap.add_argument("--players-per-event", type=int, default=PLAYERS_PER_EVENT, help="players bound to each event")
    ap.add_argument("--repeat", type=int, default=1, help="runs per scale (fresh sandbox each); rows show the median")
    ap.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive serial loop")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds any one child process may run")
    ap.add_argument(
        "--profile",
        choices=("cprofile", "py-spy"),
        default=None,
        help="profile the CLI runs (cprofile: *.prof; py-spy: *.pyspy.txt collapsed stacks, in the workspace)",
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep the workspaces under this folder")
    args = ap.parse_args()
    print(
        f"fleet bench: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()},"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    # the product's bytecode compiled once, as an installed wheel has it: with an editable install
    # and PYTHONDONTWRITEBYTECODE set, every CLI run would otherwise compile ~10k lines again
    import compileall

    import reconciler

    compileall.compile_dir(str(Path(reconciler.__file__).parent), quiet=1)
    root = Path(tempfile.mkdtemp(prefix="fleet-bench-")) if args.keep is None else args.keep.resolve()
    root.mkdir(parents=True, exist_ok=True)
    summary = []
    try:
        for scale in args.scale:
            fleet, runs, checks = run_scale(scale, args, root)
            summary.append((fleet, runs, checks))
            print("targets:")
            for name, ok, detail in checks:
                mark = "-" if ok is None else "met" if ok else "NOT MET"
                print(f"  [{mark:^7}] {name}: {detail}")
        if len(summary) > 1:
            print("\ngrowth (relative to the first scale): requests, client CPU, peak RSS, emulator CPU per scenario")
            base = {r.scenario: r for r in summary[0][1]}
            for fleet, runs, _ in summary[1:]:
                k = fleet.scale / summary[0][0].scale
                for r in runs:
                    b = base.get(r.scenario)
                    if b and b.total and b.cpu and b.rss_mb and b.emulator_cpu:
                        print(
                            f"  x{k:g} {r.scenario:<16} requests x{r.total / b.total:.2f}  client cpu x{r.cpu / b.cpu:.2f}"
                            f"  rss x{r.rss_mb / b.rss_mb:.2f}  emulator cpu x{r.emulator_cpu / b.emulator_cpu:.2f}"
                        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Benchmark: sharded runs (issue 26) against served emulators, each shard a process of the real CLI.

For N = 1, 2, 4 shards it prints:

- equivalence (a mixed fleet of every kind, with creates, updates and deletes): the union of the N
  shard plans equals the unsharded plan (every change, field by field); the merged Markdown equals
  the unsharded Markdown apart from its one line naming N; objects written by two shards (from the
  shards' apply journals: 0 expected);
- a TcaplusDB restore of --records records into an empty table at --latency-ms per request: the
  wall time T(N) of the whole sharded run (N plan processes at once, plan merge, N apply processes
  at once), the speed-up S(N) = T(1)/T(N) and S(N)/N, and the max/mean wall time of the shards'
  plan and apply processes. With --rps, the TcaplusDB connection has that requests_per_second budget:
  the N shards share it, so the speed-up flattens where the budget caps it.

Beside T(N) it prints the floors a run cannot beat, so a reader can tell what capped S(N)/N:
- wait: the TcaplusDB requests the run made, split over N shards, each keeping --concurrency in
  flight, at --latency-ms each: (requests / N / concurrency) x latency (with --rps, also
  requests / rps);
- CPU: the CPU seconds of every process of the run (the shard processes, `plan merge`, and this
  process, where the emulators answer) divided by the machine's CPUs. When T(N) sits on the CPU
  floor, the machine, not the method, capped the speed-up.

    python bench/shards.py --records 100000 --latency-ms 20 --skip-equivalence   # the issue's case
    python bench/shards.py --records 8000 --latency-ms 20
    python bench/shards.py --records 4000 --latency-ms 20 --rps 400 --skip-equivalence

The emulators run in this process on loopback (one event loop per vendor, each in its own thread);
this process does nothing else meanwhile (it waits for the shard processes), so they have its GIL to
themselves. Their CPU is in the CPU floor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from reconciler.sandbox.serve import Sandbox

REPO = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("reconciler"))
SHARD_VARS = ("RECONCILER_SHARD", "RECONCILER_SHARD_TOTAL", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL")


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its children that have been waited for."""
    return _own_cpu() + _kids_cpu()


def _own_cpu() -> float:
    """CPU seconds of this process: the emulators' (it does nothing else while the shards run)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _kids_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


class Workspace:
    def __init__(self, root: Path, *, concurrency: int, rps: float | None):
        self.root = root
        (root / "tables").mkdir(parents=True)
        (root / "tables" / "item_catalog.proto").write_text((REPO / "tables" / "item_catalog.proto").read_text())
        self.sbx = Sandbox(root / "state", tcaplus_tables={"item_catalog": root / "tables" / "item_catalog.proto"}).start()
        providers = self.sbx.providers()
        for p in providers.values():
            p.update({"retry_wait_initial": 0.01, "timeout": 60})
        providers["tcaplus"].update(
            {
                "tables": {"item_catalog": {"proto": "tables/item_catalog.proto"}},
                "concurrency": concurrency,
                **({"requests_per_second": rps} if rps else {}),
            }
        )
        cfg = {
            "apiVersion": "reconciler/v1",
            "kind": "Config",
            "providers": providers,
            "settings": {"max_change_ratio": 0.9, "threshold_min_existing": 5},
        }
        (root / "reconciler.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        (root / "manifests" / "secrets").mkdir(parents=True)
        (root / "manifests" / "secrets" / "pw").write_text("BenchShardPw7731")

    def write(self, rel: str, docs: list[dict[str, Any]]) -> None:
        (self.root / rel).write_text(yaml.safe_dump_all(docs, sort_keys=False))

    def faults(self, **knobs: Any) -> None:
        for s in self.sbx.servers.values():
            httpx.post(s.url + "/_sandbox/faults", json=knobs).raise_for_status()

    def env(self, **extra: str) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if k not in SHARD_VARS}, **extra}

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([EXE, *argv], cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise SystemExit(f"reconciler {' '.join(argv)} exited {r.returncode}: {r.stderr[-2000:]}")
        return r

    def at_once(self, argvs: list[list[str]]) -> list[float]:
        """Start every command at once; each one's wall time (all must exit 0)."""
        started = time.perf_counter()
        procs = [
            subprocess.Popen([EXE, *a], cwd=self.root, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for a in argvs
        ]
        walls = []
        for argv, p in zip(argvs, procs, strict=True):
            _, err = p.communicate(timeout=3600)
            walls.append(time.perf_counter() - started)
            if p.returncode != 0:
                raise SystemExit(f"reconciler {' '.join(argv)} exited {p.returncode}: {err[-2000:]}")
        return walls

    def one_by_one(self, argvs: list[list[str]]) -> list[float]:
        """Run the commands one after another, each alone on the machine (as each shard on its own
        CI runner or pod); each one's wall time (all must exit 0)."""
        walls = []
        for a in argvs:
            started = time.perf_counter()
            self.cli(*a)
            walls.append(time.perf_counter() - started)
        return walls

    def sharded(self, n: int, tag: str, *, runners: bool = False) -> dict[str, Any]:
        """Plan N shards, merge, apply N shards; timings and what each wrote. The N shards run at
        once on this machine, or with ``runners`` one after another, each alone, as on N machines:
        then the run's wall time is the slowest plan + the merge + the slowest apply."""
        cpu0, t0 = _cpu(), time.perf_counter()
        own0, kids0 = _own_cpu(), _kids_cpu()
        run_shards = self.one_by_one if runners else self.at_once
        plan_walls = run_shards([["plan", "--shard", f"{k}/{n}", "--out", f"{tag}-plan-{k}.json"] for k in range(1, n + 1)])
        # --force: the fleet's v1 -> v2 change updates most accounts (the one gate would refuse it)
        kids1, t1 = _kids_cpu(), time.perf_counter()
        merged = self.cli(
            "plan",
            "merge",
            *(f"{tag}-plan-{k}.json" for k in range(1, n + 1)),
            "--out",
            f"{tag}-planset.json",
            "--format",
            "markdown",
            "--force",
        )
        kids2, t2 = _kids_cpu(), time.perf_counter()
        apply_walls = run_shards(
            [["apply", f"{tag}-planset.json", "--shard", f"{k}/{n}", "--journal", f"{tag}-{k}.jsonl"] for k in range(1, n + 1)]
        )
        total, cpu = time.perf_counter() - t0, _cpu() - cpu0
        phases = {
            "plans": (t1 - t0, kids1 - kids0),
            "merge": (t2 - t1, kids2 - kids1),
            "applies": (t0 + total - t2, _kids_cpu() - kids2),
            "emulators": (total, _own_cpu() - own0),
        }
        if runners:  # N machines: the slowest shard of each phase, and the merge between them
            total = max(plan_walls) + (t2 - t1) + max(apply_walls)
        written = []
        for k in range(1, n + 1):
            lines = [json.loads(x) for x in (self.root / f"{tag}-{k}.jsonl").read_text().splitlines() if x.strip()]
            written.append({r["address"] for r in lines if r["type"] == "outcome" and r["status"] == "applied"})
        report = self.cli("apply", "merge-report", *(f"{tag}-{k}.jsonl" for k in range(1, n + 1)))
        return {
            "total": total,
            "cpu": cpu,
            "phases": phases,
            "plan_walls": plan_walls,
            "apply_walls": apply_walls,
            "written": written,
            "markdown": merged.stdout,
            "planset": json.loads((self.root / f"{tag}-planset.json").read_text()),
            "report": report.stdout.strip().splitlines()[-1],
        }

    def stop(self) -> None:
        self.sbx.stop()


def _fleet(ws: Workspace, accounts: range, records: range, *, remark: str, price: int) -> None:
    docs = [
        _doc(
            "ProxyAccount",
            f"bench{i:04d}",
            {"username": f"bench{i:04d}", "password": "file:secrets/pw", "productType": 9, "remark": remark},
        )
        for i in accounts
    ]
    docs.append(_doc("PruneScope", "bench", {"target": "ProxyAccount", "match": {"usernamePrefix": "bench"}}))
    ws.write("manifests/accounts.yaml", docs)
    ws.write(
        "manifests/records.yaml",
        [
            _doc(
                "TcaplusRecords",
                "r",
                {
                    "table": "item_catalog",
                    "mode": "whole",
                    "records": [{"region": 5, "item_id": i, "name": f"item {i}", "price": price + i} for i in records],
                    "prune": {"index": "by_region", "keys": {"region": 5}},
                },
            )
        ],
    )
    ws.write(
        "manifests/allowlist.yaml",
        [
            _doc(
                "IpAllowlist",
                "dc",
                {"productType": 14, "exclusive": True, "entries": [{"ip": f"10.9.0.{i + 1}"} for i in range(6)]},
            )
        ],
    )
    ws.write(
        "manifests/events.yaml",
        [
            _doc(
                "FreeSpinEvent",
                f"bench-{i}",
                {
                    "name": f"Bench event {i}",
                    "agent": "sandboxag",
                    "startTime": "2035-06-01T00:00:00+08:00",
                    "endTime": "2035-06-08T00:00:00+08:00",
                    "machineTypes": [14077],
                    "bet": "1",
                    "type": "NORMAL",
                    "times": 5,
                    "minWithdrawal": "-1",
                    "maxWithdrawal": "100",
                    "players": [f"player{10 * i + k + 1:05d}" for k in range(3)],
                },
            )
            for i in range(4)
        ],
    )


def equivalence(n: int, tmp: Path, scale: int) -> None:
    ws = Workspace(tmp / f"eq{n}", concurrency=8, rps=None)
    try:
        _fleet(ws, range(0, 6 * scale), range(1, 20 * scale + 1), remark="v1", price=10)
        ws.cli("apply", "--auto-approve", "--force")
        # creates, updates and deletes of every kind's objects
        _fleet(ws, range(scale, 7 * scale), range(2 * scale, 23 * scale + 1), remark="v2", price=20)
        ws.cli("plan", "--out", "single.json")
        single = json.loads((ws.root / "single.json").read_text())
        single_md = ws.cli("plan", "--format", "markdown").stdout
        run = ws.sharded(n, f"n{n}")
        union = sorted(json.dumps(c, sort_keys=True) for c in run["planset"]["changes"])
        same_plan = union == sorted(json.dumps(c, sort_keys=True) for c in single["changes"])
        line = next((x for x in run["markdown"].splitlines() if x.startswith("_Merged from")), "")
        same_md = bool(line) and run["markdown"].replace(line + "\n", "", 1) == single_md
        twice = sum(len(w) for w in run["written"]) - len(set().union(*run["written"]))
        print(
            f"N={n}: {len(single['changes'])} changes; union of shard plans == N=1 plan: {same_plan}; "
            f"Markdown == N=1 apart from the shard line: {same_md}; objects written by two shards: {twice}; "
            f"{run['report']}"
        )
    finally:
        ws.stop()


def restore(
    n: int, records: int, latency_ms: float, concurrency: int, rps: float | None, tmp: Path, *, runners: bool = False
) -> float:
    """One sharded restore; prints its figures and returns T(N)."""
    ws = Workspace(tmp / f"restore{n}{'r' if runners else ''}", concurrency=concurrency, rps=rps)
    try:
        ws.write(
            "manifests/records.yaml",
            [_doc("TcaplusRecords", "restore", {"table": "item_catalog", "mode": "whole", "file": "../restore.jsonl"})],
        )
        (ws.root / "restore.jsonl").write_text(
            "".join(
                json.dumps({"region": i // 1000, "item_id": i, "name": f"item {i}", "price": i % 1000}) + "\n"
                for i in range(records)
            )
        )
        ws.faults(latency_ms=latency_ms)
        tcaplus = ws.sbx.servers["tcaplus"].url
        httpx.post(tcaplus + "/_sandbox/stats/reset").raise_for_status()
        run = ws.sharded(n, f"r{n}", runners=runners)
        requests = sum(httpx.get(tcaplus + "/_sandbox/stats").json().values())
        wait = requests / n / concurrency * latency_ms / 1000
        if rps:
            wait = max(wait, requests / rps)
        cores = os.cpu_count() or 1
        pw, aw = run["plan_walls"], run["apply_walls"]
        floors = (
            f"floors: wait {wait:6.2f} s, CPU {run['cpu']:6.2f} s / {cores} = {run['cpu'] / cores:6.2f} s"
            if not runners
            else f"floor: wait {wait:6.2f} s"
        )
        print(
            f"N={n}: T={run['total']:7.2f} s  {floors} ({requests:,} TcaplusDB requests)  plan wall max/mean {max(pw):6.2f}/{sum(pw) / n:6.2f} s  "
            f"apply wall max/mean {max(aw):6.2f}/{sum(aw) / n:6.2f} s  {run['report']}",
            flush=True,
        )
        print(
            "      wall / CPU s by phase: "
            + ", ".join(f"{k} {w:.2f} / {c:.2f}" for k, (w, c) in run["phases"].items())
            + " (the emulators answer all through the run, in this process)",
            flush=True,
        )
        return float(run["total"])
    finally:
        ws.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=8000)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=8, help="TcaplusDB requests in flight per shard process")
    ap.add_argument("--rps", type=float, default=None, help="TcaplusDB requests_per_second budget (shared by the shards)")
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--skip-equivalence", action="store_true")
    ap.add_argument(
        "--topology",
        choices=["one-machine", "runners", "both"],
        default="both",
        help="restore shards all at once on this machine, one after another each alone (as each on its own "
        "runner or pod: T(N) = slowest plan + merge + slowest apply), or both",
    )
    ap.add_argument(
        "--fleet-scale",
        type=int,
        default=10,
        help="equivalence fleet: 6 x this many accounts, 20 x this many records (default 60 and 200)",
    )
    args = ap.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPU(s), load average {load} at the start (shards compete with the emulators for them)")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_equivalence:
            print("== equivalence: a fleet of every kind (creates, updates, deletes), N shard processes")
            for n in args.shards:
                equivalence(n, Path(tmp), args.fleet_scale)
        budget = f", requests_per_second {args.rps:g} shared" if args.rps else ", no rate budget"
        print(
            f"== restore: {args.records:,} TcaplusDB records into an empty table, {args.latency_ms:g} ms per request, "
            f"{args.concurrency} in flight per shard{budget}"
        )
        topologies = {
            "one-machine": ["one machine: the N shards at once on this machine's CPUs"],
            "runners": ["N runners: each shard alone, one after another (as each on its own runner or pod)"],
        }
        chosen = list(topologies) if args.topology == "both" else [args.topology]
        results: dict[str, dict[int, float]] = {}
        for topology in chosen:
            print(f"-- {topologies[topology][0]}")
            runners = topology == "runners"
            results[topology] = {}
            for n in args.shards:
                if runners and n == 1 and "one-machine" in results and 1 in results["one-machine"]:
                    results[topology][1] = results["one-machine"][1]  # one shard is alone either way
                    print("N=1: as above (one shard runs alone on either topology)")
                    continue
                results[topology][n] = restore(
                    n, args.records, args.latency_ms, args.concurrency, args.rps, Path(tmp), runners=runners
                )
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for topology, times in results.items():
            base = times.get(1)
            if base:
                for n, t in times.items():
                    print(f"{topology}: N={n}: S(N) = {base / t:5.2f}  S(N)/N = {base / t / n:5.2f}")


if __name__ == "__main__":
    main()

"""Fault and crash campaigns against the three emulators, with a real ``reconciler apply`` process.

Fault campaign: for each seed, a fresh sandbox and a few hundred objects of every kind
(ProxyAccount with follow-up settings, IpAllowlist, TcaplusRecords with a prune scope,
FreeSpinEvent); every emulator injects ``--error-rate`` errors and drops ``--drop-rate`` of the
write replies (after the write took effect). ``apply`` is repeated until a plan with the faults off
is empty. Crash campaign: the desired state grows at every round (new accounts with follow-up
settings, new addresses, changed records, a new free-spin event); ``apply --journal`` is killed
(SIGKILL) at a random moment (every other kill during the accounts' follow-up changes) and the run is finished with ``apply --resume`` — without --force.

Prints per seed / overall: converged, applies needed, duplicates, lost, recoveries that needed
--force (and how many plain re-applies the thresholds would have refused).

    python bench/fault_campaign.py --seeds 5 --kills 30
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.sandbox.serve import Sandbox

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("reconciler"))
PASSWORD = "CampaignPw7731"
AGENT = "sandboxag"


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@dataclass
class Fleet:
    """A working folder, a running sandbox and a config pointing at it."""

    root: Path
    accounts: int = 120
    ips: int = 60
    records: int = 150
    events: int = 6
    retry_attempts: int = 4
    rounds: list[int] = field(default_factory=list)  # crash-campaign rounds applied so far
    sbx: Sandbox | None = None

    def start(self) -> "Fleet":
        (self.root / "tables").mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "tables" / "item_catalog.proto", self.root / "tables" / "item_catalog.proto")
        self.sbx = Sandbox(
            self.root / "state", tcaplus_tables={"item_catalog": self.root / "tables" / "item_catalog.proto"}
        ).start()
        providers = self.sbx.providers()
        for p in providers.values():
            p.update({"retry_wait_initial": 0.01, "retry_attempts": self.retry_attempts, "timeout": 20})
        providers["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
        cfg = {
            "apiVersion": "reconciler/v1",
            "kind": "Config",
            "providers": providers,
            "settings": {"max_change_ratio": 0.3, "threshold_min_existing": 10},
        }
        (self.root / "reconciler.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        (self.root / "manifests" / "secrets").mkdir(parents=True, exist_ok=True)
        (self.root / "manifests" / "secrets" / "pw").write_text(PASSWORD, encoding="utf-8")
        self.sentinels()
        self.write_manifests()
        return self

    def stop(self) -> None:
        if self.sbx is not None:
            self.sbx.stop()

    # -- desired state ----------------------------------------------------------------------
    def write_manifests(self) -> None:
        m = self.root / "manifests"
        docs = []
        for i in range(self.accounts):
            spec: dict[str, Any] = {
                "username": f"camp{i:04d}",
                "password": "file:secrets/pw",
                "productType": 9,
                "remark": f"team{i % 3}",
            }
            if i % 3 == 0:
                spec["trafficLimitGb"] = 5 + i % 7  # set by the follow-up change after add
            if i % 6 == 1:
                spec["enabled"] = False
            docs.append(_doc("ProxyAccount", f"camp{i:04d}", spec))
        if self.rounds:
            # the current crash round's accounts (earlier rounds' are left alone: undeclared and
            # outside the prune scope, so the threshold's "existing" stays small)
            r = self.rounds[-1]
            for j in range(40):
                docs.append(
                    _doc(
                        "ProxyAccount",
                        f"r{r:02d}u{j:02d}",
                        {
                            "username": f"crash{r:02d}u{j:02d}",
                            "password": "file:secrets/pw",
                            "productType": 9,
                            "remark": "crash",
                            "trafficLimitGb": 3,
                        },
                    )
                )
        docs.append(_doc("PruneScope", "camp-accounts", {"target": "ProxyAccount", "match": {"usernamePrefix": "camp"}}))
        (m / "accounts.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        n_ips = self.ips + 5 * len(self.rounds)
        entries = [{"ip": f"10.9.{i // 250}.{i % 250 + 1}", "remark": f"site{i % 2}"} for i in range(n_ips)]
        (m / "allowlist.yaml").write_text(
            yaml.safe_dump(
                _doc("IpAllowlist", "dc", {"productType": 14, "exclusive": True, "entries": entries}), sort_keys=False
            ),
            encoding="utf-8",
        )
        bump = {k: len(self.rounds) for k in range(3 * (len(self.rounds) % 10), 3 * (len(self.rounds) % 10) + 3)}
        lines = [
            json.dumps(
                {"region": 7, "item_id": 7000 + i, "name": f"item {i}", "price": 100 + i + bump.get(i, 0), "tags": ["camp"]}
            )
            for i in range(self.records)
        ]
        (self.root / "data").mkdir(exist_ok=True)
        (self.root / "data" / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (m / "records.yaml").write_text(
            yaml.safe_dump(
                _doc(
                    "TcaplusRecords",
                    "items",
                    {
                        "table": "item_catalog",
                        "mode": "whole",
                        "file": "../data/items.jsonl",
                        "prune": {"index": "by_region", "keys": {"region": 7}},
                    },
                ),
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        events = []
        for i in [*range(self.events), *(100 + r for r in self.rounds)]:
            events.append(
                _doc(
                    "FreeSpinEvent",
                    f"camp-{i}",
                    {
                        "name": f"Camp event {i}",
                        "agent": AGENT,
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
            )
        (m / "events.yaml").write_text(yaml.safe_dump_all(events, sort_keys=False), encoding="utf-8")

    def sentinels(self) -> None:
        """Objects outside every scope: they must survive everything."""
        assert self.sbx is not None
        bp = self.sbx.servers["bestproxy"].url
        key = self.sbx._read("bestproxy_app_key")
        httpx.post(
            bp + "/gateway/whitelist-account/add",
            json={"app_key": key, "accounts": ",".join(f"keep{i}:KeepPass{i}1" for i in range(5)), "product_type": 9},
        )
        tc = TcaplusClient(self.sbx.servers["tcaplus"].url, app_id=2, zone_id=3, password=self.sbx._read("tcaplus_password"))
        for i in range(5):
            tc.set("item_catalog", {"region": 8, "item_id": 8000 + i, "name": "keep", "price": 1})
        tc.close()

    # -- running ----------------------------------------------------------------------------
    def cmd(self, *args: str) -> list[str]:
        return [EXE, *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=self.root, capture_output=True, text=True, timeout=timeout)

    def faults(self, **knobs: Any) -> None:
        assert self.sbx is not None
        for name, s in self.sbx.servers.items():
            body = dict(knobs)
            if "seed" in body:
                body["seed"] = body["seed"] * 10 + len(name)
            httpx.post(s.url + "/_sandbox/faults", json=body).raise_for_status()

    def clean(self) -> bool:
        """A plan with the faults off shows no change."""
        self.faults(error_rate=0.0, drop_reply_rate=0.0, latency_ms=0)
        res = self.run("plan", "--detailed-exitcode")
        return res.returncode == 0

    # -- checks -----------------------------------------------------------------------------
    def _db(self, name: str) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "state" / f"{name}.sqlite")

    def duplicates(self) -> int:
        with self._db("jdb") as db:
            events = db.execute(
                "SELECT COUNT(*) - COUNT(DISTINCT agent || '|' || name) FROM events WHERE terminated = 0"
            ).fetchone()[0]
        with self._db("bestproxy") as db:
            ips = db.execute("SELECT COUNT(*) - COUNT(DISTINCT ip || '|' || product_type) FROM proxy_ips").fetchone()[0]
            accounts = db.execute("SELECT COUNT(*) - COUNT(DISTINCT username) FROM accounts").fetchone()[0]
        return int(events) + int(ips) + int(accounts)

    def lost(self) -> int:
        """Sentinels gone, plus declared objects missing (after a clean plan this is 0 unless a
        sentinel or an out-of-scope object went)."""
        with self._db("bestproxy") as db:
            names = {r[0] for r in db.execute("SELECT username FROM accounts")}
        missing = sum(f"keep{i}" not in names for i in range(5))
        missing += sum(f"camp{i:04d}" not in names for i in range(self.accounts))
        assert self.sbx is not None
        tc = TcaplusClient(self.sbx.servers["tcaplus"].url, app_id=2, zone_id=3, password=self.sbx._read("tcaplus_password"))
        try:
            missing += sum(tc.get("item_catalog", {"region": 8, "item_id": 8000 + i}) is None for i in range(5))
        finally:
            tc.close()
        return missing


def fault_campaign(
    seed: int, *, base: Path, max_applies: int, error_rate: float, drop_rate: float, sizes: dict[str, int]
) -> dict[str, Any]:
    fleet = Fleet(base / f"seed{seed}", **sizes).start()
    try:
        applies, converged, codes, failures = 0, False, [], []
        while applies < max_applies:
            fleet.faults(error_rate=error_rate, drop_reply_rate=drop_rate, seed=seed * 100 + applies)
            res = fleet.run("apply", "--auto-approve")
            applies += 1
            codes.append(res.returncode)
            failures += [
                line[:160]
                for line in res.stdout.splitlines() + res.stderr.splitlines()
                if line.startswith(("FAILED", "UNKNOWN", "error:"))
            ][:3]
            if fleet.clean():
                converged = True
                break
        return {
            "seed": seed,
            "converged": converged,
            "applies": applies,
            "exit_codes": codes,
            "failures": failures,
            "duplicates": fleet.duplicates(),
            "lost": fleet.lost(),
        }
    finally:
        fleet.stop()


def crash_campaign(kills: int, *, base: Path, seed: int, sizes: dict[str, int], max_delay: float) -> dict[str, Any]:
    rng = random.Random(seed)
    fleet = Fleet(base / "crash", **sizes).start()
    out = {
        "kills": 0,
        "finished_before_kill": 0,
        "recoveries": 0,
        "needed_force": 0,
        "plain_reapply_would_need_force": 0,
        "not_converged": 0,
        "resume_exit_codes": {},
    }
    try:
        res = fleet.run("apply", "--auto-approve")
        assert fleet.clean(), res.stdout + res.stderr
        # calibration: how long one round's apply takes here (not killed), so kills land anywhere in it
        fleet.rounds.append(0)
        fleet.write_manifests()
        fleet.faults(latency_ms=40)
        t0 = time.perf_counter()
        res = fleet.run("apply", "--auto-approve", "--force")
        duration = time.perf_counter() - t0 if max_delay <= 0 else max_delay
        out["kill_window_s"] = round(duration, 2)
        assert fleet.clean(), res.stdout + res.stderr
        for k in range(kills):
            fleet.rounds.append(k + 1)
            fleet.write_manifests()
            fleet.faults(latency_ms=40)
            journal = fleet.root / f"journal-{k}.jsonl"
            assert fleet.sbx is not None
            bp = fleet.sbx.servers["bestproxy"].url
            httpx.post(bp + "/_sandbox/stats/reset")
            proc = subprocess.Popen(
                fleet.cmd("apply", "--auto-approve", "--journal", str(journal)),
                cwd=fleet.root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if k % 2:
                # every other kill lands at a random moment of the accounts' follow-up changes
                # (between `add` and `change`: the case the thresholds used to refuse)
                deadline = time.monotonic() + 60
                while (
                    httpx.get(bp + "/_sandbox/stats").json().get("POST /gateway/proxy-account/change", 0) < 1
                    and proc.poll() is None
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.5))
            else:
                time.sleep(rng.uniform(0.1 * duration, duration))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                out["kills"] += 1
            else:
                out["finished_before_kill"] += 1
            proc.wait(timeout=60)
            fleet.faults(latency_ms=0)
            plan = fleet.run("plan")
            if "unsafe:" in plan.stdout:
                out["plain_reapply_would_need_force"] += 1
            if not journal.exists():
                res = fleet.run("apply", "--auto-approve")  # killed before the journal was opened
            else:
                res = fleet.run("apply", "--resume", str(journal), "--auto-approve")
            out["recoveries"] += 1
            codes = out["resume_exit_codes"]
            codes[res.returncode] = codes.get(res.returncode, 0) + 1
            if res.returncode != 0 and "safety thresholds" in res.stderr:
                out["needed_force"] += 1
                fleet.run("apply", "--auto-approve", "--force")
            if not fleet.clean():
                out["not_converged"] += 1
                fleet.run("apply", "--auto-approve")
        out["duplicates"] = fleet.duplicates()
        out["lost"] = fleet.lost()
        return out
    finally:
        fleet.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--error-rate", type=float, default=0.2)
    ap.add_argument("--drop-rate", type=float, default=0.2)
    ap.add_argument("--max-applies", type=int, default=6)
    ap.add_argument("--accounts", type=int, default=120)
    ap.add_argument("--ips", type=int, default=60)
    ap.add_argument("--records", type=int, default=150)
    ap.add_argument("--events", type=int, default=6)
    ap.add_argument("--retry-attempts", type=int, default=4)
    ap.add_argument(
        "--max-kill-delay",
        type=float,
        default=0,
        help="kill within this many seconds of the start (default: the measured length of one apply)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args(argv)
    sizes = {
        "accounts": args.accounts,
        "ips": args.ips,
        "records": args.records,
        "events": args.events,
        "retry_attempts": args.retry_attempts,
    }
    results: dict[str, Any] = {"objects": args.accounts + args.ips + args.records + args.events, "fault": [], "crash": None}
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as tmp:
        base = Path(tmp)
        for seed in range(1, args.seeds + 1):
            t0 = time.perf_counter()
            r = fault_campaign(
                seed, base=base, max_applies=args.max_applies, error_rate=args.error_rate, drop_rate=args.drop_rate, sizes=sizes
            )
            r["wall_s"] = round(time.perf_counter() - t0, 1)
            results["fault"].append(r)
            if not args.json:
                print(
                    f"seed {seed}: converged={r['converged']} applies={r['applies']} exit codes={r['exit_codes']} "
                    f"duplicates={r['duplicates']} lost={r['lost']} ({r['wall_s']} s)",
                    flush=True,
                )
                for line in r["failures"]:
                    print(f"    {line}")
        if args.kills:
            t0 = time.perf_counter()
            c = crash_campaign(
                args.kills,
                base=base,
                seed=args.seeds,
                max_delay=args.max_kill_delay,
                sizes={**sizes, "accounts": 20, "records": 30, "events": 2},
            )
            c["wall_s"] = round(time.perf_counter() - t0, 1)
            results["crash"] = c
    if args.json:
        print(json.dumps(results))
        return 0
    fault = results["fault"]
    if fault:
        print(
            f"fault campaign: {sum(r['converged'] for r in fault)}/{len(fault)} seeds converged; applies needed "
            f"max {max(r['applies'] for r in fault)}; duplicates {sum(r['duplicates'] for r in fault)}; "
            f"lost {sum(r['lost'] for r in fault)} ({results['objects']} objects per seed, "
            f"{args.error_rate:.0%} errors, {args.drop_rate:.0%} lost replies)"
        )
    c = results["crash"]
    if c:
        print(
            f"crash campaign: {c['kills']} kills ({c['finished_before_kill']} runs finished before the kill); "
            f"{c['recoveries']} recoveries, {c['needed_force']} needed --force "
            f"(a plain re-apply would have needed it {c['plain_reapply_would_need_force']} times); "
            f"not converged after recovery {c['not_converged']}; duplicates {c['duplicates']}; lost {c['lost']}; "
            f"resume exit codes {c['resume_exit_codes']} ({c['wall_s']} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

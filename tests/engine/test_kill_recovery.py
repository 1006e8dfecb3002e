"""Recovery without --force: a real ``reconciler apply`` (a subprocess) is killed (SIGKILL) at a
random point of a long apply over the three vendors, and the same apply run again — plainly, or
with ``--resume`` when the killed run kept a journal — converges without ``--force``, exits 0 and
leaves no duplicate in the emulators' state; a real mass change still trips the thresholds.

The kill point is a number of vendor requests drawn from a seeded generator (the emulators count
requests as they arrive), so every trial is repeatable and the trials together cover the plan's
reads, the accounts' ``add``, their follow-up changes and disables, the allowlist, the records and
the free-spin events (docs/resilient-apply.md, "Finishing an interrupted or crashed run")."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.sandbox.serve import Sandbox
from tests.support import CliWorkspace

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("reconciler"))
AGENT = "sandboxag"
ACCOUNTS = 24
RECORDS = 20
EVENTS = 3
FULL_RUN_REQUESTS = 55  # an uninterrupted apply sends more (checked below): kills are drawn below it


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


class Fleet(CliWorkspace):
    """A folder whose config points at a sandbox running in this process (it outlives the kill)."""

    sbx: Sandbox

    def start(self) -> "Fleet":
        self.write("tables/item_catalog.proto", (ROOT / "tables" / "item_catalog.proto").read_text(encoding="utf-8"))
        self.sbx = Sandbox(
            self.root / "state", tcaplus_tables={"item_catalog": self.root / "tables" / "item_catalog.proto"}
        ).start()
        providers = self.sbx.providers()
        for p in providers.values():
            p.update({"retry_wait_initial": 0.01, "timeout": 20})
        providers["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
        # thresholds any half-finished run of these manifests would trip, were its creates counted
        cfg = {
            "apiVersion": "reconciler/v1",
            "kind": "Config",
            "providers": providers,
            "settings": {"max_change_ratio": 0.3, "threshold_min_existing": 5},
        }
        self.write("reconciler.yaml", yaml.safe_dump(cfg, sort_keys=False))
        self.write("manifests/secrets/pw", "KillTestPw7731")
        return self

    def manifests(self, *, limit: int = 3) -> None:
        docs = []
        for i in range(ACCOUNTS):
            spec: dict[str, Any] = {
                "username": f"kill{i:03d}",
                "password": "file:secrets/pw",
                "productType": 9,
                "remark": f"team{i % 2}",
                "trafficLimitGb": limit,
            }
            if i % 4 == 1:
                spec["enabled"] = False
            docs.append(_doc("ProxyAccount", f"kill{i:03d}", spec))
        docs.append(_doc("PruneScope", "kill-accounts", {"target": "ProxyAccount", "match": {"usernamePrefix": "kill"}}))
        self.write("manifests/accounts.yaml", yaml.safe_dump_all(docs, sort_keys=False))
        self.write(
            "manifests/allowlist.yaml",
            yaml.safe_dump(
                _doc(
                    "IpAllowlist",
                    "dc",
                    {"productType": 14, "exclusive": True, "entries": [{"ip": f"10.7.0.{i + 1}"} for i in range(8)]},
                )
            ),
        )
        lines = [
            json.dumps({"region": 7, "item_id": 7000 + i, "name": f"item {i}", "price": 100 + i, "tags": ["k"]})
            for i in range(RECORDS)
        ]
        self.write("data/items.jsonl", "\n".join(lines) + "\n")
        self.write(
            "manifests/records.yaml",
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
                )
            ),
        )
        events = [
            _doc(
                "FreeSpinEvent",
                f"kill-{i}",
                {
                    "name": f"Kill event {i}",
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
            for i in range(EVENTS)
        ]
        self.write("manifests/events.yaml", yaml.safe_dump_all(events, sort_keys=False))

    def faults(self, **knobs: Any) -> None:
        for s in self.sbx.servers.values():
            httpx.post(s.url + "/_sandbox/faults", json=knobs).raise_for_status()

    def requests(self) -> int:
        return sum(sum(httpx.get(s.url + "/_sandbox/stats").json().values()) for s in self.sbx.servers.values())

    def state(self) -> dict[str, Any]:
        return {name: httpx.get(s.url + "/_sandbox/state").json() for name, s in self.sbx.servers.items()}

    def killed_apply(self, after_requests: int, *args: str) -> bool:
        """Start ``apply --auto-approve ARGS`` and kill it once the emulators have received
        ``after_requests`` requests; whether it was killed before it finished."""
        self.faults(latency_ms=25)  # so that the run lasts long enough to be cut anywhere
        start = self.requests()
        proc = subprocess.Popen(
            [EXE, "apply", "--auto-approve", *args], cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and self.requests() - start < after_requests and time.monotonic() < deadline:
            time.sleep(0.005)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        self.faults(latency_ms=0)
        return killed


@pytest.fixture
def kill_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.chdir(tmp_path)
    f = Fleet(tmp_path).start()
    yield f
    f.sbx.stop()


def duplicates(state: dict[str, Any]) -> dict[str, int]:
    """Objects present more than once, by what identifies them to a person."""
    live_events = Counter((e["agent"], e["name"]) for e in state["jdb"]["events"] if not e["terminated"])
    accounts = Counter(a["username"] for a in state["bestproxy"]["accounts"])
    ips = Counter((i["ip"], i["product_type"]) for i in state["bestproxy"]["proxy_ips"])
    records = Counter((r["tbl"], r["pk"]) for r in state["tcaplus"]["tcaplus_records"])
    return {str(k): n for c in (live_events, accounts, ips, records) for k, n in c.items() if n > 1}


@pytest.mark.parametrize("seed", range(10))
def test_an_apply_killed_at_a_random_point_converges_when_run_again_without_force(kill_fleet: Fleet, seed: int) -> None:
    rng = random.Random(seed)
    journaled = seed % 2 == 1  # half the trials keep a journal and are finished with --resume
    kill_fleet.manifests()
    kill_at = rng.randrange(FULL_RUN_REQUESTS)
    killed = kill_fleet.killed_apply(kill_at, *(["--journal", "run.jsonl"] if journaled else []))

    journal = kill_fleet.root / "run.jsonl"
    if journaled and journal.exists():
        res = kill_fleet.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    else:
        res = kill_fleet.cli("apply", "--auto-approve")
    assert res.exit_code == 0, f"kill after {kill_at} requests (killed: {killed})\n" + res.stdout + res.stderr
    assert "exceeds the safety thresholds" not in res.stderr and "unsafe:" not in res.stdout
    plan = kill_fleet.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    state = kill_fleet.state()
    assert duplicates(state) == {}
    assert len(state["bestproxy"]["accounts"]) == ACCOUNTS
    assert sum(not e["terminated"] for e in state["jdb"]["events"]) == EVENTS
    assert len(state["tcaplus"]["tcaplus_records"]) == RECORDS


def test_the_trials_kill_runs_in_the_middle(kill_fleet: Fleet) -> None:
    """The kill points above are inside a run: an uninterrupted apply sends more requests than
    the largest one drawn, so the trials are not runs that had already finished."""
    kill_fleet.manifests()
    start = kill_fleet.requests()
    res = kill_fleet.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert kill_fleet.requests() - start > FULL_RUN_REQUESTS


def test_a_kill_between_add_and_the_follow_ups_needs_no_force_and_a_mass_change_still_does(kill_fleet: Fleet) -> None:
    kill_fleet.manifests()
    # killed after the plan's reads and the accounts' add, before most follow-up changes
    kill_fleet.faults(latency_ms=150)
    proc = subprocess.Popen(
        [EXE, "apply", "--auto-approve"], cwd=kill_fleet.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    bp = kill_fleet.sbx.servers["bestproxy"].url
    deadline = time.monotonic() + 60
    while (
        httpx.get(bp + "/_sandbox/stats").json().get("POST /gateway/proxy-account/change", 0) < 2
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    kill_fleet.faults(latency_ms=0)
    accounts = {a["username"]: a for a in kill_fleet.state()["bestproxy"]["accounts"]}
    unfinished = [n for n, a in accounts.items() if a["limit_flow"] != 3]
    # created, follow-ups not made: more than the thresholds allow (30% of 24), were they counted
    assert len(accounts) == ACCOUNTS and len(unfinished) >= 8

    plan = kill_fleet.cli("plan")
    assert "unsafe:" not in plan.stdout
    assert "finishes a create made less than an hour ago" in plan.stdout
    res = kill_fleet.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert {a["limit_flow"] for a in kill_fleet.state()["bestproxy"]["accounts"]} == {3}

    # a real mass change of the same accounts (a new limit for all) is counted: --force is needed
    kill_fleet.manifests(limit=4)
    res = kill_fleet.cli("apply", "--auto-approve")
    assert res.exit_code == 1 and "safety thresholds" in res.stderr
    assert {a["limit_flow"] for a in kill_fleet.state()["bestproxy"]["accounts"]} == {3}


def test_old_accounts_at_a_new_accounts_values_are_counted(kill_fleet: Fleet) -> None:
    """Accounts created more than an hour ago that still have no limit: setting one on all of
    them is a mass change, not a create to finish."""
    emu = kill_fleet.sbx.servers["bestproxy"].emulator
    emu.clock = lambda: time.time() - 2 * 3600  # type: ignore[attr-defined]
    kill_fleet.manifests(limit=0)
    assert kill_fleet.cli("apply", "--auto-approve").exit_code == 0
    emu.clock = time.time  # type: ignore[attr-defined]
    kill_fleet.manifests(limit=5)
    res = kill_fleet.cli("apply", "--auto-approve")
    assert res.exit_code == 1 and "safety thresholds" in res.stderr

"""Failure isolation across vendors (all three emulators): a kind whose live state cannot be read
fails alone — the others plan and apply — and nothing is pruned on an incomplete read. Plus a
tiny bounded run of the fault and crash campaigns of bench/fault_campaign.py."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fault_campaign", ROOT / "bench" / "fault_campaign.py")
assert _spec is not None and _spec.loader is not None
campaign: Any = importlib.util.module_from_spec(_spec)
sys.modules["fault_campaign"] = campaign
_spec.loader.exec_module(campaign)


@pytest.fixture
def campaign_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    f = campaign.Fleet(tmp_path, accounts=6, ips=3, records=6, events=1).start()
    monkeypatch.chdir(tmp_path)
    yield f
    f.stop()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def tcaplus_faults(campaign_fleet: Any, **knobs: object) -> None:
    httpx.post(campaign_fleet.sbx.servers["tcaplus"].url + "/_sandbox/faults", json=knobs).raise_for_status()


def test_a_vendor_that_cannot_be_read_fails_only_its_kind(campaign_fleet: Any) -> None:
    tcaplus_faults(campaign_fleet, error_rate=1.0)
    plan = run("plan")
    assert plan.exit_code == 1
    assert "error: TcaplusRecords: live state could not be read, so it was not planned: tcaplus" in plan.stderr
    assert "+ create ProxyAccount/camp0000" in plan.stdout and "+ create FreeSpinEvent/camp-0" in plan.stdout
    # listed as not read (the plan says it is incomplete), with no change of it
    assert "! TcaplusRecords: live state not read: tcaplus" in plan.stdout and "== tcaplus" not in plan.stdout
    assert "Incomplete: 1 kind(s) not read." in plan.stdout and "No changes" not in plan.stdout
    saved = run("plan", "--out", "plan.json")
    assert saved.exit_code == 1 and "the plan is incomplete; not saved to plan.json" in saved.stderr
    assert not (campaign_fleet.root / "plan.json").exists()

    res = run("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "error: TcaplusRecords: live state could not be read" in res.stderr
    assert "ok      create ProxyAccount/camp0000" in res.stdout and "ok      create IpAllowlist/14" in res.stdout
    assert "ok      create FreeSpinEvent/camp-0" in res.stdout
    assert "Apply:" in res.stdout and " 0 failed" in res.stdout

    tcaplus_faults(campaign_fleet, error_rate=0.0)
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("plan", "--detailed-exitcode").exit_code == 0


def test_nothing_is_pruned_on_an_incomplete_read(campaign_fleet: Any) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    # an undeclared record inside the prune scope, and the scope's read fails after its retries
    tc = campaign.TcaplusClient(
        campaign_fleet.sbx.servers["tcaplus"].url, app_id=2, zone_id=3, password=campaign_fleet.sbx._read("tcaplus_password")
    )
    try:
        tc.set("item_catalog", {"region": 7, "item_id": 7999, "name": "stray", "price": 1})
        tcaplus_faults(campaign_fleet, fail_next=4)  # exactly the attempts of the first read (the scope)
        plan = run("plan")
        assert plan.exit_code == 1 and "TcaplusRecords: live state could not be read" in plan.stderr
        assert "delete TcaplusRecords" not in plan.stdout
        tcaplus_faults(campaign_fleet, fail_next=4)
        res = run("apply", "--auto-approve")
        assert res.exit_code == 4 and "ok      delete" not in res.stdout
        assert tc.get("item_catalog", {"region": 7, "item_id": 7999}) is not None
        # read completely, the same record is pruned
        res = run("apply", "--auto-approve")
        assert res.exit_code == 0 and "ok      delete TcaplusRecords/item_catalog|7|7999" in res.stdout
    finally:
        tc.close()


def test_tiny_fault_and_crash_campaigns(tmp_path: Path) -> None:
    sizes = {"accounts": 8, "ips": 4, "records": 8, "events": 1}
    r = campaign.fault_campaign(1, base=tmp_path, max_applies=3, error_rate=0.2, drop_rate=0.2, sizes=sizes)
    assert r["converged"] and r["applies"] <= 3 and r["duplicates"] == 0 and r["lost"] == 0, r
    c = campaign.crash_campaign(1, base=tmp_path, seed=1, sizes={**sizes, "accounts": 4, "records": 4}, max_delay=1.5)
    assert c["recoveries"] == 1 and c["needed_force"] == 0 and c["not_converged"] == 0, c
    assert c["duplicates"] == 0 and c["lost"] == 0, c


def test_vendors_are_applied_concurrently(tmp_path: Path) -> None:
    # BestProxy is slow; its kinds come first in the apply order, yet TcaplusDB's outcomes are
    # printed before BestProxy's first write has been answered: one worker per vendor
    fleet = campaign.Fleet(tmp_path, accounts=1, ips=1, records=4, events=1).start()
    try:
        _applied_concurrently(fleet)
    finally:
        fleet.stop()


def _applied_concurrently(campaign_fleet: Any) -> None:
    bp = campaign_fleet.sbx.servers["bestproxy"].url
    # BestProxy's account add is answered only once the test releases it (no race against a clock)
    httpx.post(bp + "/_sandbox/faults", json={"hold_replies": ["/gateway/whitelist-account/add"]}).raise_for_status()
    httpx.post(bp + "/_sandbox/stats/reset").raise_for_status()  # the sentinels' add
    import subprocess

    proc = subprocess.Popen(
        [campaign.EXE, "apply", "--auto-approve"],
        cwd=campaign_fleet.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # a run that printed nothing until the end would wait forever: released after 60 s, it fails below
    release = {"hold_replies": []}
    watchdog = threading.Timer(60, lambda: httpx.post(bp + "/_sandbox/faults", json=release))
    watchdog.start()
    try:
        assert proc.stdout is not None
        adds_then = None
        for line in proc.stdout:
            if line.startswith("ok      create TcaplusRecords/"):
                adds_then = httpx.get(bp + "/_sandbox/stats/answered").json().get("POST /gateway/whitelist-account/add", 0)
                break
    finally:
        watchdog.cancel()
        httpx.post(bp + "/_sandbox/faults", json=release).raise_for_status()
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, rest + err
    assert adds_then == 0
    assert "ok      create ProxyAccount/camp0000" in rest


def test_a_saved_plan_applies_what_can_be_checked_and_fails_the_rest(campaign_fleet: Any) -> None:
    assert run("plan", "--out", "plan.json").exit_code == 0
    tcaplus_faults(campaign_fleet, error_rate=1.0)
    res = run("apply", "plan.json", "--journal", "run.jsonl")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "FAILED  create TcaplusRecords/item_catalog|7|7000: live state could not be read: tcaplus" in res.stdout
    assert "ok      create ProxyAccount/camp0000" in res.stdout and "ok      create FreeSpinEvent/camp-0" in res.stdout
    tcaplus_faults(campaign_fleet, error_rate=0.0)
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("plan", "--detailed-exitcode").exit_code == 0

"""Issue 23 item 2 with BestProxy: an object a saved plan changes that was altered out of band
(deleted, edited) is STALE (exit 3) unless its live state already equals the plan's target
(then ``skipped``, exit 0). The JDB case (an event terminated out of band) is in
tests/jdb/test_honest_summaries.py."""

from __future__ import annotations

from tests.engine.conftest import Workspace, accounts_file


def _planned_update(bp: Workspace) -> None:
    accounts_file(bp, ["game01", "game02"], remark="old")
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    accounts_file(bp, ["game01", "game02"], remark="new")
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0


def test_an_update_of_an_account_deleted_out_of_band_is_stale(bp: Workspace) -> None:
    _planned_update(bp)
    bp.api("/gateway/whitelist-account/delete", accounts="game02")  # another operator
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 3, r.stdout + r.stderr
    assert "STALE   update ProxyAccount/game02: live object changed since the plan was made" in r.stdout
    assert "ok      update ProxyAccount/game01" in r.stdout
    md = bp.cli("apply", "plan.json", "--format", "markdown")  # again: game01 is done by now
    assert md.exit_code == 3, md.stdout + md.stderr
    assert "| stale | update <code>ProxyAccount/game02</code> | live object changed since the plan was made |" in md.stdout
    assert "| skipped | update <code>ProxyAccount/game01</code> | already in the desired state |" in md.stdout
    assert "game02" not in bp.accounts()  # not re-created by a plan that only updated it


def test_an_update_edited_out_of_band_to_its_target_is_skipped(bp: Workspace) -> None:
    _planned_update(bp)
    bp.api("/gateway/whitelist-account/change-remark", account="game02", remark="new")  # someone did it by hand
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "skipped update ProxyAccount/game02: already in the desired state" in r.stdout
    assert "ok      update ProxyAccount/game01" in r.stdout


def test_an_update_edited_out_of_band_elsewhere_is_stale(bp: Workspace) -> None:
    _planned_update(bp)
    bp.api("/gateway/whitelist-account/change-remark", account="game02", remark="by hand")
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 3, r.stdout + r.stderr
    assert "STALE   update ProxyAccount/game02" in r.stdout
    assert bp.accounts()["game02"]["remark"] == "by hand"

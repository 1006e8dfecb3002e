"""`plan --drift [--baseline PLANFILE]`: only out-of-band changes, an exit code and one line on
stderr a scheduler can alert on (0 none, 2 drift, 1 error)."""

from __future__ import annotations

import json
import re

from tests.engine.conftest import Workspace, accounts_file

DRIFT_LINE = re.compile(
    r"^Drift: (none|\d+ resource\(s\) differ from (unchanged manifests|the manifests \(no baseline\)) \([A-Za-z, ]+\))\."
    r"( \d+ pending change\(s\) from edited manifests not counted\.)?$"
)
NAMES = ["game01", "game02", "game03"]
SCOPE = """
apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: games}
spec: {target: ProxyAccount, match: {usernamePrefix: game}}
"""


def _baseline(bp: Workspace) -> None:
    """Plan, save and apply: plan.json is the applied plan (the nightly job's baseline)."""
    accounts_file(bp, NAMES, remark="v1")
    bp.write("manifests/scope.yaml", SCOPE)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    assert bp.cli("apply", "plan.json").exit_code == 0


def _line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert DRIFT_LINE.match(lines[0]), lines[0]
    return lines[0]


def test_no_drift_exit_0(bp: Workspace) -> None:
    _baseline(bp)
    r = bp.cli("plan", "--drift")
    assert r.exit_code == 0
    assert _line(r.stderr) == "Drift: none."
    r = bp.cli("plan", "--drift", "--baseline", "plan.json")
    assert r.exit_code == 0 and _line(r.stderr) == "Drift: none."


def test_out_of_band_changes_are_drift_exit_2(bp: Workspace) -> None:
    _baseline(bp)
    bp.api("/gateway/whitelist-account/change-remark", account="game02", remark="by hand")
    bp.api("/gateway/whitelist-account/add", accounts="game77:abcdef1", product_type=9)  # inside the scope
    bp.api("/gateway/whitelist-account/add", accounts="other1:abcdef1", product_type=9)  # outside: unmanaged
    r = bp.cli("plan", "--drift")
    assert r.exit_code == 2
    assert _line(r.stderr) == "Drift: 2 resource(s) differ from the manifests (no baseline) (ProxyAccount)."
    r = bp.cli("plan", "--drift", "--baseline", "plan.json")
    assert r.exit_code == 2
    assert _line(r.stderr) == "Drift: 2 resource(s) differ from unchanged manifests (ProxyAccount)."
    assert "~ update ProxyAccount/game02" in r.stdout and "- delete ProxyAccount/game77" in r.stdout


def test_baseline_separates_pending_manifest_edits_from_drift(bp: Workspace) -> None:
    _baseline(bp)
    # merged but not applied yet: game01 edited, game04 added, game03 removed from the manifests
    accounts_file(bp, ["game01", "game02", "game04"], remark="v1")
    (bp.root / "manifests/accounts.yaml").write_text(
        (bp.root / "manifests/accounts.yaml").read_text().replace('remark: "v1"', 'remark: "v2"', 1)
    )
    # and someone changes game02 by hand
    bp.api("/gateway/whitelist-account/change-limit", account="game02", limit=3)

    without = bp.cli("plan", "--drift")
    assert without.exit_code == 2
    assert _line(without.stderr).startswith("Drift: 4 resource(s)")

    r = bp.cli("plan", "--drift", "--baseline", "plan.json", "--format", "json")
    assert r.exit_code == 2
    assert _line(r.stderr) == (
        "Drift: 1 resource(s) differ from unchanged manifests (ProxyAccount). "
        "3 pending change(s) from edited manifests not counted."
    )
    out = json.loads(r.stdout)
    assert [c["key"] for c in out["drift"]] == ["game02"]
    assert out["pending"] == ["ProxyAccount/game01", "ProxyAccount/game03", "ProxyAccount/game04"]


def test_pending_only_is_not_drift(bp: Workspace) -> None:
    _baseline(bp)
    accounts_file(bp, NAMES, remark="v2")
    r = bp.cli("plan", "--drift", "--baseline", "plan.json")
    assert r.exit_code == 0
    assert _line(r.stderr) == "Drift: none. 3 pending change(s) from edited manifests not counted."


def test_drift_markdown_report(bp: Workspace) -> None:
    _baseline(bp)
    bp.api("/gateway/whitelist-account/disable", accounts="game03")
    r = bp.cli("plan", "--drift", "--format", "markdown")
    assert r.exit_code == 2
    assert r.stdout.startswith("### reconciler drift report")
    assert "| bestproxy | 0 | 1 | 0 | 0 | 0 | 0 |" in r.stdout


def test_drift_errors_exit_1(bp: Workspace) -> None:
    _baseline(bp)
    bp.write("bad.json", "[]")
    r = bp.cli("plan", "--drift", "--baseline", "bad.json")
    assert r.exit_code == 1 and "error: bad.json: not a valid plan file" in r.stderr
    r = bp.cli("plan", "--baseline", "plan.json")
    assert r.exit_code == 1 and "--baseline goes with --drift" in r.stderr
    r = bp.cli("plan", "--drift", "--out", "drift.json")
    assert r.exit_code == 1 and "a drift report (--drift) is not one" in r.stderr
    bp.emulator.app_key = "rotated"  # the API now refuses our key: an error, not "no drift"
    r = bp.cli("plan", "--drift")
    assert r.exit_code == 1 and r.stderr.startswith("error: ")

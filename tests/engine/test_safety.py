"""Safety: --target (repeatable), --force for the thresholds, never-delete markers (metadata.protected
and PruneScope spec.protect) honoured by saved plans too, and the one-line grep-able summary."""

from __future__ import annotations

import json
import re

from tests.engine.conftest import Workspace, accounts_file

SUMMARY = re.compile(
    r"^Plan: (\d+) to create, (\d+) to update, (\d+) to replace, (\d+) to delete, (\d+) unchanged, (\d+) unmanaged\.$",
    re.M,
)
SCOPE = """
apiVersion: reconciler/v1
kind: PruneScope
metadata: {name: games}
spec:
  target: ProxyAccount
  match: {usernamePrefix: game}
  protect: [gamevip]
"""


def _applied(bp: Workspace, names: list[str], **kw: object) -> None:
    accounts_file(bp, names, **kw)
    r = bp.cli("apply", "--auto-approve")
    assert r.exit_code == 0, r.output


# -- the summary line ------------------------------------------------------------------------
def test_one_grep_able_summary_line_in_every_format(bp: Workspace) -> None:
    _applied(bp, ["game01", "game02"])
    accounts_file(bp, ["game01", "game03"], remark="r")
    bp.write("manifests/scope.yaml", SCOPE)
    bp.api("/gateway/whitelist-account/add", accounts="other1:abcdef1", product_type=9)
    text = bp.cli("plan")
    assert SUMMARY.findall(text.stdout) == [("1", "1", "0", "1", "0", "1")]
    assert text.stdout.rstrip().splitlines()[-1].startswith("Plan: ")
    md = bp.cli("plan", "--format", "markdown")
    assert SUMMARY.findall(md.stdout) == [("1", "1", "0", "1", "0", "1")]
    js = json.loads(bp.cli("plan", "--format", "json").stdout)
    assert SUMMARY.fullmatch(js["summary"])
    assert js["counts"] == {"create": 1, "update": 1, "replace": 0, "delete": 1, "noop": 0, "unmanaged": 1}


# -- --target --------------------------------------------------------------------------------
def test_target_is_repeatable_and_limits_plan_and_apply(bp: Workspace) -> None:
    accounts_file(bp, ["game01", "game02", "game03"])
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec: {productType: 14, entries: [10.0.0.1]}
        """,
    )
    r = bp.cli("plan", "--target", "ProxyAccount/game01", "--target", "IpAllowlist/datacenter")
    assert SUMMARY.findall(r.stdout) == [("2", "0", "0", "0", "0", "0")]
    assert "ProxyAccount/game01" in r.stdout and "game02" not in r.stdout
    r = bp.cli("apply", "--auto-approve", "--target", "ProxyAccount/game03", "--target", "IpAllowlist/14")
    assert r.exit_code == 0, r.output
    assert sorted(bp.accounts()) == ["game03"] and bp.ips(14) == {"10.0.0.1": ""}


def test_target_that_matches_nothing_is_an_error_before_any_call(bp: Workspace) -> None:
    # contract changed on purpose (issue #12): a target matching nothing was a warning after the
    # API calls; it is now an error before any
    accounts_file(bp, ["game01"])
    for cmd in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        r = bp.cli(*cmd, "--target", "ProxyAccount/nosuch")
        assert r.exit_code == 1, r.output
        assert "error: --target ProxyAccount/nosuch matches no manifest document or declared identity" in r.stderr
    assert bp.stats() == {}, "no API call for a target that matches nothing"
    # a declared resource already in the desired state: a warning, not an error
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    r = bp.cli("plan", "--target", "ProxyAccount/game01")
    assert r.exit_code == 0
    assert "warning: --target ProxyAccount/game01: no change for it" in r.stdout
    assert SUMMARY.findall(r.stdout)[0][:4] == ("0", "0", "0", "0")
    r = bp.cli("plan", "--target", "game01")
    assert r.exit_code == 1 and "error: --target game01: expected KIND/NAME" in r.stderr


def test_target_reaches_a_prune_by_its_identity(bp: Workspace) -> None:
    _applied(bp, ["game01", "game02", "game03"])
    accounts_file(bp, ["game01"])
    bp.write("manifests/scope.yaml", SCOPE)
    r = bp.cli("apply", "--auto-approve", "--target", "ProxyAccount/game02")
    assert r.exit_code == 0, r.output
    assert sorted(bp.accounts()) == ["game01", "game03"]


# -- thresholds and --force --------------------------------------------------------------------
def _twelve_then_five_edited(bp: Workspace) -> list[str]:
    names = [f"game{i:02d}" for i in range(12)]
    _applied(bp, names, remark="v1")
    accounts_file(bp, names[:5], remark="v2")
    accounts_file(bp, names[5:], remark="v1", rel="manifests/rest.yaml")
    return names


def test_threshold_blocks_live_apply_without_force(bp: Workspace) -> None:
    _twelve_then_five_edited(bp)
    plan = bp.cli("plan")
    assert "unsafe: ProxyAccount: 5 of 12 existing objects would be updated, replaced or deleted (42% > 30%)" in plan.stdout
    r = bp.cli("apply", "--auto-approve")
    assert r.exit_code == 1 and "exceeds the safety thresholds; nothing was applied (use --force)" in r.stderr
    assert {a["remark"] for a in bp.accounts().values()} == {"v1"}
    r = bp.cli("apply", "--auto-approve", "--force")
    assert r.exit_code == 0, r.output
    assert sum(a["remark"] == "v2" for a in bp.accounts().values()) == 5


def test_threshold_applies_to_saved_plans_and_a_forced_plan_records_it(bp: Workspace) -> None:
    _twelve_then_five_edited(bp)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 1 and "re-run with --force" in r.stderr
    assert {a["remark"] for a in bp.accounts().values()} == {"v1"}

    assert bp.cli("plan", "--force", "--out", "forced.json").exit_code == 0
    assert json.loads((bp.root / "forced.json").read_text())["force"] is True
    r = bp.cli("apply", "forced.json")
    assert r.exit_code == 0, r.output
    assert sum(a["remark"] == "v2" for a in bp.accounts().values()) == 5


def test_force_on_apply_overrides_the_threshold_of_a_saved_plan(bp: Workspace) -> None:
    _twelve_then_five_edited(bp)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    r = bp.cli("apply", "--force", "plan.json")
    assert r.exit_code == 0, r.output


# -- never-delete markers ---------------------------------------------------------------------
def test_prune_scope_protect_list_is_never_deleted(bp: Workspace) -> None:
    _applied(bp, ["game01", "gamevip", "game02"])
    accounts_file(bp, ["game01"])
    bp.write("manifests/scope.yaml", SCOPE)
    r = bp.cli("plan", "--out", "plan.json")
    assert "? ProxyAccount/gamevip: protected by PruneScope/games" in r.stdout
    assert [c["key"] for c in json.loads((bp.root / "plan.json").read_text())["changes"]] == ["game02"]
    assert bp.cli("apply", "plan.json").exit_code == 0
    assert sorted(bp.accounts()) == ["game01", "gamevip"]


def test_a_hand_edited_saved_plan_cannot_delete_a_protected_account(bp: Workspace) -> None:
    _applied(bp, ["game01", "gamevip"])
    accounts_file(bp, ["game01"], remark="edited")
    bp.write("manifests/scope.yaml", SCOPE)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    data = json.loads((bp.root / "plan.json").read_text())
    forged = dict(
        data["changes"][0], key="gamevip", action="delete", resource="", diffs=[], precondition={}, data={"product_type": 9}
    )
    data["changes"].append(forged)
    (bp.root / "plan.json").write_text(json.dumps(data))
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 3, r.output
    assert "STALE   delete ProxyAccount/gamevip" in r.stdout
    assert sorted(bp.accounts()) == ["game01", "gamevip"]


def test_protected_resource_is_never_replaced_even_with_allow_replace(bp: Workspace) -> None:
    _applied(bp, ["game01"], protected=True)
    accounts_file(bp, ["game01"], protected=True, product_type=11)
    r = bp.cli("plan", "--allow-replace", "--out", "plan.json")
    assert "blocked: the resource is marked metadata.protected" in r.stdout
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 1 and "metadata.protected" in r.stderr
    r = bp.cli("apply", "--auto-approve", "--allow-replace")
    assert r.exit_code == 1
    assert bp.accounts()["game01"]["product_type"] == 9


def test_replace_is_decided_at_plan_time_and_recorded_in_the_saved_plan(bp: Workspace) -> None:
    _applied(bp, ["game01"])
    accounts_file(bp, ["game01"], product_type=11)
    assert bp.cli("plan", "--out", "blocked.json").exit_code == 0
    r = bp.cli("apply", "blocked.json")
    assert r.exit_code == 1 and "replacing needs --allow-replace" in r.stderr
    r = bp.cli("apply", "--allow-replace", "blocked.json")
    assert r.exit_code == 1 and "cannot be combined with a saved plan" in r.stderr
    assert bp.accounts()["game01"]["product_type"] == 9

    assert bp.cli("plan", "--allow-replace", "--out", "plan.json").exit_code == 0
    assert json.loads((bp.root / "plan.json").read_text())["allow_replace"] is True
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.output
    assert bp.accounts()["game01"]["product_type"] == 11

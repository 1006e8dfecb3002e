"""Saved plans: `plan --out` then `apply PLANFILE` applies exactly that plan, re-checks every
resource's precondition, skips and reports what changed since, and maps outcomes to exit codes
(0 applied, 3 stale, 4 partial, 1 error)."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import APP_KEY, OTHER_PASSWORD, PASSWORD, TOTP_SECRET, Workspace, accounts_file

NAMES = ["game01", "game02", "game03"]


def _applied(bp: Workspace, names: list[str] = NAMES, **kw: object) -> None:
    accounts_file(bp, names, **kw)
    r = bp.cli("apply", "--auto-approve")
    assert r.exit_code == 0, r.output


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_saved_plan_is_applied_exactly_and_then_nothing_is_left(bp: Workspace) -> None:
    accounts_file(bp, NAMES, remark="first")
    planned = bp.cli("plan", "--out", "plan.json")
    assert planned.exit_code == 0, planned.output
    assert "Saved plan to plan.json" in planned.stderr
    assert bp.accounts() == {}  # planning writes nothing

    applied = bp.cli("apply", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert len(_lines(applied.stdout, "ok")) == 3
    assert "Apply: 3 applied, 0 failed, 0 stale, 0 skipped." in applied.stdout
    live = bp.accounts()
    assert sorted(live) == NAMES and {a["remark"] for a in live.values()} == {"first"}
    assert all(a["password"] == PASSWORD for a in live.values())
    again = bp.cli("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout


def test_one_of_three_changed_out_of_band_is_stale_the_others_apply_exit_3(bp: Workspace) -> None:
    _applied(bp, remark="old")
    accounts_file(bp, NAMES, remark="new")
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    assert [c["action"] for c in json.loads(bp.root.joinpath("plan.json").read_text())["changes"]] == ["update"] * 3

    bp.api("/gateway/whitelist-account/change-limit", account="game02", limit=7)  # another operator
    applied = bp.cli("apply", "plan.json")

    assert applied.exit_code == 3, applied.output
    assert _lines(applied.stdout, "STALE") == ["STALE   update ProxyAccount/game02: live object changed since the plan was made"]
    assert sorted(_lines(applied.stdout, "ok")) == ["ok      update ProxyAccount/game01", "ok      update ProxyAccount/game03"]
    assert "Apply: 2 applied, 0 failed, 1 stale, 0 skipped." in applied.stdout
    live = bp.accounts()
    assert live["game01"]["remark"] == live["game03"]["remark"] == "new"
    assert live["game02"]["remark"] == "old" and live["game02"]["limit_flow"] == 7  # not written


def test_create_planned_but_made_out_of_band_is_stale(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    bp.api("/gateway/whitelist-account/add", accounts=f"game03:{OTHER_PASSWORD}", product_type=9)
    applied = bp.cli("apply", "plan.json")
    assert applied.exit_code == 3, applied.output
    assert [line.split(":")[0] for line in _lines(applied.stdout, "STALE")] == ["STALE   create ProxyAccount/game03"]
    assert bp.accounts()["game03"]["password"] == OTHER_PASSWORD  # left as the other operator made it
    assert {"game01", "game02"} <= set(bp.accounts())


def test_applying_the_same_plan_twice_skips_what_is_already_done(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    assert bp.cli("apply", "plan.json").exit_code == 0
    second = bp.cli("apply", "plan.json")
    assert second.exit_code == 0, second.stdout
    assert len(_lines(second.stdout, "skipped")) == 3 and len(bp.accounts()) == 3
    assert "Apply: 0 applied, 0 failed, 0 stale, 3 skipped." in second.stdout


def test_refused_when_manifests_changed_since_the_plan(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    accounts_file(bp, NAMES, remark="edited after review")
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 1
    assert (
        "error: plan.json: changed since this plan was made: ProxyAccount/game01, ProxyAccount/game02, "
        "ProxyAccount/game03; make a new plan"
    ) in r.stderr
    assert bp.accounts() == {}


def test_refused_when_config_changed_since_the_plan(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    cfg = bp.root / "reconciler.yaml"
    cfg.write_text(cfg.read_text() + "settings:\n  max_change_ratio: 0.5\n")
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 1
    assert "error: plan.json: changed since this plan was made: settings; make a new plan" in r.stderr
    assert bp.accounts() == {}


def test_another_vendors_config_section_does_not_invalidate_the_plan(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    cfg = bp.root / "reconciler.yaml"
    cfg.write_text(
        cfg.read_text().replace(
            "  bestproxy:",
            "  jdb:\n    base_url: http://127.0.0.1:9\n    dc: XX\n    key: env:JDB_KEY\n    iv: env:JDB_IV\n  bestproxy:",
            1,
        )
    )
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.output
    assert sorted(bp.accounts()) == NAMES


def test_a_new_manifest_file_does_not_invalidate_the_plan_and_is_not_applied(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    accounts_file(bp, ["game04"], rel="manifests/more.yaml")  # another pull request merged meanwhile
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.output
    assert sorted(bp.accounts()) == NAMES  # exactly what was reviewed: game04 waits for its own plan


def test_a_new_document_of_the_kind_invalidates_a_plan_that_prunes(bp: Workspace) -> None:
    _applied(bp, ["game01", "game02"])
    bp.write(
        "manifests/scope.yaml",
        """
        apiVersion: reconciler/v1
        kind: PruneScope
        metadata: {name: games}
        spec: {target: ProxyAccount, match: {usernamePrefix: game}}
    """,
    )
    accounts_file(bp, ["game01"])
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0  # deletes game02
    accounts_file(bp, ["game02"], rel="manifests/more.yaml")  # declared again by another change
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 1
    assert "changed since this plan was made: ProxyAccount/game02; make a new plan" in r.stderr
    assert sorted(bp.accounts()) == ["game01", "game02"]


def _two_pull_requests(bp: Workspace) -> None:
    """Two documents in two files; each pull request edits one and saves its plan from the base."""
    accounts_file(bp, ["game01"], remark="base", rel="manifests/a.yaml")
    accounts_file(bp, ["game02"], remark="base", rel="manifests/b.yaml")
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    accounts_file(bp, ["game01"], remark="pr-a", rel="manifests/a.yaml")
    assert bp.cli("plan", "--out", "plan-a.json").exit_code == 0
    accounts_file(bp, ["game01"], remark="base", rel="manifests/a.yaml")
    accounts_file(bp, ["game02"], remark="pr-b", rel="manifests/b.yaml")
    assert bp.cli("plan", "--out", "plan-b.json").exit_code == 0
    accounts_file(bp, ["game01"], remark="pr-a", rel="manifests/a.yaml")  # both merged


@pytest.mark.parametrize("order", [("plan-a.json", "plan-b.json"), ("plan-b.json", "plan-a.json")], ids=["a_then_b", "b_then_a"])
def test_plans_over_disjoint_documents_apply_in_either_order(bp: Workspace, order: tuple[str, str]) -> None:
    _two_pull_requests(bp)
    for name in order:
        r = bp.cli("apply", name)
        assert r.exit_code == 0, r.output
        assert "Apply: 1 applied, 0 failed, 0 stale, 0 skipped." in r.stdout
    assert {n: a["remark"] for n, a in bp.accounts().items()} == {"game01": "pr-a", "game02": "pr-b"}


def test_partial_apply_exit_4_lists_what_succeeded(bp: Workspace) -> None:
    accounts_file(bp, ["game01"])
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec:
          productType: 14
          entries: [10.0.0.1]
        """,
    )
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    bp.emulator.verified = False  # the vendor now refuses account writes (code 156); IP writes still work
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 4, r.output
    assert _lines(r.stdout, "ok") == ["ok      create IpAllowlist/14: added 1"]
    assert [line.split(":")[0] for line in _lines(r.stdout, "FAILED")] == ["FAILED  create ProxyAccount/game01"]
    assert "Apply: 1 applied, 1 failed, 0 stale, 0 skipped." in r.stdout
    assert bp.ips(14) == {"10.0.0.1": ""} and bp.accounts() == {}


def test_failed_and_stale_together_is_exit_4(bp: Workspace) -> None:
    _applied(bp, remark="old")
    accounts_file(bp, NAMES, remark="new")
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec: {productType: 14, exclusive: true, entries: [10.0.0.1]}
        """,
    )
    bp.api("/gateway/proxy-ip/add", ips="10.0.0.9", product_type=14)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    bp.api("/gateway/whitelist-account/change-remark", account="game01", remark="meanwhile")
    (bp.root / "secrets/totp").write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")  # rotated: removals now fail
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 4, r.output
    assert len(_lines(r.stdout, "STALE")) == 1 and len(_lines(r.stdout, "FAILED")) == 1
    assert len(_lines(r.stdout, "ok")) == 2


def test_errors_exit_1_without_traceback(bp: Workspace) -> None:
    bp.write("broken.json", "{not json")
    r = bp.cli("apply", "broken.json")
    assert r.exit_code == 1 and r.stderr.startswith("error: broken.json: not a readable plan file")
    bp.write("future.json", json.dumps({"format_version": 99}))
    r = bp.cli("apply", "future.json")
    assert r.exit_code == 1 and "plan format 99 is not supported" in r.stderr
    bp.write("other.json", json.dumps({"format_version": 1, "changes": []}))
    r = bp.cli("apply", "other.json")
    assert r.exit_code == 1 and "not a valid plan file" in r.stderr
    assert "Traceback" not in r.output


def test_saved_plan_keeps_its_targets_and_refuses_new_ones(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--target", "ProxyAccount/game02", "--out", "plan.json").exit_code == 0
    r = bp.cli("apply", "--target", "ProxyAccount/game01", "plan.json")
    assert r.exit_code == 1 and "cannot be combined with a saved plan" in r.stderr
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.output
    assert sorted(bp.accounts()) == ["game02"]


def test_plan_file_holds_no_secret_value(bp: Workspace) -> None:
    _applied(bp, ["game01", "game02"])
    accounts_file(bp, ["game01", "game02", "game03"], remark="x")
    bp.write(
        "manifests/scope.yaml",
        """
        apiVersion: reconciler/v1
        kind: PruneScope
        metadata: {name: games}
        spec: {target: ProxyAccount, match: {usernamePrefix: game}}
        """,
    )
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec: {productType: 14, exclusive: true, entries: [10.0.0.1]}
        """,
    )
    bp.api("/gateway/whitelist-account/change-password", account="game01", password=OTHER_PASSWORD)
    bp.api("/gateway/whitelist-account/add", accounts=f"game99:{OTHER_PASSWORD}", product_type=9)
    bp.api("/gateway/proxy-ip/add", ips="10.0.0.9", product_type=14)
    outputs = [bp.cli("plan", "--out", "plan.json", "--format", fmt) for fmt in ("text", "markdown", "json")]
    data = json.loads((bp.root / "plan.json").read_text())
    assert {(c["key"], c["action"]) for c in data["changes"]} >= {
        ("game01", "update"),
        ("game03", "create"),
        ("game99", "delete"),
        ("14", "update"),
    }
    password_diff = next(d for c in data["changes"] if c["key"] == "game01" for d in c["diffs"] if d["path"] == "password")
    assert password_diff == {"path": "password", "before": "(sensitive)", "after": "(sensitive)", "sensitive": True}

    blob = (bp.root / "plan.json").read_bytes()
    for secret in (PASSWORD, OTHER_PASSWORD, APP_KEY, TOTP_SECRET):
        assert secret.encode() not in blob
        for r in outputs:
            assert secret not in r.output
    assert b"hmac-sha256:" in blob  # secrets are compared through keyed fingerprints


def test_apply_of_saved_plan_needs_the_same_sandbox_mode(bp: Workspace) -> None:
    accounts_file(bp, NAMES)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    r = bp.cli("apply", "--sandbox", "--sandbox-state", str(bp.root / "sbx"), "plan.json")
    assert r.exit_code == 1 and "planned without --sandbox" in r.stderr


def test_saved_plan_without_changes_applies_nothing(bp: Workspace) -> None:
    _applied(bp)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0 and r.stdout.strip() == "The saved plan has no changes."


def test_apply_report_in_markdown_counts_stale_per_vendor(bp: Workspace) -> None:
    _applied(bp, remark="old")
    accounts_file(bp, NAMES, remark="new")
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    bp.api("/gateway/whitelist-account/change-remark", account="game03", remark="</details>|*x*")
    r = bp.cli("apply", "--format", "markdown", "plan.json")
    assert r.exit_code == 3
    md = r.stdout
    assert md.startswith("### reconciler apply\n\nApply: 2 applied, 0 failed, 1 stale, 0 skipped.")
    assert "| bestproxy | 0 | 2 | 0 | 0 | 1 | 0 |" in md
    assert "| stale | update <code>ProxyAccount/game03</code> | live object changed since the plan was made |" in md
    assert md.count("| applied | update") == 2


def test_rerunning_a_partial_apply_retries_the_failed_changes(bp: Workspace) -> None:
    accounts_file(bp, ["game01"])
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec: {productType: 14, entries: [10.0.0.1]}
        """,
    )
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    bp.emulator.verified = False
    assert bp.cli("apply", "plan.json").exit_code == 4
    bp.emulator.verified = True  # the cause is fixed; the job is re-run with the same plan
    r = bp.cli("apply", "plan.json")
    assert r.exit_code == 0, r.output  # what was done is skipped, what failed is retried
    assert _lines(r.stdout, "ok") == ["ok      create ProxyAccount/game01"]
    assert _lines(r.stdout, "skipped") == ["skipped create IpAllowlist/14: already in the desired state"]
    assert sorted(bp.accounts()) == ["game01"]
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0

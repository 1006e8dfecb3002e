"""Sharded runs at engine level (issue 26) against the emulators over real HTTP: the partition, the
union of shard plans against the unsharded plan, one global gate at `plan merge`, what merge
refuses, prune under a change of N, and apply per shard from a planset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.engine import run
from reconciler.engine.planfile import read_plan, write_plan
from reconciler.engine.planset import MergeRefused, shard_line
from reconciler.engine.render import render_markdown
from reconciler.engine.shard import resolve_shard
from reconciler.errors import UsageError
from reconciler.kinds import KINDS
from reconciler.kinds.shard import Shard, owner, parse_shard
from reconciler.model import Action
from tests.engine.shards_support import ShardWorkspace


@pytest.fixture
def shard_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ShardWorkspace:
    monkeypatch.chdir(tmp_path)
    return ShardWorkspace(tmp_path)


# -- the partition ---------------------------------------------------------------------------
def test_owner_is_a_stable_blake2b_partition_not_pythons_salted_hash() -> None:
    # fixed values: the same on every machine, process and Python version (PYTHONHASHSEED plays no part)
    assert [owner("ProxyAccount", "default", f"acct{i}", 4) for i in range(8)] == [
        owner("ProxyAccount", "default", f"acct{i}", 4) for i in range(8)
    ]
    spread = [owner("TcaplusRecords", "default", f"item_catalog|3|{i}", 8) for i in range(4000)]
    assert set(spread) == set(range(1, 9))
    assert max(spread.count(k) for k in range(1, 9)) < 2 * min(spread.count(k) for k in range(1, 9))
    # the connection is part of the identity: the same username on two accounts is two units
    assert {owner("ProxyAccount", conn, "same", 64) for conn in ("default", "eu", "us", "apac", "x1", "x2")} != {1}


def test_an_allowlist_is_one_unit_with_its_entries() -> None:
    kind = KINDS["IpAllowlist"]
    assert kind.shard_unit("14/203.0.113.10") == kind.shard_unit("14") == "14"
    assert KINDS["FreeSpinEvent"].shard_unit("launch-week") == "launch-week"


def test_shard_from_option_and_the_engines_variables() -> None:
    assert parse_shard("2/4") == Shard(2, 4)
    assert resolve_shard(None, {}) is None
    assert resolve_shard("3/5", {}) == Shard(3, 5)
    assert resolve_shard(None, {"RECONCILER_SHARD": "1/2"}) == Shard(1, 2)
    # Kubernetes Indexed Job: 0-based index; the count from RECONCILER_SHARD_TOTAL
    assert resolve_shard(None, {"JOB_COMPLETION_INDEX": "0", "RECONCILER_SHARD_TOTAL": "3"}) == Shard(1, 3)
    assert resolve_shard(None, {"JOB_COMPLETION_INDEX": "2", "RECONCILER_SHARD_TOTAL": "3"}) == Shard(3, 3)
    # GitLab parallel: 1-based
    assert resolve_shard(None, {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}) == Shard(2, 4)
    assert resolve_shard("2/4", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}) == Shard(2, 4)
    for bad, env in [
        ("0/2", {}),
        ("3/2", {}),
        ("2", {}),
        ("a/b", {}),
        (None, {"JOB_COMPLETION_INDEX": "1"}),
        ("1/4", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}),
        (None, {"JOB_COMPLETION_INDEX": "3", "RECONCILER_SHARD_TOTAL": "3"}),
    ]:
        with pytest.raises(UsageError):
            resolve_shard(bad, env)


# -- the union of shard plans is the plan ------------------------------------------------------
def _fleet_with_every_action(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(30)], list(range(1, 41)))
    shard_ws.apply_all()
    # now: 5 accounts and 4 records removed (deletes), 10 changed (updates), 6 new (creates)
    shard_ws.fleet([f"fleet{i:03d}" for i in range(5, 36)], list(range(5, 47)), remark="fleet v2", price=20)


@pytest.mark.parametrize("n", [2, 4])
def test_union_of_shard_plans_is_the_unsharded_plan_and_markdown(shard_ws: ShardWorkspace, n: int) -> None:
    _fleet_with_every_action(shard_ws)
    single_path, single = shard_ws.plan()
    assert {c.action for c in single.changes} == set(Action) - {Action.REPLACE}
    merged = shard_ws.sharded_plan(n)
    assert [c.to_dict() for c in merged.plan.changes] == [c.to_dict() for c in single.changes]
    assert merged.plan.counts() == single.counts()
    assert merged.plan.existing_in_scope == single.existing_in_scope
    assert merged.plan.noops == single.noops
    # every shard planned something: the work is split, each object once
    shards = merged.data["planset"]["shards"]
    assert [s["k"] for s in shards] == list(range(1, n + 1))
    assert sum(sum(v for k, v in s["counts"].items() if k not in ("noop", "unmanaged")) for s in shards) == len(single.changes)
    # the Markdown is the unsharded one apart from the line naming N
    with shard_ws.session() as s:
        s.load()
        expected = render_markdown(single, safety=run.check_safety(single, s.ctx))
    assert shard_line(n) in merged.markdown.splitlines()
    assert merged.markdown.replace(shard_line(n) + "\n", "", 1) == expected
    assert merged.verdict == "unsafe"  # 30 of 30 accounts updated or deleted > 30%: judged over the whole plan
    assert merged.markdown.count("**Unsafe:**") == len(merged.safety) >= 1


def test_merged_markdown_stays_within_the_comment_limit(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(60)], list(range(1, 200)))
    merged = shard_ws.sharded_plan(3)
    with shard_ws.session() as s:
        loaded = s.load()
        from reconciler.engine.planset import ShardPlan, merge_plans

        plans = [ShardPlan(p, *read_plan(p)) for p in sorted(shard_ws.root.glob("plan-*-of-3.json"))]
        small = merge_plans(plans, loaded=loaded, session=s, force=False, created_at="x", limit=6000)
    assert len(small.markdown) < 6000
    assert shard_line(3) in small.markdown and "more change(s) not shown here" in small.markdown
    assert len(merged.plan.changes) == 60 + 199 + 3  # + 2 events and the allowlist


# -- one gate: thresholds once, globally -------------------------------------------------------
def test_forty_deletes_over_eight_shards_are_refused_without_force(shard_ws: ShardWorkspace) -> None:
    accounts = [f"fleet{i:03d}" for i in range(50)]
    shard_ws.fleet(accounts, [1])
    shard_ws.apply_all()
    shard_ws.fleet(accounts[40:], [1])  # 40 of 50 accounts deleted
    paths = []
    for k in range(1, 9):
        path, part = shard_ws.plan(Shard(k, 8))
        paths.append(path)
        deletes = [c for c in part.changes if c.action is Action.DELETE]
        assert 0 < len(deletes) < 40  # each shard alone holds a part
    merged = shard_ws.merge(paths)
    assert len([c for c in merged.plan.changes if c.action is Action.DELETE]) == 40
    assert merged.verdict == "unsafe"
    assert any("ProxyAccount: 40 of 50" in line for line in merged.safety), merged.safety
    # an unsafe planset is applied by no shard
    for k in (1, 8):
        with pytest.raises(UsageError, match="safety thresholds"):
            shard_ws.apply_shard(Shard(k, 8))
    assert len(shard_ws.live_accounts() & set(accounts)) == 50
    # --force is given at merge, and only there: the verdict is signed into the planset
    forced = shard_ws.merge(paths, force=True)
    assert forced.verdict == "forced" and forced.data["force"] is True
    for k in range(1, 9):
        outcomes = shard_ws.apply_shard(Shard(k, 8))
        assert {o.status for o in outcomes} <= {"applied"}
    assert shard_ws.live_accounts() & set(accounts) == set(accounts[40:])


# -- merge refuses what could own objects twice or not at all ----------------------------------
def test_merge_refuses_missing_repeated_and_disagreeing_shards(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(12)], list(range(1, 20)))
    p1, _ = shard_ws.plan(Shard(1, 3))
    p2, _ = shard_ws.plan(Shard(2, 3))
    p3 = shard_ws.plan(Shard(3, 3))[0].rename(shard_ws.root / "kept-3.json")
    with pytest.raises(MergeRefused, match=r"missing shard plan\(s\) 3/3"):
        shard_ws.merge([p1, p2])
    with pytest.raises(MergeRefused, match="given twice"):
        shard_ws.merge([p1, p2, p2, p3])
    q2, _ = shard_ws.plan(Shard(2, 2))
    with pytest.raises(MergeRefused, match="disagree on N"):
        shard_ws.merge([p1, q2, p3])
    # an input changed between shards: digests disagree
    shard_ws.fleet([f"fleet{i:03d}" for i in range(13)], list(range(1, 20)))
    r3, _ = shard_ws.plan(Shard(3, 3))
    with pytest.raises(MergeRefused, match="disagree on the manifest and config digests"):
        shard_ws.merge([p1, p2, r3])
    shard_ws.fleet([f"fleet{i:03d}" for i in range(12)], list(range(1, 20)))
    shard_ws.merge([p1, p2, p3])  # back to the inputs they were made from: merges


def test_merge_refuses_an_object_in_two_shards_and_a_delete_of_a_declared_identity(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(12)], [1, 2, 3])
    paths = [shard_ws.plan(Shard(k, 2))[0] for k in (1, 2)]
    # a shard plan edited to also hold another shard's change (and re-signed with the real key:
    # the trusted side itself made a bad plan) is refused on ownership, not only on signature
    one, two = (json.loads(p.read_text()) for p in paths)
    moved = two["changes"][0]
    one["changes"].append(moved)
    from reconciler.engine.planfile import sign_plan

    with shard_ws.session() as s:
        signer = s.ctx.plan_signer(one["connections"])
        write_plan(sign_plan({**one, "signature": None}, signer), paths[0])
        with pytest.raises(MergeRefused) as refused:
            shard_ws.merge(paths)
        text = str(refused.value)
        assert "planned by two shards" in text and "but shard 2 owns it" in text
        # a delete of a declared identity
        one = json.loads(paths[0].read_text())
        one["changes"] = [c for c in one["changes"] if c != moved]
        declared = dict(next(c for c in one["changes"] if c["kind"] == "ProxyAccount"), action="delete", resource="")
        one["changes"] = [c for c in one["changes"] if c["key"] != declared["key"]] + [declared]
        write_plan(sign_plan({**one, "signature": None}, signer), paths[0])
    with pytest.raises(MergeRefused, match="which a manifest declares"):
        shard_ws.merge(paths)
    # and an edit without the key breaks the signature
    data = json.loads(paths[1].read_text())
    data["existing_in_scope"]["ProxyAccount"] = 1000  # signed: what the thresholds are judged against
    paths[1].write_text(json.dumps(data))
    with pytest.raises(MergeRefused, match="signature does not match"):
        shard_ws.merge(paths)


# -- prune under a change of N -------------------------------------------------------------------
@pytest.mark.parametrize("new_n", [3, 5])
def test_prune_after_changing_n_deletes_exactly_the_removed_set(shard_ws: ShardWorkspace, new_n: int) -> None:
    accounts = [f"fleet{i:03d}" for i in range(24)]
    records = list(range(1, 31))
    shard_ws.fleet(accounts, records)
    shard_ws.sharded_plan(4, force=True)
    for k in range(1, 5):
        assert {o.status for o in shard_ws.apply_shard(Shard(k, 4))} <= {"applied"}
    assert set(accounts) <= shard_ws.live_accounts()
    removed_accounts = {"fleet003", "fleet010", "fleet017", "fleet022"}
    removed_records = {4, 9, 25}
    shard_ws.fleet([a for a in accounts if a not in removed_accounts], [r for r in records if r not in removed_records])
    merged = shard_ws.sharded_plan(new_n)
    deletes = {c.address for c in merged.plan.changes if c.action is Action.DELETE}
    assert deletes == {f"ProxyAccount/{a}" for a in removed_accounts} | {
        f"TcaplusRecords/item_catalog|3|{r}" for r in removed_records
    }
    assert [c for c in merged.plan.changes if c.action is not Action.DELETE] == []
    for k in range(1, new_n + 1):
        assert {o.status for o in shard_ws.apply_shard(Shard(k, new_n))} <= {"applied"}
    assert shard_ws.live_accounts() & set(accounts) == set(accounts) - removed_accounts
    _, after = shard_ws.plan()
    assert after.changes == []


# -- apply per shard ----------------------------------------------------------------------------
def test_a_retried_shard_writes_only_what_is_left(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(10)], list(range(1, 25)))
    merged = shard_ws.sharded_plan(2, force=True)
    planned = {c.address for c in merged.plan.changes}
    first = shard_ws.apply_shard(Shard(1, 2))
    assert {o.status for o in first} == {"applied"}
    again = shard_ws.apply_shard(Shard(1, 2))  # the shard's job retried after it had finished
    assert {o.status for o in again} == {"skipped"} and len(again) == len(first)
    second = shard_ws.apply_shard(Shard(2, 2))
    assert {o.change.address for o in first} | {o.change.address for o in second} == planned
    assert not {o.change.address for o in first} & {o.change.address for o in second}
    with pytest.raises(UsageError, match="merged from 2 shards"):
        shard_ws.apply_shard(Shard(1, 3))
    # a shard plan alone never reaches a write: its thresholds were not judged
    for shard in (None, Shard(2, 2)):
        with pytest.raises(UsageError, match="never applied alone"):
            shard_ws.apply_shard(shard, shard_ws.root / "plan-2-of-2.json")


def test_apply_refuses_a_planset_changed_after_merge(shard_ws: ShardWorkspace) -> None:
    shard_ws.fleet([f"fleet{i:03d}" for i in range(10)], [1])
    shard_ws.sharded_plan(2, force=True)
    path = shard_ws.root / "planset.json"
    data = json.loads(path.read_text())
    data["planset"]["verdict"] = "safe"
    data["force"] = False
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="signature does not match"):
        shard_ws.apply_shard(Shard(1, 2))


def test_a_shard_reads_only_its_part_yet_its_signature_covers_every_change(shard_ws: ShardWorkspace) -> None:
    from reconciler.engine.planfile import change_count
    from reconciler.engine.planset_apply import planset_digest
    from reconciler.engine.shard import owns_change, owns_saved_change

    shard_ws.fleet([f"fleet{i:03d}" for i in range(10)], list(range(1, 25)))
    shard_ws.sharded_plan(2, force=True)
    path = shard_ws.root / "planset.json"
    whole_pf, whole = read_plan(path)
    digests = {planset_digest(whole_pf)}
    for k in (1, 2):
        pf, part = read_plan(path, keep=owns_saved_change(Shard(k, 2)))
        assert part.changes == [c for c in whole.changes if owns_change(Shard(k, 2), c)] != []
        assert change_count(pf) == len(whole.changes) > len(part.changes)
        digests.add(planset_digest(pf))  # every shard's report names the same planset
    assert len(digests) == 1
    # a signed payload changed in a change shard 2 owns: shard 1, which does not read that change
    # as a change, still refuses the planset before any write
    original = path.read_text()
    data = json.loads(original)
    theirs = next(
        c for c in data["changes"] if "desired" in c["data"] and owns_saved_change(Shard(2, 2))(c) and c["kind"] == "ProxyAccount"
    )
    theirs["data"]["desired"]["remark"] = "changed after merge"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="signature does not match"):
        shard_ws.apply_shard(Shard(1, 2))
    assert shard_ws.live_accounts() & {f"fleet{i:03d}" for i in range(10)} == set()
    path.write_text(original)  # as merged: shard 1 applies its part, read in part
    assert {o.status for o in shard_ws.apply_shard(Shard(1, 2))} == {"applied"}


def test_rate_shares_follow_planned_calls(shard_ws: ShardWorkspace) -> None:
    """Half of each connection's budget is split evenly (every shard's apply re-reads live state
    first), half by planned calls; a connection nobody writes to is split evenly, never left at
    the full rate in every shard. Each connection's shares sum to 1."""
    shard_ws.fleet([f"fleet{i:03d}" for i in range(4)], list(range(1, 41)))
    merged = shard_ws.sharded_plan(3)
    shards = merged.data["planset"]["shards"]
    configured = {f"{v}/default" for v in ("bestproxy", "jdb", "tcaplus")} & set(shards[0]["rate_share"])
    assert {"tcaplus/default", "bestproxy/default"} <= configured
    for conn in configured:
        total = sum(s["calls"].get(conn, 0) for s in shards)
        assert sum(s["rate_share"][conn] for s in shards) == pytest.approx(1.0, abs=1e-5)
        for s in shards:
            expected = 0.5 / 3 + 0.5 * s["calls"].get(conn, 0) / total if total else 1 / 3
            assert s["rate_share"][conn] == pytest.approx(expected, abs=1e-5)
            assert s["rate_share"][conn] >= 0.5 / 3 - 1e-6  # no shard is starved


def test_rate_shares_split_a_connection_nobody_writes_to_evenly() -> None:
    from reconciler.engine.shard import rate_shares

    shares = rate_shares({1: {"a/x": 10}, 2: {}, 3: {"a/x": 30}}, ["a/x", "b/y"], 3)
    assert shares[2] == {"a/x": pytest.approx(0.5 / 3, abs=1e-6), "b/y": pytest.approx(1 / 3, abs=1e-6)}
    assert shares[3]["a/x"] == pytest.approx(0.5 / 3 + 0.5 * 30 / 40, abs=1e-6)
    assert sum(s["b/y"] for s in shares.values()) == pytest.approx(1.0, abs=1e-5)


def test_scaled_rates_divide_the_budget_and_restore_it(shard_ws: ShardWorkspace) -> None:
    from reconciler.engine.shard import scaled_rates
    from reconciler.kinds.base import RunContext
    from reconciler.manifest.config import load_config

    shard_ws.write(
        "reconciler.yaml",
        (shard_ws.root / "reconciler.yaml")
        .read_text()
        .replace("    concurrency: 8\n", "    concurrency: 8\n    requests_per_second: 100\n"),
    )
    ctx = RunContext(config=load_config(shard_ws.root / "reconciler.yaml"))
    conn = ctx.config.config.connection("tcaplus", "default")
    bound = ctx.bind("tcaplus", "default").config.providers.tcaplus  # what the kind builds its client from
    with scaled_rates(ctx, {"tcaplus/default": 0.25, "bestproxy/default": 0.5}):
        assert conn.requests_per_second == bound.requests_per_second == 25
        assert ctx.config.config.connection("bestproxy", "default").requests_per_second is None  # none set: none made
    assert conn.requests_per_second == bound.requests_per_second == 100


# -- export manifests --shard ---------------------------------------------------------------------
def test_sharded_exports_together_are_the_unsharded_export(shard_ws: ShardWorkspace) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    shard_ws.fleet([f"fleet{i:03d}" for i in range(12)], list(range(1, 30)))
    shard_ws.apply_all()

    def export(out: str, *shard: str) -> dict[str, str]:
        r = CliRunner().invoke(
            cli,
            ["export", "manifests", "--sandbox", "--sandbox-state", str(shard_ws.state), "--out", out, *shard],
            catch_exceptions=False,
        )
        assert r.exit_code == 0, r.output
        root = shard_ws.root / out
        return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}

    whole = export("whole")
    parts = [export(f"part{k}", "--shard", f"{k}/3") for k in (1, 2, 3)]

    def docs(files: dict[str, str]) -> list[str]:  # each document without the comments a file starts with
        return sorted(
            "\n".join(line for line in d.splitlines() if not line.startswith("# ")).strip()
            for path, text in files.items()
            if path.endswith(".yaml")
            for d in text.split("---\n")
            if "kind:" in d
        )

    assert sorted(d for p in parts for d in docs(p)) == docs(whole)  # each document in exactly one shard
    assert all(docs(p) for p in parts)
    data = {path: text for p in parts for path, text in p.items() if not path.endswith(".yaml")}
    assert data == {path: text for path, text in whole.items() if not path.endswith(".yaml")}


def test_a_refused_merge_prints_a_bounded_number_of_lines() -> None:
    from reconciler.engine.planset import MAX_REASONS

    refused = MergeRefused([f"TcaplusRecords/t|{i} is planned by two shards (1 and 2)" for i in range(2000)])
    assert len(refused.lines()) == MAX_REASONS + 1 and refused.lines()[-1] == f"... and {2000 - MAX_REASONS} more reason(s)"


def test_every_shard_validates_every_manifest(shard_ws: ShardWorkspace) -> None:
    from reconciler.errors import InputError

    shard_ws.fleet([f"fleet{i:03d}" for i in range(4)], [1, 2])
    shard_ws.write(
        "manifests/fleet/bad.yaml",
        "apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {name: bad}\n"
        "spec: {username: b, password: 'file:../secrets/sandbox-demo-password.txt', "
        "productType: 9, remark: x, trafficLimitGb: -1}\n",
    )
    for k in (1, 2):  # whichever shard would own it, both stop on it before any call
        with pytest.raises(InputError) as bad:
            shard_ws.plan(Shard(k, 2))
        assert any("bad.yaml:4:" in str(p) and "trafficLimitGb" in str(p) for p in bad.value.problems), bad.value.problems


def test_merge_report_counts_a_retried_shard_by_its_latest_run(tmp_path: Path) -> None:
    from reconciler.engine.journal import Journal
    from reconciler.engine.planset_apply import merge_reports

    def report(name: str, shard: str, *, end: int | None) -> Path:
        j = Journal.open_new(tmp_path / name)
        j.run(changes=[], existing_in_scope={}, resumed=False, options={"shard": shard, "planset": "sha256:p"}, digest={})
        if end is not None:
            j.end(status="finished", exit_code=end, counts={})
        j.close()
        return tmp_path / name

    killed = report("a.jsonl", "1/2", end=None)
    other = report("b.jsonl", "2/2", end=3)
    lines, code = merge_reports([killed, other])
    assert code == 4 and "shard 1/2: not finished" in lines[0]
    retried = report("c.jsonl", "1/2", end=0)
    lines, code = merge_reports([killed, other, retried])
    assert code == 3 and any("superseded" in line for line in lines), lines
    lines, code = merge_reports([retried])
    assert code == 1 and "shard 2/2: no report" in lines[-2]
    with pytest.raises(UsageError, match="different plansets"):
        j = Journal.open_new(tmp_path / "d.jsonl")
        j.run(changes=[], existing_in_scope={}, resumed=False, options={"shard": "2/2", "planset": "sha256:q"}, digest={})
        j.close()
        merge_reports([retried, tmp_path / "d.jsonl"])

"""TcaplusDB writes whose reply is lost after the write took effect are settled in the same run by
reading the record back: done once, never repeated on top of their own success."""

from __future__ import annotations

from reconciler.engine import run
from reconciler.model import Action
from tests.tcaplus.conftest import Workspace
from tests.tcaplus.test_records_cli import PLAYERS, player, records_doc
from tests.tcaplus.test_records_kind import planned


def _apply(tcaplus_ws: Workspace, faults: dict) -> list:
    kind, ctx, changes = planned(tcaplus_ws)
    tcaplus_ws.emulator.set_faults(faults)
    try:
        return kind.apply(changes, ctx)
    finally:
        tcaplus_ws.emulator.set_faults({"drop_next_writes": 0, "fail_next": 0})
        ctx.close()


def test_add_set_and_delete_with_lost_replies_are_settled_in_the_same_run(tcaplus_ws: Workspace) -> None:
    # AddRecord: the reply of the write is dropped after the record was stored
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1), player(2)]))
    outcomes = _apply(tcaplus_ws, {"drop_next_writes": 2})
    assert [o.status for o in outcomes] == ["applied", "applied"], [o.message for o in outcomes]
    assert sorted(r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)) == [1, 2]

    # SetRecord (version-checked): the retry would fail with -7949 against its own success
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1, level=5), player(2, level=6)], mode="whole"))
    kind, ctx, changes = planned(tcaplus_ws)
    assert {c.action for c in changes} == {Action.UPDATE}
    ctx.close()
    outcomes = _apply(tcaplus_ws, {"drop_next_writes": 2})
    assert [o.status for o in outcomes] == ["applied", "applied"], [o.message for o in outcomes]
    stored = sorted((r for _, r in tcaplus_ws.emulator.records(PLAYERS)), key=lambda r: r["player_id"])
    assert stored == [player(1, level=5), player(2, level=6)]
    kind, ctx, changes = planned(tcaplus_ws)
    ctx.close()
    assert changes == []

    # DeleteRecord (prune): a repeat would answer 261 against its own success
    prune = {"index": "index_2", "keys": {"player_id": 2}}
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [], prune=prune))
    outcomes = _apply(tcaplus_ws, {"drop_next_writes": 1})
    assert [(o.change.action, o.status) for o in outcomes] == [(Action.DELETE, "applied")], [o.message for o in outcomes]
    assert [r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)] == [1]


def test_busy_refusals_are_tried_again_by_the_engine_in_the_same_run(tcaplus_ws: Workspace) -> None:
    # -1037 "system busy" is a refusal: the kind reports the change failed (retryable) and the
    # engine's later pass writes it — no re-run of apply is needed
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1), player(2), player(3)]))
    kind, ctx, changes = planned(tcaplus_ws)
    tcaplus_ws.emulator.set_faults({"fail_next": 2})
    try:
        outcomes = run.apply_changes(changes, ctx)
    finally:
        ctx.close()
    assert [o.status for o in outcomes] == ["applied"] * 3, [o.message for o in outcomes]
    assert tcaplus_ws.emulator.faults.fail_next == 0  # the refusals did happen
    assert sorted(r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)) == [1, 2, 3]


def test_a_stopped_run_waits_for_calls_in_flight_no_longer_than_its_grace(tcaplus_ws: Workspace) -> None:
    import threading
    import time

    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1), player(2), player(3)]))
    kind, ctx, changes = planned(tcaplus_ws)
    tcaplus_ws.emulator.set_faults({"latency_ms": 1200})
    threading.Timer(0.3, ctx.stop.set).start()  # SIGINT, as the CLI handles it
    try:
        outcomes = run.ApplyRun(changes, ctx, grace=0.2).run()
    finally:
        tcaplus_ws.emulator.set_faults({"latency_ms": 0})
    # every write was in flight (concurrency 8) when the run stopped: reported, not waited for
    assert [o.status for o in outcomes] == ["unknown"] * 3, [o.message for o in outcomes]
    assert "resume" in outcomes[0].message
    time.sleep(1.2)  # let the emulator answer them before the test's emulator goes away
    ctx.close()


def test_a_killed_apply_is_finished_by_resume_with_each_record_added_once(tcaplus_ws: Workspace) -> None:
    """TcaplusRecords writes from one event loop (Kind.streams): each change's intent is journaled
    as it starts, so a kill -9 mid-apply leaves a journal that resume settles by reading back —
    no record is added twice, no --force is needed."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(i) for i in range(1, 41)]))
    add = f"POST /ver1.0/apps/2/zones/1/tables/{PLAYERS}/records"
    tcaplus_ws.emulator.set_faults({"latency_ms": 100})
    exe = str(Path(sys.executable).with_name("reconciler"))
    proc = subprocess.Popen(
        [exe, "apply", "--auto-approve", "--journal", "run.jsonl"],
        cwd=tcaplus_ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while tcaplus_ws.emulator.stats.get(add, 0) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(0.3)  # the writes in flight at the kill land (the emulator answers nobody)
    tcaplus_ws.emulator.set_faults({"latency_ms": 0})
    stored = len(tcaplus_ws.emulator.records(PLAYERS))
    assert 12 <= stored < 40, stored
    recs = [json.loads(line) for line in (tcaplus_ws.root / "run.jsonl").read_text().splitlines() if line.strip()]
    assert recs[0]["type"] == "run" and not any(r["type"] == "end" for r in recs)
    assert sum(r["type"] == "intent" for r in recs) >= stored  # every write that landed was journaled first

    res = tcaplus_ws.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert sorted(r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)) == list(range(1, 41))
    assert tcaplus_ws.emulator.stats[add] == 40  # one AddRecord per record across both runs
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0

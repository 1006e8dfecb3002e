"""Unknown means unknown (TcaplusDB): AddRecord, SetRecord and DeleteRecord answered 200 with a body
cut short or not JSON are unknown outcomes, settled by reading the record back in the same run —
reported ok when the write happened (it was reported FAILED), never written twice; a read answered
so is asked again. The emulator's ``mangle_replies`` knob matches the ``x-tcaplus-target`` operation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tcaplus.conftest import Workspace
from tests.tcaplus.test_records_cli import PLAYERS, player, records_doc

HOW = ["cut", "not_json"]


@pytest.fixture(autouse=True)
def no_rules_left(tcaplus_ws: Workspace) -> Iterator[None]:
    yield
    tcaplus_ws.emulator.set_faults({"mangle_replies": []})  # the emulator is the session's


def mangle(tcaplus_ws: Workspace, how: str, operation: str, count: int = 1) -> None:
    tcaplus_ws.emulator.set_faults({"mangle_replies": [{"how": how, "count": count, "match": operation}]})


def apply_ok(tcaplus_ws: Workspace) -> str:
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout and tcaplus_ws.emulator.faults.mangle_replies == []  # the fault did fire
    plan = tcaplus_ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    return res.stdout


@pytest.mark.parametrize("how", HOW)
def test_add_set_and_delete_answered_unreadably_are_read_back(tcaplus_ws: Workspace, how: str) -> None:
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1), player(2)]))
    mangle(tcaplus_ws, how, "AddRecord", count=2)
    out = apply_ok(tcaplus_ws)
    assert "Apply: 2 applied, 0 failed" in out
    assert sorted(r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)) == [1, 2]
    assert tcaplus_ws.emulator.stats["POST " + _path()] == 2  # read back, not added again

    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1, level=5), player(2)], mode="whole"))
    mangle(tcaplus_ws, how, "SetRecord")
    out = apply_ok(tcaplus_ws)
    assert "Apply: 1 applied, 0 failed" in out
    assert {r["player_id"]: r.get("level") for _, r in tcaplus_ws.emulator.records(PLAYERS)} == {1: 5, 2: None}

    prune = {"index": "index_2", "keys": {"player_id": 2}}
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [], prune=prune))
    mangle(tcaplus_ws, how, "DeleteRecord")
    out = apply_ok(tcaplus_ws)
    assert "Apply: 1 applied, 0 failed" in out
    assert [r["player_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)] == [1]


@pytest.mark.parametrize("how", HOW)
def test_a_read_answered_unreadably_is_asked_again(tcaplus_ws: Workspace, how: str) -> None:
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1)]))
    apply_ok(tcaplus_ws)
    tcaplus_ws.emulator.set_faults({"mangle_replies": [{"how": how, "count": 1}]})  # whatever the plan reads first
    res = tcaplus_ws.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert tcaplus_ws.emulator.faults.mangle_replies == []


def _path() -> str:
    from tests.tcaplus.conftest import APP_ID, ZONE_ID

    return f"/ver1.0/apps/{APP_ID}/zones/{ZONE_ID}/tables/{PLAYERS}/records"

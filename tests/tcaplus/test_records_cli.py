"""TcaplusRecords end to end through the CLI against the emulator: plan, apply, re-plan, stale plans,
declared vs whole mode, prune scopes."""

from __future__ import annotations

import json

from reconciler.vendors.tcaplus.wire import VersionedRecord
from reconciler.sandbox.wire import EmulatorServer
from tests.tcaplus.conftest import Workspace

EXAMPLE = "tb_example"
PLAYERS = "game_players"


def example(i: int, **extra: object) -> dict[str, object]:
    return {
        "region": 100 + i % 3,
        "name": f"user {i}",
        "uin": 1000 + i,
        "gamesvrid": i,
        "logintime": 5,
        "lockid": [i, i + 1],
        "pay": {"pay_id": i, "total_money": 10 * i, "auth": {"pay_keys": f"k{i}"}},
        **extra,
    }


def player(i: int, **extra: object) -> dict[str, object]:
    return {
        "player_id": i,
        "player_name": f"p{i}",
        "player_email": f"p{i}@example.com",
        "game_server_id": i % 7,
        "login_timestamp": ["2024-01-01"],
        **extra,
    }


def records_doc(
    name: str, table: str, records: list[dict[str, object]], *, mode: str = "declared", prune: dict[str, object] | None = None
) -> str:
    spec: dict[str, object] = {"table": table, "mode": mode, "records": records}
    if prune:
        spec["prune"] = prune
    return json.dumps({"apiVersion": "reconciler/v1", "kind": "TcaplusRecords", "metadata": {"name": name}, "spec": spec})


def write_seed(tcaplus_ws: Workspace, n_example: int = 200, n_players: int = 100) -> None:
    lines = "\n".join(json.dumps(example(i), ensure_ascii=False) for i in range(n_example))
    tcaplus_ws.write("manifests/data/examples.jsonl", lines + "\n")
    tcaplus_ws.write(
        "manifests/examples.yaml",
        """
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {name: examples}
        spec:
          table: tb_example
          file: data/examples.jsonl
        """,
    )
    tcaplus_ws.write(
        "manifests/players.yaml", records_doc("players", PLAYERS, [player(i) for i in range(n_players)], mode="whole")
    )


def keys_of(record: dict[str, object], *names: str) -> dict[str, object]:
    return {k: record[k] for k in names}


def test_plan_apply_then_an_empty_plan(tcaplus_ws: Workspace) -> None:
    write_seed(tcaplus_ws)
    res = tcaplus_ws.cli("plan")
    assert res.exit_code == 0, res.stderr
    assert "Plan: 300 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged" in res.stdout
    assert "+ create TcaplusRecords/tb_example|100|user 0|1000" in res.stdout
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stderr + res.stdout
    assert "Apply: 300 applied, 0 failed, 0 stale" in res.stdout
    assert len(tcaplus_ws.emulator.records(EXAMPLE)) == 200 and len(tcaplus_ws.emulator.records(PLAYERS)) == 100
    assert (1, example(5)) in tcaplus_ws.emulator.records(EXAMPLE)
    res = tcaplus_ws.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout
    assert "No changes." in res.stdout and "300 unchanged" in res.stdout


def test_a_changed_record_is_updated_and_versions_never_show_as_drift(tcaplus_ws: Workspace) -> None:
    write_seed(tcaplus_ws, 3, 3)
    assert tcaplus_ws.cli("apply", "--auto-approve").exit_code == 0
    tcaplus_ws.client.set(EXAMPLE, example(1), check=None)  # rewritten with the same values: version 2
    tcaplus_ws.client.field_set(
        PLAYERS, {**keys_of(player(2), "player_id", "player_name", "player_email"), "game_server_id": 9}, ["game_server_id"]
    )
    res = tcaplus_ws.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 2
    assert "Plan: 0 to create, 1 to update" in res.stdout
    assert "game_server_id: 9 -> 2" in res.stdout
    assert tcaplus_ws.cli("apply", "--auto-approve").exit_code == 0
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_record_changed_between_plan_and_apply_is_stale(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(1, level=1))
    tcaplus_ws.client.set(PLAYERS, player(2, level=1))
    tcaplus_ws.write("manifests/players.yaml", records_doc("players", PLAYERS, [player(1, level=2), player(2, level=2)]))
    res = tcaplus_ws.cli("plan", "--out", "plan.json")
    assert res.exit_code == 0 and "Plan: 0 to create, 2 to update" in res.stdout
    tcaplus_ws.client.set(PLAYERS, player(1, level=7))  # another writer
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 3, res.stdout + res.stderr
    assert "STALE   update TcaplusRecords/game_players|1|p1|p1@example.com: changed since the plan (version 1 -> 2)" in res.stdout
    assert "Apply: 1 applied, 0 failed, 1 stale" in res.stdout
    keys = ("player_id", "player_name", "player_email")
    assert tcaplus_ws.client.get(PLAYERS, keys_of(player(1), *keys)) == VersionedRecord(2, player(1, level=7))
    assert tcaplus_ws.client.get(PLAYERS, keys_of(player(2), *keys)) == VersionedRecord(2, player(2, level=2))


def test_a_record_created_by_someone_else_after_the_plan_is_not_overwritten(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.write("manifests/players.yaml", records_doc("players", PLAYERS, [player(1, level=2), player(2)]))
    assert tcaplus_ws.cli("plan", "--out", "plan.json").exit_code == 0
    tcaplus_ws.client.add(PLAYERS, player(1, level=5))
    tcaplus_ws.client.add(PLAYERS, player(2))  # the same values as declared
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 3, res.stdout
    assert (
        "STALE   create TcaplusRecords/game_players|1|p1|p1@example.com: created by another writer since the plan" in res.stdout
    )
    # issue #8: a saved change a fresh plan does not reproduce is never written; the record already
    # holds the declared values, so the change is reported skipped (it used to be "ok ... holds the
    # declared values", reached by sending the saved create)
    assert "skipped create TcaplusRecords/game_players|2|p2|p2@example.com: already in the desired state" in res.stdout
    assert tcaplus_ws.emulator.records(PLAYERS)[0] == (1, player(1, level=5))


def test_declared_mode_keeps_undeclared_fields(tcaplus_ws: Workspace) -> None:
    live = example(1, is_available=True)
    tcaplus_ws.client.set(EXAMPLE, live)
    declared = {**keys_of(live, "region", "name", "uin"), "gamesvrid": 77, "pay": {"auth": {"pay_keys": "new"}}}
    tcaplus_ws.write("manifests/e.yaml", records_doc("e", EXAMPLE, [declared]))
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout
    assert "gamesvrid: 1 -> 77" in res.stdout and 'pay.auth.pay_keys: "k1" -> "new"' in res.stdout
    version, record = tcaplus_ws.emulator.records(EXAMPLE)[0]
    assert version == 2
    assert record == {**live, "gamesvrid": 77, "pay": {"pay_id": 1, "total_money": 10, "auth": {"pay_keys": "new"}}}
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_whole_mode_clears_undeclared_fields(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(3, level=4, is_online=True))
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(3)], mode="whole"))
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout
    assert "level: 4 -> null" in res.stdout and "is_online: true -> null" in res.stdout
    assert tcaplus_ws.emulator.records(PLAYERS) == [(2, player(3))]
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_defaults_float32_and_bytes_show_no_phantom_drift(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, {**player(4), "ratio": 0.10000000149011612, "avatar": "AAE="})
    declared = player(4, ratio=0.1, avatar="AAE=", level=0, is_online=False, logout_timestamp=[])
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [declared], mode="whole"))
    res = tcaplus_ws.cli("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.stdout


def test_prune_scope_deletes_only_undeclared_records_inside_it(tcaplus_ws: Workspace) -> None:
    for i in range(4):
        tcaplus_ws.client.set(PLAYERS, player(50, player_email=f"e{i}@x", player_name="shop"))
    tcaplus_ws.client.set(PLAYERS, player(51, player_name="shop"))  # other index key: outside the scope
    kept = player(50, player_email="e0@x", player_name="shop")
    prune = {"index": "index_2", "keys": {"player_id": 50}}
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [kept], prune=prune))
    tcaplus_ws.emulator.stats.clear()
    res = tcaplus_ws.cli("plan")
    assert res.exit_code == 0, res.stderr
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete, 1 unchanged" in res.stdout
    assert "- delete TcaplusRecords/game_players|50|shop|e3@x" in res.stdout
    assert tcaplus_ws.requests() == 1  # one PartkeyGetRecord read the scope and the declared record
    res = tcaplus_ws.cli("apply", "--auto-approve", "--force")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert [r["player_email"] for _, r in tcaplus_ws.emulator.records(PLAYERS)] == ["e0@x", "p51@example.com"]
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_prune_delete_of_a_record_changed_since_the_plan_is_stale(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(60))
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [], prune={"index": "index_2", "keys": {"player_id": 60}}))
    assert tcaplus_ws.cli("plan", "--out", "plan.json").exit_code == 0
    tcaplus_ws.client.set(PLAYERS, player(60, level=1))
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 3 and "not deleted" in res.stdout
    assert len(tcaplus_ws.emulator.records(PLAYERS)) == 1


def test_yaml_data_file(tcaplus_ws: Workspace) -> None:
    # outside manifests/: every *.yaml file there is read as a manifest
    tcaplus_ws.write("data/players.yaml", "- " + json.dumps(player(8)) + "\n- " + json.dumps(player(9)) + "\n")
    tcaplus_ws.write(
        "manifests/p.yaml",
        """
        apiVersion: reconciler/v1
        kind: TcaplusRecords
        metadata: {name: p}
        spec: {table: game_players, mode: whole, file: ../data/players.yaml}
        """,
    )
    assert tcaplus_ws.cli("apply", "--auto-approve").exit_code == 0
    records = sorted((r for _, r in tcaplus_ws.emulator.records(PLAYERS)), key=lambda r: r["player_id"])
    assert records == [player(8), player(9)]  # creates run concurrently: order is not part of the contract


def test_a_changed_data_file_invalidates_a_saved_plan(tcaplus_ws: Workspace) -> None:
    write_seed(tcaplus_ws, 2, 1)
    assert tcaplus_ws.cli("plan", "--out", "plan.json").exit_code == 0
    tcaplus_ws.write("manifests/data/examples.jsonl", json.dumps(example(0)) + "\n")
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 1 and "changed since this plan was made" in res.stderr
    assert tcaplus_ws.emulator.records(EXAMPLE) == []


def test_lost_replies_during_apply_are_resolved_by_reading_back(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(1))
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1, level=3), player(2)]))
    tcaplus_ws.emulator.set_faults({"drop_next_writes": 2})  # both writes take effect, both replies are lost
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "Apply: 2 applied, 0 failed, 0 stale" in res.stdout
    assert sorted(v for v, _ in tcaplus_ws.emulator.records(PLAYERS)) == [1, 2]  # nothing written twice
    assert tcaplus_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_an_unavailable_server_fails_the_run_with_one_line_and_a_rerun_finishes(
    tcaplus_ws: Workspace, tcaplus_server: EmulatorServer
) -> None:
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1)]))
    tcaplus_ws.emulator.set_faults({"error_rate": 1.0})
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [
        # the first read: the index keys the declared record takes (they would serve it too)
        f"error: tcaplus: 127.0.0.1:{tcaplus_server.port}: PartkeyGetRecord game_players: code -1037 HTTP 500: "
        "Internal system error: system busy"
    ]
    assert tcaplus_ws.emulator.records(PLAYERS) == []
    tcaplus_ws.emulator.set_faults({"error_rate": 0.0})
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0 and tcaplus_ws.emulator.records(PLAYERS) == [(1, player(1))]


def test_saved_plan_freshness_is_judged_per_document_and_its_data_file(tcaplus_ws: Workspace) -> None:
    """A plan that changes only the inline `players` document survives an edit of another
    document's data file, and is refused (naming the document) when its own document changes."""
    write_seed(tcaplus_ws, n_example=5, n_players=3)
    assert tcaplus_ws.cli("apply", "--auto-approve").exit_code == 0
    tcaplus_ws.write(
        "manifests/players.yaml", records_doc("players", PLAYERS, [player(i, game_server_id=6) for i in range(3)], mode="whole")
    )
    res = tcaplus_ws.cli("plan", "--out", "plan.json")
    assert res.exit_code == 0 and "to update" in res.stdout, res.stdout

    data = tcaplus_ws.root / "manifests/data/examples.jsonl"
    data.write_text(data.read_text() + json.dumps(example(99)) + "\n")  # another change to another document
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert {r["game_server_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)} == {6}
    assert len(tcaplus_ws.emulator.records(EXAMPLE)) == 5  # the other change was not part of the reviewed plan

    tcaplus_ws.write(
        "manifests/players.yaml", records_doc("players", PLAYERS, [player(i, game_server_id=5) for i in range(3)], mode="whole")
    )
    assert tcaplus_ws.cli("plan", "--out", "plan2.json").exit_code == 0
    data.write_text(data.read_text())  # untouched content: still fresh
    tcaplus_ws.write(
        "manifests/players.yaml", records_doc("players", PLAYERS, [player(i, game_server_id=4) for i in range(3)], mode="whole")
    )
    res = tcaplus_ws.cli("apply", "plan2.json")
    assert res.exit_code == 1
    assert "plan2.json: changed since this plan was made: TcaplusRecords/players; make a new plan" in res.stderr
    assert {r["game_server_id"] for _, r in tcaplus_ws.emulator.records(PLAYERS)} == {6}


def test_a_changed_data_file_invalidates_the_plan_of_its_document(tcaplus_ws: Workspace) -> None:
    write_seed(tcaplus_ws, n_example=5, n_players=3)
    assert tcaplus_ws.cli("apply", "--auto-approve").exit_code == 0
    data = tcaplus_ws.root / "manifests/data/examples.jsonl"
    data.write_text("\n".join(json.dumps(example(i, gamesvrid=50 + i)) for i in range(5)) + "\n")
    assert tcaplus_ws.cli("plan", "--out", "plan.json").exit_code == 0
    data.write_text("\n".join(json.dumps(example(i, gamesvrid=70 + i)) for i in range(5)) + "\n")
    res = tcaplus_ws.cli("apply", "plan.json")
    assert res.exit_code == 1
    assert "changed since this plan was made: TcaplusRecords/examples; make a new plan" in res.stderr

"""PartkeyGetRecord at scale: pages bounded in bytes (256 KB) as well as records, read concurrently
by the client; the emulator reads a page through its index (never the whole table); the kind
validates each declared record once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.vendors.tcaplus.client import DEFAULT_PAGE_SIZE, TcaplusClient
from reconciler.engine.load import load_manifests
from reconciler.vendors.tcaplus.records import kind as tcaplus_records  # where validate_record is called
from reconciler.kinds.base import RunContext
from reconciler.vendors.tcaplus.records import TcaplusRecordsKind
from reconciler.vendors.tcaplus.records import plan as records_plan
from reconciler.vendors.tcaplus.protoschema import load_table
from reconciler.manifest.config import DEFAULT_CONNECTION, load_config
from reconciler.vendors.tcaplus import emulator as emulator_module
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator
from tests.tcaplus.conftest import APP_ID, PASSWORD, TABLES, ZONE_ID, Workspace
from tests.tcaplus.test_records_cli import PLAYERS, player, records_doc

T = "game_players"


def seed(tcaplus_client: TcaplusClient, n: int, *, player_id: int = 7, long: set[int] = frozenset()) -> list[str]:
    """``n`` records under ``index_2 = player_id``; those in ``long`` carry a 400-character field."""
    emails = [f"p{i:03d}@x" for i in range(n)]
    for i, email in enumerate(emails):
        extra = {"login_timestamp": ["t" * 400]} if i in long else {}
        tcaplus_client.set(T, {"player_id": player_id, "player_name": "ann", "player_email": email, "game_server_id": i, **extra})
    return emails


def emails(records: list) -> list[str]:
    return [r.record["player_email"] for r in records]


def test_the_default_page_asks_for_the_documented_batch_cap() -> None:
    # 256 KB is a size in bytes; the record-count cap of a batch read is 1,024
    assert DEFAULT_PAGE_SIZE == emulator_module.MAX_BATCH_RECORDS == 1024


def test_an_answer_stops_at_the_byte_cap(tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> None:
    seed(tcaplus_client, 10)
    one = len(b'{"RecordVersion":1,"Record":{"player_id":7,"player_name":"ann","player_email":"p000@x","game_server_id":0}}') + 1
    tcaplus_emulator.partkey_max_bytes = 3 * one + 2  # three records fit, a fourth does not
    try:
        page = tcaplus_client.partkey_get(T, "index_2", {"player_id": 7}, limit=100)
        assert (emails(page.records), page.remain, page.total) == (["p000@x", "p001@x", "p002@x"], 7, 10)
        tcaplus_emulator.partkey_max_bytes = 1  # the first record always comes back
        assert len(tcaplus_client.partkey_get(T, "index_2", {"player_id": 7}, offset=4).records) == 1
    finally:
        tcaplus_emulator.partkey_max_bytes = emulator_module.PARTKEY_MAX_BYTES


@pytest.mark.parametrize("concurrency", [1, 4])
def test_all_pages_are_read_when_answers_are_cut_by_size(
    tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator, concurrency: int
) -> None:
    # records of uneven size: a page may hold fewer records than the first one did, leaving gaps
    expected = seed(tcaplus_client, 23, long={5, 6, 7, 15})
    seed(tcaplus_client, 3, player_id=8)
    tcaplus_emulator.partkey_max_bytes = 700
    try:
        tcaplus_client.transport.request_counts.clear()
        everything = tcaplus_client.partkey_get_all(T, "index_2", {"player_id": 7}, concurrency=concurrency)
    finally:
        tcaplus_emulator.partkey_max_bytes = emulator_module.PARTKEY_MAX_BYTES
    assert emails(everything) == expected  # all of them, in order, none twice
    assert tcaplus_client.transport.total_requests > 23 // 5


def test_one_page_when_everything_fits(tcaplus_client: TcaplusClient) -> None:
    expected = seed(tcaplus_client, 40)
    tcaplus_client.transport.request_counts.clear()
    assert emails(tcaplus_client.partkey_get_all(T, "index_2", {"player_id": 7}, concurrency=4)) == expected
    assert tcaplus_client.transport.total_requests == 1


def test_a_page_is_read_through_the_index_not_the_table(
    tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(tcaplus_client, 5)
    seed(tcaplus_client, 2, player_id=8)

    def no_scan(*args: object) -> None:
        raise AssertionError("PartkeyGetRecord decoded the whole table")

    monkeypatch.setattr(tcaplus_emulator, "_scan", no_scan)
    assert len(tcaplus_client.partkey_get_all(T, "index_2", {"player_id": 8})) == 2
    tcaplus_client.delete(T, {"player_id": 8, "player_name": "ann", "player_email": "p000@x"})
    tcaplus_client.set(T, {"player_id": 8, "player_name": "bob", "player_email": "b@x", "game_server_id": 1})
    assert emails(tcaplus_client.partkey_get_all(T, "index_2", {"player_id": 8})) == ["p001@x", "b@x"]
    assert emails(tcaplus_client.partkey_get_all(T, "index_1", {"player_id": 8, "player_name": "bob"})) == ["b@x"]


def test_the_index_is_rebuilt_from_persisted_records(tmp_path: Path) -> None:
    first = TcaplusEmulator(tmp_path, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
    with EmulatorServer(first) as server:
        client = TcaplusClient(server.url, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD)
        seed(client, 3)
        client.close()
    # a state folder written before the index existed: only the records are there
    again = TcaplusEmulator(tmp_path, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
    again.db.execute("DELETE FROM tcaplus_index_keys")
    again.close()
    with EmulatorServer(TcaplusEmulator(tmp_path, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)) as server:
        client = TcaplusClient(server.url, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD)
        assert emails(client.partkey_get_all(T, "index_2", {"player_id": 7})) == ["p000@x", "p001@x", "p002@x"]
        client.close()


def test_each_declared_record_is_validated_once_per_run(tcaplus_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(i) for i in range(1, 6)]))
    calls: list[object] = []
    real = tcaplus_records.validate_record

    def counting(schema: object, record: object, **kw: object) -> object:
        calls.append(record)
        return real(schema, record, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tcaplus_records, "validate_record", counting)
    ctx = RunContext(config=load_config(Path("reconciler.yaml")))
    loaded = load_manifests([Path("manifests")], ctx)  # runs the kind's check
    kind = TcaplusRecordsKind()
    # as the engine does: check and plan get the context bound to the documents' connection
    changes = kind.plan(loaded.resources["TcaplusRecords"], [], ctx.bind("tcaplus", DEFAULT_CONNECTION)).changes
    ctx.close()
    assert len(changes) == 5
    assert len(calls) == 5


def test_a_prune_scope_over_many_short_pages_is_planned_whole(tcaplus_ws: Workspace) -> None:
    # the scope's answers are cut by size into many pages, read side by side: nothing is missed,
    # so no declared record looks missing and no undeclared one escapes the prune
    live = [player(50, player_name="shop", player_email=f"e{i:02d}@x") for i in range(40)]
    for record in live:
        tcaplus_ws.client.set(PLAYERS, record)
    prune = {"index": "index_2", "keys": {"player_id": 50}}
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, live[:37], mode="whole", prune=prune))
    tcaplus_ws.emulator.partkey_max_bytes = 600  # a handful of records per answer
    try:
        tcaplus_ws.emulator.stats.clear()
        res = tcaplus_ws.cli("plan")
    finally:
        tcaplus_ws.emulator.partkey_max_bytes = emulator_module.PARTKEY_MAX_BYTES
    assert res.exit_code == 0, res.stderr
    assert "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete, 37 unchanged" in res.stdout
    assert all(f"- delete TcaplusRecords/game_players|50|shop|e{i}@x" in res.stdout for i in (37, 38, 39))
    # several pages, and no GetRecord per declared record (the scope's pages cover all of them)
    assert 40 // 8 < tcaplus_ws.requests() < 37


@pytest.fixture(params=["index rows", "read one by one"])
def index_rows_cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Whether the index keys declared records take are read in full (their rows then serve those
    records), or hold more rows than the cap (the records are then read one by one)."""
    if request.param == "read one by one":
        monkeypatch.setattr(records_plan, "MAX_UNMANAGED_ROWS", 5)
    return str(request.param)


def test_declared_records_under_an_index_key_read_in_full_come_from_its_rows(tcaplus_ws: Workspace, index_rows_cap: str) -> None:
    # 30 live records under one player_id and player_name (one key of each index); declared: 27
    # equal, one changed, two new, one live record undeclared. The same plan either way; with the
    # keys read in full, no GetRecord per declared record
    live = [player(50, player_name="shop", player_email=f"e{i:02d}@x") for i in range(30)]
    for record in live:
        tcaplus_ws.client.set(PLAYERS, record)
    declared = [
        *live[:27],
        {**live[27], "game_server_id": 6},
        *(player(50, player_name="shop", player_email=f"e{i}@x") for i in (30, 31)),
    ]
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, declared))
    tcaplus_ws.emulator.stats.clear()
    res = tcaplus_ws.cli("plan")
    assert res.exit_code == 0, res.stderr
    assert "Plan: 2 to create, 1 to update, 0 to replace, 0 to delete, 27 unchanged" in res.stdout
    assert "game_players|50|shop|e27@x" in res.stdout
    if index_rows_cap == "index rows":
        assert tcaplus_ws.requests() == 2  # one page of each index key, and nothing else
    else:
        assert tcaplus_ws.requests() >= len(declared)
    # the update carries the version read from the index rows: apply writes it, as planned
    res = tcaplus_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    stored = {r["player_email"]: (v, r) for v, r in tcaplus_ws.emulator.records(PLAYERS)}
    assert stored["e27@x"][0] == 2 and stored["e27@x"][1]["game_server_id"] == 6
    assert {"e30@x", "e31@x", "e29@x"} <= set(stored)


def test_a_plan_reads_more_index_keys_when_declared_records_are_many() -> None:
    # beyond 20 keys, a plan reads an index's keys while there is at most one per 64 declared
    # records (each key's rows serve the records under it); an export keeps the fixed 20
    schema = load_table(str(TABLES[T]), T)
    per = records_plan.RECORDS_PER_KEYSET
    many = [player(i // per, player_name=f"n{i}") for i in range(21 * per)]
    keysets, warnings = records_plan.index_keysets(schema, many, limit=records_plan.keyset_limit(len(many)))
    assert sorted(k["player_id"] for i, k in keysets if i == "index_2") == list(range(21)) and len(warnings) == 1
    assert "index_1" in warnings[0]  # player names differ per record: one key each, too many
    keysets, warnings = records_plan.index_keysets(schema, many[:-1], limit=records_plan.keyset_limit(len(many) - 1))
    assert keysets == [] and "more than 20" in warnings[-1]
    keysets, warnings = records_plan.index_keysets(schema, many)
    assert keysets == [] and len(warnings) == 2
    # a shard's plan: its own records' keys, read or not as every shard's records decide
    mine = many[::per]  # one record per key: alone, 21 keys over 21 records would not be read
    keysets, warnings = records_plan.index_keysets(schema, mine, limit=records_plan.keyset_limit(len(many)), among=many)
    assert sorted(k["player_id"] for i, k in keysets if i == "index_2") == list(range(21))
    assert warnings == [
        f"{T}: declared records take {len(many)} keys of index index_1; rows under them that no document "
        f"declares are not listed (more than {records_plan.keyset_limit(len(many))})"
    ]

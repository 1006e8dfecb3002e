"""TcaplusRecords hooks called directly (plan, then apply with a fault between the two)."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.engine.load import load_manifests
from reconciler.model import Action
from reconciler.kinds.base import RunContext
from reconciler.vendors.tcaplus.records import TcaplusRecordsKind, identity
from reconciler.manifest.config import load_config
from reconciler.sandbox.wire import EmulatorServer
from tests.tcaplus.conftest import Workspace
from tests.tcaplus.test_records_cli import PLAYERS, player, records_doc


def planned(tcaplus_ws: Workspace) -> tuple[TcaplusRecordsKind, RunContext, list]:
    ctx = RunContext(config=load_config(Path("reconciler.yaml")))
    loaded = load_manifests([Path("manifests")], ctx)
    kind = TcaplusRecordsKind()
    return kind, ctx, kind.plan(loaded.resources["TcaplusRecords"], [], ctx).changes


def test_identity_quotes_only_ambiguous_strings() -> None:
    assert identity("t", [1, "a b", True]) == "t|1|a b|true"
    assert identity("t", ["a|b", 2.5]) == 't|"a|b"|2.5'
    # values other than plain strings are written as JSON (integers take a shortcut: the same text)
    values = [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 10**30, True, False, None, 1.0, -0.0, 1e300, "é|x", ["a"], {"k": 1}]
    assert identity("t", values) == "|".join(["t", *(json.dumps(v, ensure_ascii=False) for v in values)])


def test_a_failed_write_fails_only_its_change(tcaplus_ws: Workspace, tcaplus_server: EmulatorServer) -> None:
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1), player(2)]))
    kind, ctx, changes = planned(tcaplus_ws)
    assert [c.action for c in changes] == [Action.CREATE, Action.CREATE]
    tcaplus_ws.emulator.set_faults({"fail_next": 1})  # AddRecord is not repeated after a server error
    outcomes = sorted(kind.apply(changes, ctx), key=lambda o: o.change.key)
    ctx.close()
    assert [o.status for o in outcomes].count("failed") == 1
    failed = next(o for o in outcomes if o.status == "failed")
    assert failed.message.startswith(f"tcaplus: 127.0.0.1:{tcaplus_server.port}: AddRecord game_players: code -1037 HTTP 500: ")
    assert len(tcaplus_ws.emulator.records(PLAYERS)) == 1


def test_a_record_deleted_after_the_plan_is_not_recreated_by_an_update(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(1))
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1, level=2)], mode="whole"))
    kind, ctx, changes = planned(tcaplus_ws)
    tcaplus_ws.client.delete(PLAYERS, {k: player(1)[k] for k in ("player_id", "player_name", "player_email")})
    [outcome] = kind.apply(changes, ctx)
    ctx.close()
    assert (outcome.status, outcome.message) == ("stale", "the record was deleted since the plan")
    assert tcaplus_ws.emulator.records(PLAYERS) == []


def test_precondition_and_data_of_an_update(tcaplus_ws: Workspace) -> None:
    tcaplus_ws.client.set(PLAYERS, player(1), check=None)
    tcaplus_ws.client.set(PLAYERS, player(1, level=1))
    tcaplus_ws.write("manifests/p.yaml", records_doc("p", PLAYERS, [player(1, level=2)]))
    _, ctx, [change] = planned(tcaplus_ws)
    ctx.close()
    assert change.precondition == {"record_version": 2}
    assert change.source == "manifests/p.yaml:1"
    assert [(d.path, d.before, d.after) for d in change.diffs] == [("level", 1, 2)]
    assert change.data == {
        "table": PLAYERS,
        "mode": "declared",
        "keys": {"player_id": 1, "player_name": "p1", "player_email": "p1@example.com"},
        "record": player(1, level=2),
    }


def test_a_json_line_is_read_as_json_loads_reads_it() -> None:
    """Data-file lines are scanned without json.loads's wrapping when they start with their value:
    values, and the errors (message and column) of bad lines, must be json.loads's."""
    from reconciler.clients.http import json_value

    lines = [
        '{"a": 1, "b": [1.5, "x", null, true]}\n',
        '{"a": 1}',
        '  {"a": 1}\n',
        '{"a": 1}  \t\r\n',
        "[1, 2]\n",
        '"s"\n',
        "7\n",
        "NaN\n",
        "-Infinity\n",
        '{"a": 1} x\n',
        '{"a": 1}{"b": 2}\n',
        '{"a": 1}\u00a0\n',
        '\ufeff{"a": 1}\n',
        '{"a": }\n',
        '{"a": 1\n',
        "\n",
        "",
        '{"a": "\x01"}\n',
        '{"a": "\\ud800"}\n',
        "[" * 50_000 + "]" * 50_000 + "\n",
    ]
    for line in lines:
        try:
            want: object = json.loads(line)
        except (ValueError, RecursionError) as exc:
            want = (type(exc), str(exc), getattr(exc, "colno", None))
        try:
            got: object = json_value(line)
        except (ValueError, RecursionError) as exc:
            got = (type(exc), str(exc), getattr(exc, "colno", None))
        assert repr(got) == repr(want), line[:40]

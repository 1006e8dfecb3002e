"""``apply plan.json`` writes only changes a fresh plan reproduces exactly — for every kind, TcaplusDB
included — so a plan edited after review (in the artifact store, or by anyone who can upload one)
cannot add a delete or overwrite; and a plan applied twice is all ``skipped`` with exit 0."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.security.conftest import (
    BP_APP_KEY,
    TCAPLUS_PROTOS,
    Emulators,
    Repo,
    account,
    config_text,
    event_doc,
    players_record,
    records_doc,
)

IPS = """\
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: egress}
spec: {productType: 14, entries: [203.0.113.10]}
"""


def _tcaplus_set(em: Emulators, record: dict[str, Any]) -> None:
    from reconciler.vendors.tcaplus.client import TcaplusClient
    from tests.security.conftest import TC_PASSWORD

    client = TcaplusClient(em.tcaplus.url, app_id=2, zone_id=1, password=TC_PASSWORD)
    try:
        client.set("game_players", record)
    finally:
        client.close()


def _records(em: Emulators) -> dict[int, dict[str, Any]]:
    return {r["player_id"]: r for _, r in em.tcaplus.emulator.records("game_players")}  # type: ignore[attr-defined]


def _ws(repo: Repo, em: Emulators) -> Repo:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(em))
    return repo


def test_an_edited_plan_cannot_add_a_tcaplus_delete_or_change_an_overwrite(repo: Repo, emulators: Emulators) -> None:
    ws = _ws(repo, emulators)
    _tcaplus_set(emulators, players_record(1, level=1))
    _tcaplus_set(emulators, players_record(3, level=3))  # declared nowhere, in no prune scope
    ws.write("manifests/r.yaml", records_doc("r", [players_record(1, level=2), players_record(2)]))
    planned = ws.run("plan", "--out", "plan.json")
    assert planned.code == 0, planned.output
    plan = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))
    by_action = {c["action"]: c for c in plan["changes"]}
    assert set(by_action) == {"create", "update"}

    # after review: widen the update, and add a delete of a record no manifest asks for
    update = by_action["update"]
    update["data"]["record"]["level"] = 99
    delete = copy.deepcopy(update)
    delete.update(
        action="delete",
        key="game_players|3|p3|p3@example.com",
        diffs=[],
        summary="delete",
        data={"table": "game_players", "keys": {"player_id": 3, "player_name": "p3", "player_email": "p3@example.com"}},
    )
    plan["changes"].append(delete)
    (ws.root / "plan.json").write_text(json.dumps(plan), encoding="utf-8")

    applied = ws.run("apply", "plan.json")
    assert applied.code == 3, applied.output
    assert (
        "STALE   update TcaplusRecords/game_players|1|p1|p1@example.com: the change would differ from the reviewed plan"
        in applied.stdout
    )
    assert "skipped delete TcaplusRecords/game_players|3|p3|p3@example.com" in applied.stdout
    assert "ok      create TcaplusRecords/game_players|2|p2|p2@example.com" in applied.stdout
    live = _records(emulators)
    assert live[1]["level"] == 1 and live[3]["level"] == 3 and 2 in live  # nothing but the reviewed create
    ws.assert_no_secret(planned, applied)


def test_a_plan_applied_twice_is_all_skipped_for_every_kind(repo: Repo, emulators: Emulators) -> None:
    ws = _ws(repo, emulators)
    _tcaplus_set(emulators, players_record(1, level=1))
    r = httpx.post(
        emulators.bestproxy.url + "/gateway/whitelist-account/add",
        json={"app_key": BP_APP_KEY, "accounts": "pr02:OldPass123", "product_type": 9, "remark": "old"},
    )
    assert r.json()["code"] == 200, r.text
    ws.write("manifests/bp.yaml", account() + "---\n" + account("pr02", remark="new") + "---\n" + IPS)
    ws.write("manifests/r.yaml", records_doc("r", [players_record(1, level=2), players_record(2)]))
    ws.write("manifests/e.yaml", event_doc())
    assert ws.run("plan", "--out", "plan.json").code == 0
    changes = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))["changes"]
    kinds = {(c["kind"], c["action"]) for c in changes}
    assert {
        ("TcaplusRecords", "create"),
        ("TcaplusRecords", "update"),
        ("ProxyAccount", "create"),
        ("ProxyAccount", "update"),
        ("IpAllowlist", "create"),
        ("FreeSpinEvent", "create"),
    } <= kinds, kinds

    first = ws.run("apply", "plan.json")
    assert first.code == 0, first.output
    state = _state(emulators)
    second = ws.run("apply", "plan.json")
    assert second.code == 0, second.output
    lines = [line for line in second.stdout.splitlines() if line and not line.startswith("Apply:")]
    assert len(lines) == len(changes) and all(line.startswith("skipped") for line in lines), second.stdout
    assert f"Apply: 0 applied, 0 failed, 0 stale, {len(changes)} skipped." in second.stdout
    assert _state(emulators) == state  # nothing written the second time (versions, update times included)
    ws.assert_no_secret(first, second)


def _state(em: Emulators) -> dict[str, Any]:
    """Everything the three emulators hold (TcaplusDB with record versions, JDB with update times)."""

    def bp(path: str, **q: Any) -> Any:
        return httpx.get(em.bestproxy.url + path, params={"app_key": BP_APP_KEY, **q}).json()["data"]

    jdb = em.jdb.emulator
    with jdb.transaction():  # type: ignore[attr-defined]
        events = jdb.db.execute("SELECT * FROM events ORDER BY event_id").fetchall()  # type: ignore[attr-defined]
        bindings = jdb.db.execute("SELECT * FROM bindings ORDER BY event_id, uid").fetchall()  # type: ignore[attr-defined]
    return {
        # usage_flow grows on every list (traffic): not something apply writes
        "accounts": [{k: v for k, v in a.items() if k != "usage_flow"} for a in bp("/gateway/whitelist-account/list")["list"]],
        "ips": bp("/gateway/proxy-ip/list", product_type=14),
        "records": em.tcaplus.emulator.records("game_players"),  # type: ignore[attr-defined]
        "events": [tuple(e) for e in events],
        "bindings": [tuple(b) for b in bindings],
    }


@pytest.mark.parametrize(
    "edit",
    [
        {"paths": ["manifests/scope-only"]},  # plan a subset: everything else looks undeclared
        {"force": True},  # lift the safety thresholds
        {"existing_in_scope": {"ProxyAccount": 10_000}},  # dilute the threshold's baseline
        {"targets": []},
        {"connections": []},  # try to make the signature key-less
        {"signature": None},
    ],
)
def test_a_plan_whose_signed_fields_were_edited_is_refused(repo: Repo, emulators: Emulators, edit: dict[str, Any]) -> None:
    ws = _ws(repo, emulators)
    ws.write("manifests/bp.yaml", account() + "---\n" + account("pr02"))
    ws.write(
        "manifests/scope-only/scope.yaml",
        "apiVersion: reconciler/v1\nkind: PruneScope\nmetadata: {name: s}\n"
        "spec: {target: ProxyAccount, match: {usernamePrefix: zz}}\n",
    )
    assert ws.run("plan", "--out", "plan.json", "--target", "ProxyAccount/pr01").code == 0
    plan = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))
    assert plan["signature"].startswith("hmac-sha256:")
    plan.update(edit)
    (ws.root / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    r = ws.run("apply", "plan.json")
    assert r.code == 1, r.output
    assert "make a new plan" in r.stderr and ("signature" in r.stderr or "does not cover" in r.stderr), r.stderr
    assert (
        httpx.get(emulators.bestproxy.url + "/gateway/whitelist-account/list", params={"app_key": BP_APP_KEY}).json()["data"][
            "list"
        ]
        == []
    )  # nothing written
    ws.assert_no_secret(r)


def test_a_plan_is_applied_only_with_the_config_it_was_made_with(repo: Repo, emulators: Emulators) -> None:
    ws = _ws(repo, emulators)
    ws.write("manifests/bp.yaml", account())
    assert ws.run("plan", "--out", "plan.json").code == 0
    ws.write("other.yaml", config_text(emulators))
    r = ws.run("apply", "plan.json", "--config", "other.yaml")
    assert r.code == 1 and "apply it with the same --config" in r.stderr, r.output

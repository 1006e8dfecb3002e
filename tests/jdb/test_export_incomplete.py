"""An event made in JDB's back office, exported (issue 22 item 8): Action 76 leaves out its
``endTime`` and ``bet`` (the emulator's ``hidden`` fields; in the documented answer also ``times``
and the withdrawal limits). The export writes what JDB returned and marks the gaps; validate and
apply skip it with a warning naming it. With 2,000 of them the output stays short."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
import yaml

from .conftest import AGENT, JdbWorkspace

TZ8 = timezone(timedelta(hours=8))


def _event(ws: JdbWorkspace, name: str = "Back office promo", days: int = 10) -> dict[str, object]:
    start = datetime.fromtimestamp(ws.clock.now, TZ8).replace(microsecond=0) + timedelta(days=days)
    return {
        "name": name,
        "startTime": start.isoformat(),
        "endTime": (start + timedelta(days=3)).isoformat(),
        "machineTypes": [14077],
        "bet": "4",
        "times": 6,
        "type": "NORMAL",
        "minWithdrawal": "-1",
        "maxWithdrawal": "50",
    }


def test_a_back_office_event_is_exported_with_its_gaps_marked(ws: JdbWorkspace, jdb_mode: str) -> None:
    r = httpx.post(
        ws.server.url + "/_sandbox/jdb/events",
        json={"agent": AGENT, "event": _event(ws), "players": ["player00007"], "hidden": ["endTime", "bet"]},
    )
    assert r.status_code == 200, r.text
    [row] = ws.client.search_events(
        agent=AGENT, start=datetime.now(TZ8) - timedelta(days=1), end=datetime.now(TZ8) + timedelta(days=30)
    )
    assert "endTime" not in row and "bet" not in row  # whatever search_fields says
    missing = ["endTime", "bet"] if jdb_mode == "extended" else ["endTime", "bet", "times", "minWithdrawal", "maxWithdrawal"]

    res = ws.cli("export", "manifests", "--agent", AGENT, "--out", "out")
    assert res.exit_code == 0, res.output
    text = (ws.root / "out/jdb/sandboxag/free-spins.yaml").read_text(encoding="utf-8")
    assert f"# incomplete: JDB did not return {', '.join(missing)}; fill these in before restoring" in text
    [doc] = [d for d in yaml.safe_load_all(text) if d]
    assert doc["metadata"]["incomplete"] == missing and not set(missing) & set(doc["spec"])
    if jdb_mode == "extended":  # what JDB did return is written, not left out
        assert (doc["spec"]["times"], doc["spec"]["maxWithdrawal"]) == (6, "50")

    valid = ws.cli("validate", "out")
    assert valid.exit_code == 0, valid.output
    assert "FreeSpinEvent/back-office-promo: incomplete, not restored" in valid.stderr
    applied = ws.cli("apply", "out", "--auto-approve")
    assert (
        applied.exit_code == 4
        and "not restored: 1 incomplete object(s) skipped (FreeSpinEvent/back-office-promo)" in applied.stderr
    )
    assert ws.emulator.action_counts[72] == 0 and len(ws.events()) == 1


@pytest.mark.parametrize("jdb_mode", ["documented"])
@pytest.mark.parametrize(
    "body",
    [
        {"agent": AGENT},  # no event
        {"agent": "nobody", "event": {}},
        {"agent": AGENT, "event": {"name": "x"}},  # Action 72 would refuse it
        {"agent": AGENT, "event": "EVENT", "hidden": ["password"]},
    ],
)
def test_the_back_office_route_refuses_what_it_cannot_make(ws: JdbWorkspace, body: dict[str, object]) -> None:
    if body.get("event") == "EVENT":
        body = {**body, "event": _event(ws)}
    r = httpx.post(ws.server.url + "/_sandbox/jdb/events", json=body)
    assert r.status_code == 400 and "error" in r.json()
    assert ws.events() == []


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_two_thousand_incomplete_objects_keep_the_output_short(ws: JdbWorkspace) -> None:
    for i in range(2000):
        ws.emulator.create_back_office_event(AGENT, _event(ws, f"Promo {i:04d}", days=10 + i % 300))
    res = ws.cli("export", "manifests", "--agent", AGENT, "--out", "out")
    assert res.exit_code == 0 and "2000 incomplete, skipped by a restore until filled in" in res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) <= 55 and "... and 1950 more incomplete object(s)" in lines[-1]
    valid = ws.cli("validate", "out")
    assert valid.exit_code == 0 and "2000 incomplete document(s) skipped" in valid.stdout
    assert len(valid.stderr.splitlines()) <= 51
    applied = ws.cli("apply", "out", "--auto-approve")
    assert applied.exit_code == 4
    [line] = [ln for ln in applied.stderr.splitlines() if ln.startswith("not restored")]
    assert "2000 incomplete object(s) skipped" in line and "... and 1980 more" in line
    assert len(applied.output.splitlines()) <= 80

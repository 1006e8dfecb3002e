"""JDB events as manifests when Action 76 answers only what the seed documents (no bet, limits or
times): the export says what is missing instead of inventing it, or takes it from the manifest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from reconciler.export.manifests import incomplete_fields, render_doc
from reconciler.kinds.base import ExportRequest, Resource
from reconciler.vendors.jdb.free_spin_event import FreeSpinEventSpec, _Live, export_event
from reconciler.manifest.yamlload import Document

# the Action 76 fields reference/jdb.md captured from the vendor's table, nothing more
DOCUMENTED_ROW = {
    "eventId": 12345,
    "name": "Summer spins",
    "creator": "testag",
    "numberOfPlayers": 4,
    "type": "NORMAL",
    "totalUseTimes": 3,
    "totalTimes": 40,
    "totalCashout": "1.500",
    "machineTypes": [14077, 14085],
    "status": "ACTIVE",
    "currency": "RB",
    "startTime": "2035-07-01T00:00:00.123+08:00",
    "endTime": "2035-07-08T23:59:59.999+08:00",
}
REQUEST = ExportRequest(unmanaged=False, secret_ref=lambda path, name, value: "env:UNUSED")


def test_fields_action_76_does_not_return_become_comments_not_values() -> None:
    doc, players = export_event("testag", _Live(DOCUMENTED_ROW), None, "summer-spins", REQUEST)
    assert doc.spec["startTime"] == "2035-07-01T00:00:00.123+08:00"  # exact, milliseconds kept
    assert doc.spec["endTime"] == "2035-07-08T23:59:59.999+08:00"
    for key in ("bet", "times", "minWithdrawal", "maxWithdrawal"):
        assert key not in doc.spec
        assert "not returned by JDB Action 76" in doc.missing[key]
    assert "totalTimes 40 over 4 player(s)" in doc.missing["times"]
    text = render_doc(doc)
    assert "  # bet: (not returned by JDB Action 76 here; fill it in)" in text
    assert "event 12345 ACTIVE, 4 players, spins used 3 of 40, cash-out 1.500" in text
    assert "playersFile: players/summer-spins.txt  # JDB reports 4 bound player(s) but cannot list them" in text
    assert "Fill in the player IDs" in players.text and players.path == "players/summer-spins.txt"


def test_a_declaring_manifest_fills_what_action_76_does_not_return(tmp_path: Path) -> None:
    (tmp_path / "summer.txt").write_text("p1\np2\n")
    spec = FreeSpinEventSpec(
        name="Summer spins",
        agent="testag",
        startTime="2035-06-30T16:00:00.123Z",
        endTime="2035-07-08T15:59:59.999Z",
        machineTypes=[14077, 14085],
        bet="2.5",
        type="NORMAL",
        times=10,
        maxWithdrawal="100",
        playersFile="summer.txt",
        generation=2,
    )
    owner = Resource("FreeSpinEvent", "summer", spec, Document(file=str(tmp_path / "events.yaml"), index=0, data={}))
    doc, players = export_event("testag", _Live(DOCUMENTED_ROW), owner, "summer", REQUEST)
    assert doc.spec["startTime"] == "2035-06-30T16:00:00.123Z"  # the same instant, as the manifest spells it
    assert (doc.spec["bet"], doc.spec["times"], doc.spec["maxWithdrawal"], doc.spec["generation"]) == ("2.5", 10, "100", 2)
    assert "not returned by Action 76: taken from" in doc.field_comments["bet"]
    assert not doc.missing
    assert [ln for ln in players.text.splitlines() if not ln.startswith("#")] == ["p1", "p2"]


def test_an_end_time_action_76_does_not_return_is_asked_for() -> None:
    row = {k: v for k, v in DOCUMENTED_ROW.items() if k != "endTime"}  # the table's tail is truncated in the sources
    doc, _ = export_event("testag", _Live(row), None, "summer-spins", REQUEST)
    assert "endTime" not in doc.spec and "fill it in" in doc.missing["endTime"]
    assert "  # endTime: (not returned by JDB Action 76 here; fill it in (ISO-8601 with offset))" in render_doc(doc)


def test_what_makes_an_exported_object_incomplete() -> None:
    """A spec that is not valid without the fields JDB did not return is incomplete, and the comment
    names them; a value JDB returned that a manifest cannot hold is named as such."""
    doc, _ = export_event("testag", _Live(DOCUMENTED_ROW), None, "summer-spins", REQUEST)
    doc.incomplete = incomplete_fields(doc)
    assert doc.incomplete == ["bet", "times", "minWithdrawal", "maxWithdrawal"]
    text = render_doc(doc)
    assert "# incomplete: JDB did not return bet, times, minWithdrawal, maxWithdrawal; fill these in" in text
    assert "  incomplete: [bet, times, minWithdrawal, maxWithdrawal]" in text
    full = dict(DOCUMENTED_ROW, bet="2.000", times=10, minWithdrawal="-1", maxWithdrawal="100.000")
    complete, _ = export_event("testag", _Live(full), None, "summer-spins", REQUEST)
    assert incomplete_fields(complete) == [] and "incomplete" not in render_doc(complete)
    odd, _ = export_event("testag", _Live(dict(DOCUMENTED_ROW, bet="2.000", times=0)), None, "summer-spins", REQUEST)
    odd.incomplete = incomplete_fields(odd)
    assert odd.incomplete == ["minWithdrawal", "maxWithdrawal", "times"]
    assert (
        "# incomplete: JDB did not return minWithdrawal, maxWithdrawal and returned times not valid in a manifest; fill these in"
    ) in render_doc(odd)


@pytest.mark.parametrize(
    ("status", "start", "acknowledged"),
    [
        ("ACTIVE", "2035-01-02T23:59:59.000+08:00", True),  # started 181 days before the export
        ("ACTIVE", "2035-01-03T00:00:01.000+08:00", False),  # within the 180 days
        ("INACTIVE", "2035-08-01T00:00:00.000+08:00", False),  # not started yet
        ("TERMINATED", "2034-01-01T00:00:00.000+08:00", False),  # stopped: never written as restorable
    ],
)
def test_a_running_event_that_started_before_the_retention_is_exported_as_acknowledged(
    status: str, start: str, acknowledged: bool
) -> None:
    """A restore of an event running at the export whose start is more than 180 days before it must
    not be blocked as possibly stopped and forgotten: the export writes ``createAfterRetention:
    true`` for exactly those events, with a comment."""
    row = dict(DOCUMENTED_ROW, status=status, startTime=start)
    now = datetime.fromisoformat("2035-07-02T00:00:00+08:00")
    doc, _ = export_event("testag", _Live(row), None, "summer-spins", REQUEST, now=now)
    assert doc.spec.get("createAfterRetention") is (True if acknowledged else None)
    text = render_doc(doc)
    if acknowledged:
        assert f"createAfterRetention: true  # {status} at the export, started more than 180 days before it" in text
    else:
        assert "createAfterRetention" not in text
    without_time, _ = export_event("testag", _Live(row), None, "summer-spins", REQUEST)
    assert "createAfterRetention" not in without_time.spec

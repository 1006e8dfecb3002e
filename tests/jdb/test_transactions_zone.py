"""Action 29 and JDB's report zone (issue 22 item 7).

No seed states the zone of ``dd-MM-yyyy HH:mm:ss`` report times (``reference/jdb.md``: one public
integration treats it as GMT-4), so the emulator's zone is a knob and the export is run against
each value: GMT-4, UTC and UTC+8. With the zone configured to match, the export holds exactly the
records whose ``lastModifyTime`` instant lies in the range. With a wrong zone the records cannot
show it; what is missing can: a JDB west of the configured zone answers nothing for windows in its
future (a warning on stderr, not a silent success), one east of it refuses windows as too old (an
error naming the zone) or, under the other knob value, answers nothing (a warning).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from typing import Callable

import pytest

from reconciler.vendors.jdb.client import JdbClient
from reconciler.vendors.jdb.transactions import split_windows, zone_warnings
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import JdbEmulator

from .conftest import AGENT, SANDBOX_DC, SANDBOX_IV, SANDBOX_KEY, Clock, JdbWorkspace

ZONES = {"-04:00": -4, "+00:00": 0, "+08:00": 8}


@pytest.fixture(params=list(ZONES))
def jdb_zone(request: pytest.FixtureRequest) -> str:
    """The emulator's report zone (knob ``report_tz``)."""
    return str(request.param)


@pytest.fixture
def report_too_old() -> str:
    return "refuse"


@pytest.fixture
def jdb_emulator(clock: Clock, jdb_zone: str, report_too_old: str) -> JdbEmulator:
    return JdbEmulator(
        dc=SANDBOX_DC,
        key=SANDBOX_KEY,
        iv=SANDBOX_IV,
        agents=[AGENT],
        clock=clock,
        report_tz=timezone(timedelta(hours=ZONES[jdb_zone])),
        report_too_old=report_too_old,
    )


def _configure(ws: JdbWorkspace, server: EmulatorServer, offset: str) -> None:
    ws.write(
        "reconciler.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Config
        providers:
          jdb:
            base_url: {server.url}
            dc: {SANDBOX_DC}
            key: file:secrets/jdb_key
            iv: file:secrets/jdb_iv
            retry_wait_initial: 0
            report_utc_offset: "{offset}"
        """,
    )


def _range(clock: Clock, minutes: int) -> tuple[datetime, datetime]:
    end = (datetime.fromtimestamp(clock.now, timezone.utc) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    return end - timedelta(minutes=minutes), end


def _export(ws: JdbWorkspace, start: datetime, end: datetime) -> tuple[int, list[dict[str, object]], str, str]:
    res = ws.cli(
        "export", "transactions", "--agent", AGENT, "--from", start.isoformat(), "--to", end.isoformat(), "--out", "tx.jsonl"
    )
    path = ws.root / "tx.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    return res.exit_code, records, res.stdout, res.stderr


def test_export_in_the_configured_report_zone_holds_exactly_the_range(
    ws: JdbWorkspace, jdb_server: EmulatorServer, jdb_zone: str, clock: Clock
) -> None:
    _configure(ws, jdb_server, jdb_zone)
    start, end = _range(clock, 100)
    code, records, out, err = _export(ws, start, end)
    assert code == 0, out + err
    expected = ws.emulator.transactions_between(AGENT, start, end)
    assert expected  # 0-3 records a minute: 100 minutes hold some
    assert [r["historyId"] for r in records] == [r["historyId"] for r in expected]
    assert "warning" not in err
    # the records' report times are the emulator's wall clock in its zone, inside the range
    tz = timezone(timedelta(hours=ZONES[jdb_zone]))
    for r in records:
        stamp = datetime.strptime(str(r["lastModifyTime"]), "%d-%m-%Y %H:%M:%S").replace(tzinfo=tz)
        assert start <= stamp < end


@pytest.mark.parametrize(("jdb_zone", "configured"), [("-04:00", "+00:00"), ("+00:00", "+08:00")])
def test_jdb_west_of_the_configured_zone_is_a_warning_not_a_silent_success(
    ws: JdbWorkspace, jdb_server: EmulatorServer, configured: str, clock: Clock
) -> None:
    _configure(ws, jdb_server, configured)
    start, end = _range(clock, 60)
    assert ws.emulator.transactions_between(AGENT, start, end)  # JDB has records for the range
    code, records, out, err = _export(ws, start, end)
    assert records == [] and "Exported 0 record(s) from 4 window(s)" in out
    assert code == 0  # a quiet agent answers the same: a warning, see docs/export-transactions.md
    assert "warning: JDB Action 29 returned no records for any of the 4 window(s)" in err
    assert f"providers.jdb.report_utc_offset (UTC{configured})" in err and "west of the configured one" in err


@pytest.mark.parametrize(("jdb_zone", "configured"), [("+00:00", "+01:00")])
def test_newest_windows_empty_after_older_ones_had_records_is_a_warning(
    ws: JdbWorkspace, jdb_server: EmulatorServer, configured: str, clock: Clock
) -> None:
    _configure(ws, jdb_server, configured)
    start, end = _range(clock, 100)  # JDB reads it an hour later: the last hour is in its future
    code, records, out, err = _export(ws, start, end)
    assert code == 0 and records, out + err
    assert "warning: JDB Action 29 returned no records for the newest 4 of 7 window(s)" in err
    assert "although older ones had records" in err and "UTC+01:00" in err


@pytest.mark.parametrize(("jdb_zone", "configured"), [("+08:00", "-04:00")])
@pytest.mark.parametrize("report_too_old", ["refuse", "empty"])
def test_jdb_east_of_the_configured_zone_is_an_error_or_a_warning(
    ws: JdbWorkspace, jdb_server: EmulatorServer, configured: str, report_too_old: str, clock: Clock
) -> None:
    _configure(ws, jdb_server, configured)
    start, end = _range(clock, 30)  # JDB reads it 12 hours earlier: older than the 2 hours it serves
    code, records, out, err = _export(ws, start, end)
    if report_too_old == "refuse":
        assert code == 1 and not (ws.root / "tx.jsonl").exists() and not (ws.root / "tx.jsonl.part").exists()
        assert "code 8006" in err and "probably east of the configured one" in err and "UTC-04:00" in err
    else:
        assert code == 0 and records == []
        assert "warning: JDB Action 29 returned no records for any of the 2 window(s)" in err


@pytest.mark.parametrize("jdb_zone", ["-04:00"])
@pytest.mark.parametrize(
    ("counts", "warned"),
    [
        ([3, 2, 4, 1, 2, 5, 0], False),  # a quiet last 10 minutes: common, not worth a warning
        ([3, 2, 4, 1, 0, 0, 0], True),  # 40 quiet minutes at the end
        ([0, 0, 0, 0, 0, 0, 0], True),
        ([0, 0, 3, 0, 2, 1, 1], False),  # quiet at the start is JDB's past, not its future
    ],
)
def test_which_empty_windows_are_warned_about(make_jdb_client: Callable[..., JdbClient], counts: list[int], warned: bool) -> None:
    start = datetime(2031, 3, 1, 10, 0, tzinfo=timezone.utc)
    windows = split_windows(start, start + timedelta(minutes=100), now=start + timedelta(hours=1, minutes=50))
    assert len(windows) == len(counts)
    warnings = zone_warnings(make_jdb_client(), windows, counts)
    assert bool(warnings) is warned
    if warned:
        assert "providers.jdb.report_utc_offset (UTC-04:00)" in warnings[0]

"""Action 29 export: window splitting at JDB's boundaries, and a real export over HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Callable

import pytest

from reconciler.vendors.jdb.client import JdbClient
from reconciler.errors import UsageError
from reconciler.vendors.jdb.transactions import ExportProgress, Window, export_transactions, split_windows

from .conftest import AGENT, Clock, JdbWorkspace

NOW = datetime(2025, 3, 14, 15, 0, 30, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def at(hh: int, mm: int) -> datetime:
    return datetime(2025, 3, 14, hh, mm, tzinfo=timezone.utc)


def test_exactly_15_minutes_is_one_window() -> None:
    assert split_windows(at(14, 0), at(14, 15), now=NOW) == [Window(at(14, 0), at(14, 15))]


def test_one_minute_more_is_two_windows() -> None:
    assert split_windows(at(14, 0), at(14, 16), now=NOW) == [Window(at(14, 0), at(14, 15)), Window(at(14, 15), at(14, 16))]


def test_windows_are_consecutive_and_cover_the_range() -> None:
    windows = split_windows(at(13, 2), at(14, 57), now=NOW)
    assert windows[0].start == at(13, 2) and windows[-1].end == at(14, 57)
    assert all(a.end == b.start for a, b in pairwise(windows))
    assert all(w.end - w.start <= timedelta(minutes=15) for w in windows)
    assert len(windows) == 8


def test_newest_data_is_three_minutes_behind_now() -> None:
    assert split_windows(at(14, 56), at(14, 57), now=NOW)[-1].end == at(14, 57)  # the seed's example
    with pytest.raises(UsageError, match="3 minutes"):
        split_windows(at(14, 56), at(14, 58), now=NOW)


def test_at_most_two_hours_back() -> None:
    assert split_windows(at(13, 2), at(13, 3), now=NOW)  # 1 h 58.5 min ago
    with pytest.raises(UsageError, match="2 hours"):
        split_windows(at(13, 1), at(13, 3), now=NOW)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (at(14, 0) + timedelta(seconds=30), at(14, 10), "whole minute"),
        (at(14, 0), at(14, 10) + timedelta(microseconds=1), "whole minute"),
        (at(14, 10), at(14, 10), "empty"),
        (at(14, 10), at(14, 0), "empty"),
        (at(14, 0).replace(tzinfo=None), at(14, 10), "UTC offset"),
    ],
)
def test_bad_ranges(start: datetime, end: datetime, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        split_windows(start, end, now=NOW)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _boundary_with_record(client: JdbClient, now: datetime) -> datetime:
    """A minute that has a record stamped exactly hh:mm:00 (it comes back from both windows)."""
    first = (now - timedelta(minutes=100)).replace(second=0, microsecond=0)
    for k in range(80):
        minute = first + k * MIN
        stamp = client.report_time(minute)
        if any(r["lastModifyTime"] == stamp for r in client.transactions(agent=AGENT, start=minute, end=minute + MIN)):
            return minute
    raise AssertionError("no record on a minute boundary in the sandbox data")


def test_export_merges_windows_and_drops_duplicates(jdb_client: JdbClient, clock: Clock, tmp_path: Path) -> None:
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    boundary = _boundary_with_record(jdb_client, now)
    start, end = boundary - 15 * MIN, boundary + 15 * MIN
    seen: list[ExportProgress] = []
    out = tmp_path / "tx.jsonl"
    result = export_transactions(jdb_client, agent=AGENT, start=start, end=end, out_path=out, progress=seen.append, now=now)
    assert (result.windows, [p.windows_done for p in seen]) == (2, [1, 2])
    assert result.duplicates >= 1
    records = _lines(out)
    ids = [r["historyId"] for r in records]
    assert len(ids) == len(set(ids)) == result.records == seen[-1].records > 0
    expected = {
        r["historyId"]
        for k in range(30)
        for r in jdb_client.transactions(agent=AGENT, start=start + k * MIN, end=start + (k + 1) * MIN)
        if r["lastModifyTime"] != jdb_client.report_time(end)
    }
    assert set(ids) == expected
    assert jdb_client.action_counts[29] > 2  # the export itself used one call per window


def test_export_filters_game_types_and_keeps_per_type_shapes(
    make_jdb_client: Callable[..., JdbClient], clock: Clock, tmp_path: Path
) -> None:
    client = make_jdb_client()
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    end = (now - 4 * MIN).replace(second=0, microsecond=0)
    out = tmp_path / "slots.jsonl"
    export_transactions(client, agent=AGENT, start=end - 100 * MIN, end=end, out_path=out, game_types=[0, 18], now=now)
    records = _lines(out)
    assert records and {r["gType"] for r in records} <= {0, 18}
    for r in records:
        assert ("jackpot" in r) == (r["gType"] == 0) and ("roundSeqNo" in r) == (r["gType"] == 18)
    assert not (tmp_path / "slots.jsonl.part").exists()


def test_export_transactions_command(ws: JdbWorkspace) -> None:
    start = (datetime.now(timezone.utc) - timedelta(minutes=40)).replace(second=0, microsecond=0)
    res = ws.cli("export", "transactions", "--agent", AGENT, "--from", start.isoformat(), "--out", "tx.jsonl")
    assert res.exit_code == 0, res.stdout + res.stderr
    records = _lines(ws.root / "tx.jsonl")
    assert f"Exported {len(records)} record(s) from 3 window(s) to tx.jsonl" in res.stdout
    assert records and len({r["historyId"] for r in records}) == len(records)


def test_export_transactions_command_refuses_a_range_jdb_would_refuse(ws: JdbWorkspace) -> None:
    old = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(second=0, microsecond=0)
    res = ws.cli("export", "transactions", "--agent", AGENT, "--from", old.isoformat(), "--out", "tx.jsonl")
    assert res.exit_code == 1 and "only the last 2 hours" in res.stderr
    assert ws.stats() == {} and not (ws.root / "tx.jsonl").exists()
    res = ws.cli("export", "transactions", "--agent", AGENT, "--from", "yesterday", "--out", "tx.jsonl")
    assert res.exit_code == 1 and "not an ISO-8601 time" in res.stderr

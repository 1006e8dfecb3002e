"""Export JDB transaction details (Action 29) for a time range as JSON Lines.

JDB serves Action 29 under rules the range must satisfy (``seeds/jdb-action29-transactions.txt``):
bounds on whole minutes (seconds ``00``), at most 15 minutes per call, the newest records 3
minutes behind now, nothing older than 2 hours. :func:`split_windows` turns ``[start, end)`` into
consecutive windows that obey them (or raises :class:`~reconciler.errors.UsageError`), and
:func:`export_transactions` fetches each window (gzip), merges them, drops duplicate
``historyId`` s — a record stamped exactly on a window boundary can come back twice — and writes
one JSON object per line, ordered by ``lastModifyTime`` then ``historyId``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from reconciler import safeio
from reconciler.clients.jdb import JdbClient
from reconciler.errors import UsageError

WINDOW_SPAN = timedelta(minutes=15)
LAG = timedelta(minutes=3)
HISTORY = timedelta(hours=2)
HISTORY_MARGIN = timedelta(minutes=1)
"""Kept free at the old end of the 2-hour history: the first call must still be inside it when it
reaches JDB (clock skew, latency)."""


@dataclass(frozen=True)
class Window:
    """One Action 29 call: ``starttime`` and ``endtime``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class ExportProgress:
    """Reported after each window: how far the export is and how many records it holds."""

    windows_done: int
    windows_total: int
    records: int
    window: Window


@dataclass(frozen=True)
class ExportResult:
    path: Path
    records: int
    windows: int
    duplicates: int


def _minute_text(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def parse_bound(text: str, name: str) -> datetime:
    """A range bound given on the command line: ISO-8601 with a UTC offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{name} {text!r} is not an ISO-8601 time (e.g. 2031-03-01T10:00+00:00)") from None
    _check_bound(value, name)
    return value


def latest_end(now: datetime) -> datetime:
    """The newest window end JDB serves at ``now`` (3 minutes back, on a whole minute)."""
    return (now - LAG).replace(second=0, microsecond=0)


def _check_bound(dt: datetime, name: str) -> None:
    if dt.tzinfo is None:
        raise UsageError(f"{name} needs a UTC offset (e.g. 2025-01-31T14:00+00:00)")
    if dt.second or dt.microsecond:
        raise UsageError(f"{name} must be a whole minute: JDB Action 29 accepts only hh:mm:00 bounds")


def split_windows(start: datetime, end: datetime, *, now: datetime,
                  span: timedelta = WINDOW_SPAN) -> list[Window]:
    """Consecutive windows covering ``[start, end)`` that satisfy JDB's Action 29 rules."""
    _check_bound(start, "start")
    _check_bound(end, "end")
    if start >= end:
        raise UsageError(f"the export range is empty: start {_minute_text(start)} is not before end {_minute_text(end)}")
    newest = now - LAG
    if end > newest:
        raise UsageError(
            f"end {_minute_text(end)} is too recent: JDB shows records 3 minutes after the fact, "
            f"so the range may end at {_minute_text(latest_end(now))} at the latest"
        )
    if start < now - HISTORY + HISTORY_MARGIN:
        raise UsageError(
            f"start {_minute_text(start)} is too old: JDB Action 29 serves only the last 2 hours "
            f"(export from {_minute_text(now - HISTORY + HISTORY_MARGIN + timedelta(seconds=59))} on); "
            "older records need Action 64, which this export does not use"
        )
    windows = []
    cursor = start
    while cursor < end:
        upper = min(cursor + span, end)
        windows.append(Window(cursor, upper))
        cursor = upper
    return windows


def _sortable(stamp: str) -> str:
    """``dd-MM-yyyy HH:mm:ss`` -> ``yyyyMMdd HH:mm:ss`` (compares as text)."""
    return f"{stamp[6:10]}{stamp[3:5]}{stamp[0:2]}{stamp[10:]}" if len(stamp) == 19 else stamp


def _order(record: dict[str, Any]) -> tuple[str, str]:
    return _sortable(str(record.get("lastModifyTime", ""))), str(record.get("historyId", ""))


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    """Write atomically (safeio: a new file renamed into place, never through a symlink): a partial
    file never takes the place of a finished export."""
    safeio.write_text(path, "".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"
                                    for rec in records))


def export_transactions(
    client: JdbClient,
    *,
    agent: str,
    start: datetime,
    end: datetime,
    out_path: Path,
    game_types: Sequence[int] | None = None,
    progress: Callable[[ExportProgress], None] | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Fetch ``[start, end)`` of ``agent``'s transaction details and write them as JSON Lines.

    Windows are fetched oldest first (the oldest is closest to leaving JDB's 2-hour history). When
    a ``historyId`` comes back twice, the later window's copy (the newer state) is kept; a record
    stamped exactly at ``end`` is left to the next range, so consecutive exports do not overlap.
    """
    windows = split_windows(start, end, now=now or datetime.now(timezone.utc))
    limit = _sortable(client.report_time(end))
    merged: dict[str, dict[str, Any]] = {}
    duplicates = 0
    for done, window in enumerate(windows, 1):
        for record in client.transactions(agent=agent, start=window.start, end=window.end, game_types=game_types):
            if _order(record)[0] >= limit:
                continue  # stamped at ``end`` itself: it belongs to the next range
            key = str(record.get("historyId"))
            duplicates += key in merged
            merged[key] = record
        if progress is not None:
            progress(ExportProgress(done, len(windows), len(merged), window))
    _write_lines(out_path, sorted(merged.values(), key=_order))
    return ExportResult(path=out_path, records=len(merged), windows=len(windows), duplicates=duplicates)

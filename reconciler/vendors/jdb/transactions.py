"""Export JDB transaction details (Action 29) for a time range as JSON Lines.

JDB serves Action 29 under rules the range must satisfy (``seeds/jdb-action29-transactions.txt``):
bounds on whole minutes (seconds ``00``), at most 15 minutes per call, the newest records 3
minutes behind now, nothing older than 2 hours. :func:`split_windows` turns ``[start, end)`` into
consecutive windows that obey them (or raises :class:`~reconciler.errors.UsageError`), and
:func:`export_transactions` fetches each window (gzip), merges them, drops duplicate
``historyId`` s — a record stamped exactly on a window boundary can come back twice — and writes
one JSON object per line, ordered by ``lastModifyTime`` then ``historyId``.

Report times carry no zone and no seed states JDB's (``reference/jdb.md``: one public
integration treats it as GMT-4): the client sends each window in the configured report zone
(``providers.jdb.report_utc_offset``). A wrong zone cannot be seen in the records (JDB filters and
stamps them in its own zone), only in what is missing: a zone west of the configured one puts the
windows in JDB's future, where it has nothing yet; one east of it puts them in JDB's past (older
than JDB serves, or other records). :func:`zone_warnings` names what the answers suggest; a refusal
of a window as too old although it lies inside the last two hours says so too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from reconciler import safeio
from reconciler.vendors.jdb.client import JdbClient
from reconciler.errors import ApiError, UsageError

WINDOW_SPAN = timedelta(minutes=15)
LAG = timedelta(minutes=3)
HISTORY = timedelta(hours=2)
QUIET_TAIL = timedelta(minutes=30)
"""Empty newest windows spanning this long, after older ones had records, are warned about."""
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
    empty_windows: int = 0
    warnings: tuple[str, ...] = ()


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


def split_windows(start: datetime, end: datetime, *, now: datetime, span: timedelta = WINDOW_SPAN) -> list[Window]:
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


def offset_text(tz: Any) -> str:
    """``UTC-04:00`` for a fixed-offset zone."""
    delta = datetime(2000, 1, 1, tzinfo=timezone.utc).astimezone(tz).utcoffset() or timedelta(0)
    sign, minutes = ("-" if delta < timedelta(0) else "+"), abs(int(delta.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_warnings(client: JdbClient, windows: Sequence[Window], counts: Sequence[int]) -> list[str]:
    """What the per-window record counts say about the report zone (empty when nothing is amiss).

    Every window empty: JDB had nothing for the range as it read it, which is what a report zone
    west of the configured one gives (every window in JDB's future) — or a quiet agent; the two
    cannot be told apart from the answers, so this is a warning naming the zone, not an error.
    The newest windows empty for at least :data:`QUIET_TAIL` after older ones had records: the same
    edge, crossed inside the range (a shorter quiet end is too common to be worth a warning)."""
    if not windows:
        return []
    zone = offset_text(client.report_tz)
    sent = f"sent as JDB report time {client.report_time(windows[0].start)} to {client.report_time(windows[-1].end)}"
    why = (
        f"if the agent had play then, check providers.jdb.report_utc_offset ({zone}): JDB's report zone is "
        "no seed's fact, and a zone west of the configured one puts the windows in JDB's future, where it "
        "has no records yet"
    )
    if not any(counts):
        return [
            f"JDB Action 29 returned no records for any of the {len(windows)} window(s) "
            f"{_minute_text(windows[0].start)} to {_minute_text(windows[-1].end)} ({sent}); {why}"
        ]
    trailing = 0
    for count in reversed(counts):
        if count:
            break
        trailing += 1
    if trailing and windows[-1].end - windows[len(windows) - trailing].start >= QUIET_TAIL:
        first = windows[len(windows) - trailing]
        return [
            f"JDB Action 29 returned no records for the newest {trailing} of {len(windows)} window(s) "
            f"(from {_minute_text(first.start)}, JDB report time {client.report_time(first.start)}) although "
            f"older ones had records; {why}"
        ]
    return []


def _zone_hint(exc: ApiError, client: JdbClient, window: Window) -> ApiError:
    """JDB refusing a window as too old (``8006``) that lies inside the last two hours: JDB's
    report zone is probably east of the configured one (the window reaches JDB in its past)."""
    if exc.code != "8006":
        return exc
    zone = offset_text(client.report_tz)
    hint = (
        f"{exc.vendor_message} (the window {_minute_text(window.start)} to {_minute_text(window.end)} is inside "
        f"the last 2 hours, sent as JDB report time {client.report_time(window.start)} at {zone}: JDB's report "
        "zone is probably east of the configured one; check providers.jdb.report_utc_offset)"
    )
    return type(exc)(hint, code=exc.code, http_status=exc.http_status, host=exc.host, operation=exc.operation)


def _sortable(stamp: str) -> str:
    """``dd-MM-yyyy HH:mm:ss`` -> ``yyyyMMdd HH:mm:ss`` (compares as text)."""
    return f"{stamp[6:10]}{stamp[3:5]}{stamp[0:2]}{stamp[10:]}" if len(stamp) == 19 else stamp


def _order(record: dict[str, Any]) -> tuple[str, str]:
    return _sortable(str(record.get("lastModifyTime", ""))), str(record.get("historyId", ""))


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    """Write atomically (safeio: a new file renamed into place, never through a symlink): a partial
    file never takes the place of a finished export."""
    safeio.write_text(path, "".join(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n" for rec in records))


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
    counts: list[int] = []
    for done, window in enumerate(windows, 1):
        try:
            answer = client.transactions(agent=agent, start=window.start, end=window.end, game_types=game_types)
        except ApiError as exc:
            raise _zone_hint(exc, client, window) from None
        counts.append(len(answer))
        for record in answer:
            if _order(record)[0] >= limit:
                continue  # stamped at ``end`` itself: it belongs to the next range
            key = str(record.get("historyId"))
            duplicates += key in merged
            merged[key] = record
        if progress is not None:
            progress(ExportProgress(done, len(windows), len(merged), window))
    _write_lines(out_path, sorted(merged.values(), key=_order))
    return ExportResult(
        path=out_path,
        records=len(merged),
        windows=len(windows),
        duplicates=duplicates,
        empty_windows=counts.count(0),
        warnings=tuple(zone_warnings(client, windows, counts)),
    )

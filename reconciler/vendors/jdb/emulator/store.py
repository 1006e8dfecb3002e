"""The JDB emulator's state: the knobs (validated once), the SQLite tables (players, events,
bindings, back-office marks), the player registry and the retention that ages events out.

The actions (:mod:`.free_spins`, :mod:`.transactions`) and the HTTP side (:mod:`.api`) are
subclasses that read and write this state under the server's lock.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from reconciler.sandbox.base import Emulator
from reconciler.vendors.jdb.emulator.protocol import (
    BUSY_ANSWERS,
    DEFAULT_PLAYER,
    EVENT_RETENTION_DAYS,
    JDB_REPORT_TZ,
    KNOBS,
    TEXT_NO_EVENT,
    _Fail,
    _fmt_money,
)


@dataclass(frozen=True)
class _Event:
    """One stored event (a row of ``events``)."""

    event_id: int
    agent: str
    name: str
    type: str
    start_ms: int
    start_off: int
    end_ms: int
    end_off: int
    machine_types: list[int]
    bet: Decimal
    times: int | None
    min_w: Decimal
    max_w: Decimal
    bonus_chips: Decimal | None
    chips_multiplier: Decimal | None
    terminated: bool
    update_ms: int

    @classmethod
    def from_row(cls, row: Any) -> "_Event":
        def dec(v: Any) -> Decimal | None:
            return None if v is None else Decimal(v)

        return cls(
            event_id=row["event_id"],
            agent=row["agent"],
            name=row["name"],
            type=row["type"],
            start_ms=row["start_ms"],
            start_off=row["start_off"],
            end_ms=row["end_ms"],
            end_off=row["end_off"],
            machine_types=json.loads(row["machine_types"]),
            bet=Decimal(row["bet"]),
            times=row["times"],
            min_w=Decimal(row["min_w"]),
            max_w=Decimal(row["max_w"]),
            bonus_chips=dec(row["bonus_chips"]),
            chips_multiplier=dec(row["chips_multiplier"]),
            terminated=bool(row["terminated"]),
            update_ms=row["update_ms"],
        )

    def status(self, now_ms: int) -> str:
        if self.terminated:
            return "TERMINATED"
        if now_ms < self.start_ms:
            return "INACTIVE"
        return "ACTIVE" if now_ms < self.end_ms else "EXPIRED"

    @property
    def required_turnover(self) -> str | None:
        if self.bonus_chips is None or self.chips_multiplier is None:
            return None
        return _fmt_money(self.bonus_chips * self.chips_multiplier)


class JdbState(Emulator):
    """The stored state and knobs of the JDB emulator (see the package docstring)."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        dc: str,
        key: str,
        iv: str,
        agents: Sequence[str] = ("sandboxag",),
        players: Sequence[str] | None = None,
        clock: Callable[[], float] = time.time,
        currency: str = "RB",
        report_tz: tzinfo = JDB_REPORT_TZ,
        search_fields: str = "documented",
        bonuschips_times: str = "required",
        busy_status: str = "9999",
        report_too_old: str = "refuse",
        event_retention_days: int | None = EVENT_RETENTION_DAYS,
        bonuschips_times_answer: str = "null",
        repeat_transaction: str = "answer",
        update_fields: str = "newest",
        update_active: str = "allowed",
        bind_bound: str = "noop",
        event_retention_from: str = "end",
    ):
        if report_too_old not in ("refuse", "empty"):
            raise ValueError("report_too_old is 'refuse' or 'empty'")
        if event_retention_days is not None and event_retention_days < 0:
            raise ValueError("event_retention_days is a number of days (None: forever)")
        self.report_too_old = report_too_old
        self.event_retention_days = event_retention_days
        if search_fields not in ("documented", "extended"):
            raise ValueError("search_fields is 'documented' or 'extended'")
        if bonuschips_times not in ("required", "ignored"):
            raise ValueError("bonuschips_times is 'required' or 'ignored'")
        if busy_status not in BUSY_ANSWERS:
            raise ValueError(f"busy_status is one of {', '.join(BUSY_ANSWERS)}")
        for knob, value in (
            ("bonuschips_times_answer", bonuschips_times_answer),
            ("repeat_transaction", repeat_transaction),
            ("update_fields", update_fields),
            ("update_active", update_active),
            ("bind_bound", bind_bound),
            ("event_retention_from", event_retention_from),
        ):
            if value not in KNOBS[knob]:
                raise ValueError(f"{knob} is one of {', '.join(KNOBS[knob])}")
        self.bonuschips_times_answer = bonuschips_times_answer
        self.repeat_transaction = repeat_transaction
        self.update_fields = update_fields
        self.update_active = update_active
        self.bind_bound = bind_bound
        self.event_retention_from = event_retention_from
        self.search_fields = search_fields
        self.bonuschips_times = bonuschips_times
        self.busy_status = busy_status
        if len(key.encode()) != 16 or len(iv.encode()) != 16:
            raise ValueError("the JDB key and IV must each be 16 ASCII characters")
        self.dc = dc
        self._key = key.encode()
        self._iv = iv.encode()
        self.agents = tuple(agents)
        self.clock = clock
        self.currency = currency
        self.report_tz = report_tz
        self.action_counts: Counter[int] = Counter()  # handled requests per action (tests read it)
        self._default_players = players is None
        self._initial_players = list(players or ())
        super().__init__(state_dir)

    def __repr__(self) -> str:  # never show the key or IV
        return f"JdbEmulator(dc={self.dc!r}, agents={list(self.agents)!r})"

    # -- storage ----------------------------------------------------------------------------
    def init_db(self) -> None:
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS players (
                agent TEXT NOT NULL, uid TEXT NOT NULL, locked INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (agent, uid)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS events (
                event_id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL, transaction_id TEXT NOT NULL,
                name TEXT NOT NULL, type TEXT NOT NULL, start_ms INTEGER NOT NULL, start_off INTEGER NOT NULL,
                end_ms INTEGER NOT NULL, end_off INTEGER NOT NULL, machine_types TEXT NOT NULL, bet TEXT NOT NULL,
                times INTEGER, min_w TEXT NOT NULL, max_w TEXT NOT NULL, bonus_chips TEXT, chips_multiplier TEXT,
                terminated INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL, update_ms INTEGER NOT NULL,
                terminated_ms INTEGER, UNIQUE (agent, transaction_id));
            CREATE TABLE IF NOT EXISTS bindings (
                event_id INTEGER NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (event_id, uid)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS events_end ON events (end_ms);
            CREATE TABLE IF NOT EXISTS back_office (
                event_id INTEGER PRIMARY KEY, hidden TEXT NOT NULL);
            """
        )
        if "terminated_ms" not in {r["name"] for r in self.db.execute("PRAGMA table_info(events)")}:
            # state kept by an emulator without the column: a terminated event's update time is
            # when it was terminated (Action 77 refuses a TERMINATED event)
            self.db.execute("ALTER TABLE events ADD COLUMN terminated_ms INTEGER")
            self.db.execute("UPDATE events SET terminated_ms = update_ms WHERE terminated = 1")
        self.db.execute("CREATE INDEX IF NOT EXISTS events_terminated ON events (terminated_ms)")
        if self.db.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'events'").fetchone() is None:
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', 10000)")
        for agent in self.agents:
            self.register_players(agent, self._initial_players)

    def register_players(self, agent: str, uids: Iterable[str], *, locked: bool = False) -> int:
        """Add players under ``agent`` (a locked player exists but fails binding); returns the count."""
        rows = [(agent, uid, int(locked)) for uid in dict.fromkeys(uids)]
        with self.lock, self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO players (agent, uid, locked) VALUES (?, ?, ?)", rows)
        return len(rows)

    def _players(self, agent: str, uids: Sequence[str]) -> dict[str, bool]:
        """The existing players among ``uids``: uid -> locked."""
        stored: dict[str, bool] = {}
        for i in range(0, len(uids), 500):
            chunk = list(uids[i : i + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT uid, locked FROM players WHERE agent = ? AND uid IN ({marks})", [agent, *chunk])
            stored.update((r["uid"], bool(r["locked"])) for r in rows)
        found: dict[str, bool] = {}
        for uid in uids:
            if uid in stored:
                found[uid] = stored[uid]
            elif self._default_players and DEFAULT_PLAYER.match(uid):
                found[uid] = False
        return found

    def _sample_players(self) -> list[str]:
        if self._default_players:
            return [f"player{n:05d}" for n in range(1, 21)]
        return self._initial_players[:20] or ["player00001"]

    def _age_out(self) -> None:
        """Forget events whose retention (knob ``event_retention_days``) is over, with their
        bindings: counted from ``endTime``, or (knob ``event_retention_from`` ``"stop"``) from
        when a TERMINATED event was terminated (always before its ``endTime``: Action 73 refuses
        an EXPIRED event)."""
        if self.event_retention_days is None:
            return
        cutoff = self._now_ms() - self.event_retention_days * 86_400_000
        gone, args = "end_ms < ?", [cutoff]
        if self.event_retention_from == "stop":
            gone, args = "(end_ms < ? OR terminated_ms < ?)", [cutoff, cutoff]
        if self.db.execute(f"SELECT 1 FROM events WHERE {gone} LIMIT 1", args).fetchone() is None:
            return  # the usual case: one or two index lookups per request
        with self.transaction():
            self.db.execute(f"DELETE FROM bindings WHERE event_id IN (SELECT event_id FROM events WHERE {gone})", args)
            self.db.execute(f"DELETE FROM back_office WHERE event_id IN (SELECT event_id FROM events WHERE {gone})", args)
            self.db.execute(f"DELETE FROM events WHERE {gone}", args)

    def _event(self, agent: str, event_id: int, *, code: str = "9998") -> _Event:
        row = self.db.execute("SELECT * FROM events WHERE event_id = ? AND agent = ?", (event_id, agent)).fetchone()
        if row is None:
            raise _Fail(code, TEXT_NO_EVENT)
        return _Event.from_row(row)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

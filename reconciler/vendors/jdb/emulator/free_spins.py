"""The free-spin event actions: 71 (a player's events), 72 (create), 73 (terminate), 74/75 (bind,
unbind players), 76 (search), 77 (update); events made in the back office; the test helper
:meth:`FreeSpinActions.stored_events`. The rules and the knobs are in the package docstring.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable, Sequence

from reconciler.vendors.jdb.emulator.protocol import (
    A76_DOCUMENTED,
    MAX_PLAYERS,
    STATUSES,
    TEXT_BOUND,
    TEXT_NOT_INACTIVE,
    TEXT_RANGE,
    TEXT_USER,
    TYPES,
    _event_id,
    _Fail,
    _fmt_iso,
    _fmt_money,
    _int,
    _int_list,
    _iso,
    _money,
    _ms,
    _need,
    _offset_min,
    _param,
    _present,
    _state_error,
    _str,
    _str_list,
)
from reconciler.vendors.jdb.emulator.store import JdbState, _Event


class FreeSpinActions(JdbState):
    """Actions 71-77 and the back-office events (see the package docstring)."""

    def stored_events(self, agent: str) -> list[dict[str, Any]]:
        """Every stored event of ``agent`` with all its fields (the extended Action 76 row), oldest
        first: what a test inspects after an apply, whatever ``search_fields`` the API answers with."""
        with self.lock:
            self._age_out()
            now = self._now_ms()
            events = [
                _Event.from_row(r)
                for r in self.db.execute("SELECT * FROM events WHERE agent = ? ORDER BY event_id", (agent,)).fetchall()
            ]
            counts = self._player_counts([e.event_id for e in events])
            return [self._full_row(e, now, counts.get(e.event_id, 0)) for e in events]

    def create_back_office_event(
        self, agent: str, event: dict[str, Any], *, players: Sequence[str] = (), hidden: Sequence[str] = ()
    ) -> int:
        """An event made in JDB's back office (no transactionId of ours); Action 76 leaves the
        ``hidden`` fields out of its row. Raises ``ValueError`` for fields Action 72 would refuse."""
        unknown = set(hidden) - set(self._full_row_keys())
        if unknown or agent not in self.agents:
            raise ValueError(f"unknown agent or hidden field(s): {agent}, {sorted(unknown)}")
        try:
            fields = self._create_fields(event)
        except _Fail as fail:
            raise ValueError(fail.text) from None
        with self.lock:
            now = self._now_ms()
            with self.transaction():
                cur = self.db.execute(
                    "INSERT INTO events (agent, transaction_id, name, type, start_ms, start_off, end_ms, end_off,"
                    " machine_types, bet, times, min_w, max_w, bonus_chips, chips_multiplier, created_ms, update_ms)"
                    " VALUES (:agent, :tid, :name, :type, :start_ms, :start_off, :end_ms, :end_off, :machine_types,"
                    " :bet, :times, :min_w, :max_w, :bonus_chips, :chips_multiplier, :now, :now)",
                    {**fields, "agent": agent, "tid": f"back-office-{now}-{fields['name']}", "now": now},
                )
                event_id = int(cur.lastrowid or 0)
                self.db.execute(
                    "INSERT INTO back_office (event_id, hidden) VALUES (?, ?)", (event_id, json.dumps(sorted(set(hidden))))
                )
            self._bind(agent, event_id, list(players))
        return event_id

    @staticmethod
    def _full_row_keys() -> tuple[str, ...]:
        return (
            "endTime",
            "times",
            "bet",
            "minWithdrawal",
            "maxWithdrawal",
            "bonusChips",
            "chipsMultiplier",
            "requiredTurnover",
            "updateTime",
            "currency",
            "machineTypes",
            "totalTimes",
            "totalUseTimes",
        )

    def _hidden(self, event_ids: list[int]) -> dict[int, list[str]]:
        if not event_ids:
            return {}
        marks = ",".join("?" * len(event_ids))
        rows = self.db.execute(f"SELECT event_id, hidden FROM back_office WHERE event_id IN ({marks})", event_ids)
        return {r[0]: json.loads(r[1]) for r in rows}

    # -- players ----------------------------------------------------------------------------
    def _bind(self, agent: str, event_id: int, uids: Sequence[str]) -> dict[str, list[str]]:
        uids = list(dict.fromkeys(uids))
        known = self._players(agent, uids)
        bound: set[str] = set()
        if self.bind_bound != "noop":
            for i in range(0, len(uids), 500):
                chunk = uids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                bound.update(
                    r[0]
                    for r in self.db.execute(
                        f"SELECT uid FROM bindings WHERE event_id = ? AND uid IN ({marks})", [event_id, *chunk]
                    )
                )
        if bound and self.bind_bound == "error":
            raise _Fail("9998", TEXT_BOUND)
        rows = [(event_id, u) for u in uids if u in known and not known[u]]
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO bindings (event_id, uid) VALUES (?, ?)", rows)
        return {
            "failedBindingPlayers": [u for u in uids if known.get(u) or u in bound],
            "notExistedPlayers": [u for u in uids if u not in known],
        }

    @staticmethod
    def _player_list(p: dict[str, Any], *, required: bool) -> list[str]:
        if not _present(p, "players"):
            if required:
                raise _param("players")
            return []
        players = _str_list(p["players"], "players")
        if len(players) > MAX_PLAYERS:
            raise _param("players", f"holds more than {MAX_PLAYERS} players")
        return players

    # -- free-spin events -------------------------------------------------------------------
    def _a72_create(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        fields = self._create_fields(p)
        transaction_id = _str(_need(p, "transactionId"), "transactionId", max_len=36)
        players = self._player_list(p, required=False)
        if p.get("autoCreatePlayerEnabled") is True:
            if len(players) != 1:
                raise _param("players", "must hold exactly one player when autoCreatePlayerEnabled is true")
            if not self._players(agent, players):
                self.register_players(agent, players)
        existing = self.db.execute(
            "SELECT event_id FROM events WHERE agent = ? AND transaction_id = ?", (agent, transaction_id)
        ).fetchone()
        if existing is not None:
            if self.repeat_transaction == "bind" and players:
                event = self._event(agent, existing[0])
                if event.status(self._now_ms()) in ("INACTIVE", "ACTIVE"):
                    return {"status": "0000", "data": {"eventId": existing[0], **self._bind(agent, existing[0], players)}}
            return {"status": "0000", "data": {"eventId": existing[0], "failedBindingPlayers": [], "notExistedPlayers": []}}
        now = self._now_ms()
        if fields["end_ms"] <= now:
            raise _param("endTime", "must be later than the current time")
        cur = self.db.execute(
            "INSERT INTO events (agent, transaction_id, name, type, start_ms, start_off, end_ms, end_off, machine_types,"
            " bet, times, min_w, max_w, bonus_chips, chips_multiplier, created_ms, update_ms)"
            " VALUES (:agent, :tid, :name, :type, :start_ms, :start_off, :end_ms, :end_off, :machine_types, :bet,"
            " :times, :min_w, :max_w, :bonus_chips, :chips_multiplier, :now, :now)",
            {**fields, "agent": agent, "tid": transaction_id, "now": now},
        )
        event_id = int(cur.lastrowid or 0)
        return {"status": "0000", "data": {"eventId": event_id, **self._bind(agent, event_id, players)}}

    def _create_fields(self, p: dict[str, Any]) -> dict[str, Any]:
        """Validate Action 72's event fields in the documented order; the columns to store."""
        name = _str(_need(p, "name"), "name", max_len=70)
        start = _iso(_need(p, "startTime"), "startTime")
        end = _iso(_need(p, "endTime"), "endTime")
        machine_types = _int_list(_need(p, "machineTypes"), "machineTypes")
        bet = _money(_need(p, "bet"), "bet", positive=True)
        kind = _need(p, "type")
        if kind not in TYPES:
            raise _param("type", "is invalid")
        if kind == "BONUSCHIPS":
            if self.bonuschips_times == "required":
                _int(_need(p, "times"), "times", minimum=1)
            # kept as sent (what the knob bonuschips_times_answer "echo" answers); never used
            times = _int(p["times"], "times", minimum=1) if _present(p, "times") else None
        else:
            times = _int(_need(p, "times"), "times", minimum=1)
        chips = multiplier = None
        if kind == "BONUSCHIPS":
            chips = _money(_need(p, "bonusChips"), "bonusChips", positive=True)
            multiplier = _money(_need(p, "chipsMultiplier"), "chipsMultiplier", positive=True)
        min_w, max_w = self._withdrawals(p)
        if _ms(end) <= _ms(start):
            raise _param("endTime", "must be later than startTime")
        return {
            "name": name,
            "type": kind,
            "start_ms": _ms(start),
            "start_off": _offset_min(start),
            "end_ms": _ms(end),
            "end_off": _offset_min(end),
            "machine_types": json.dumps(machine_types),
            "bet": str(bet),
            "times": times,
            "min_w": str(min_w),
            "max_w": str(max_w),
            "bonus_chips": None if chips is None else str(chips),
            "chips_multiplier": None if multiplier is None else str(multiplier),
        }

    @staticmethod
    def _withdrawals(p: dict[str, Any]) -> tuple[Decimal, Decimal]:
        min_w = _money(_need(p, "minWithdrawal"), "minWithdrawal", allow_unlimited=True)
        max_w = _money(_need(p, "maxWithdrawal"), "maxWithdrawal", allow_unlimited=True)
        if min_w != -1 and max_w != -1 and min_w > max_w:
            raise _param("minWithdrawal", "must be less than or equal to maxWithdrawal")
        return min_w, max_w

    def _a73_terminate(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        event = self._event(agent, _event_id(_need(p, "eventId")))
        status = event.status(self._now_ms())
        if status in ("TERMINATED", "EXPIRED"):
            raise _state_error(status)
        now = self._now_ms()
        self.db.execute(
            "UPDATE events SET terminated = 1, terminated_ms = ?, update_ms = ? WHERE event_id = ?", (now, now, event.event_id)
        )
        return {"status": "0000"}

    def _a74_bind(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        event = self._event(agent, _event_id(_need(p, "eventId", "event id"), "event id"), code="9015")
        players = self._player_list(p, required=True)
        status = event.status(self._now_ms())
        if status not in ("INACTIVE", "ACTIVE"):
            raise _state_error(status)
        return {"status": "0000", "data": self._bind(agent, event.event_id, players)}

    def _a75_unbind(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        event = self._event(agent, _event_id(_need(p, "eventId")))
        players = _str_list(_need(p, "players"), "players")
        if event.status(self._now_ms()) != "INACTIVE":
            raise _Fail("9998", TEXT_NOT_INACTIVE)
        with self.transaction():
            self.db.executemany("DELETE FROM bindings WHERE event_id = ? AND uid = ?", [(event.event_id, u) for u in players])
        return {"status": "0000"}

    def _a77_update(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        event = self._event(agent, _event_id(_need(p, "eventId")))
        name = _str(_need(p, "name"), "name", max_len=70)
        machine_types = _int_list(_need(p, "machineTypes"), "machineTypes")
        bet = _money(_need(p, "bet"), "bet", positive=True)
        min_w, max_w = self._withdrawals(p)
        window = self._updated_window(event, p)
        status = event.status(self._now_ms())
        if status not in ("INACTIVE", "ACTIVE") or (status == "ACTIVE" and self.update_active == "refused"):
            raise _state_error(status)
        self.db.execute(
            "UPDATE events SET name = ?, machine_types = ?, bet = ?, min_w = ?, max_w = ?, start_ms = ?, start_off = ?,"
            " end_ms = ?, end_off = ?, update_ms = ? WHERE event_id = ?",
            (name, json.dumps(machine_types), str(bet), str(min_w), str(max_w), *window, self._now_ms(), event.event_id),
        )
        return {"status": "0000"}

    def _updated_window(self, event: _Event, p: dict[str, Any]) -> tuple[int, int, int, int]:
        """Knob ``update_fields``: ``newest`` — start/end may be sent but must equal the stored ones;
        ``older`` — both are mandatory and set (end later than start and than now)."""
        if self.update_fields == "newest":
            self._check_unchanged(event, p)
            return event.start_ms, event.start_off, event.end_ms, event.end_off
        start = _iso(_need(p, "startTime"), "startTime")
        end = _iso(_need(p, "endTime"), "endTime")
        self._check_unchanged(event, {k: v for k, v in p.items() if k not in ("startTime", "endTime")})
        if _ms(end) <= _ms(start):
            raise _param("endTime", "must be later than startTime")
        if _ms(end) <= self._now_ms():
            raise _param("endTime", "must be later than the current time")
        return _ms(start), _offset_min(start), _ms(end), _offset_min(end)

    @staticmethod
    def _check_unchanged(event: _Event, p: dict[str, Any]) -> None:
        fixed: dict[str, Callable[[Any], bool]] = {
            "startTime": lambda v: _ms(_iso(v, "startTime")) == event.start_ms,
            "endTime": lambda v: _ms(_iso(v, "endTime")) == event.end_ms,
            "type": lambda v: v == event.type,
            "times": lambda v: event.type == "BONUSCHIPS" or (event.times is not None and _int(v, "times") == event.times),
        }
        for name, same in fixed.items():
            if _present(p, name) and not same(p[name]):
                raise _param(name, "cannot be modified; terminate the event (Action 73) and create it again")

    def _a76_search(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        start = _ms(_iso(_need(p, "startTime"), "startTime"))
        end = _ms(_iso(_need(p, "endTime"), "endTime"))
        if start > end:
            raise _Fail("8009", TEXT_RANGE)
        now = self._now_ms()
        filters = self._event_filters(p)
        rows = self.db.execute(
            "SELECT * FROM events WHERE agent = ? AND start_ms >= ? AND end_ms <= ? ORDER BY event_id", (agent, start, end)
        ).fetchall()
        events = [e for e in map(_Event.from_row, rows) if all(f(e, now) for f in filters)]
        counts = self._player_counts([e.event_id for e in events])
        hidden = self._hidden([e.event_id for e in events])
        return {
            "status": "0000",
            "data": [
                {
                    k: v
                    for k, v in self._search_row(e, now, counts.get(e.event_id, 0)).items()
                    if k not in hidden.get(e.event_id, ())
                }
                for e in events
            ],
        }

    def _event_filters(self, p: dict[str, Any]) -> list[Callable[[_Event, int], bool]]:
        filters: list[Callable[[_Event, int], bool]] = []
        if _present(p, "eventId"):
            wanted = _event_id(p["eventId"])
            filters.append(lambda e, now: e.event_id == wanted)
        if _present(p, "name"):
            name = p["name"]
            filters.append(lambda e, now: e.name == name)
        filters.extend(self._status_type_filters(p))
        if _present(p, "machineTypes"):
            machine_types = set(_int_list(p["machineTypes"], "machineTypes"))
            filters.append(lambda e, now: bool(machine_types & set(e.machine_types)))
        return filters

    @staticmethod
    def _status_type_filters(p: dict[str, Any]) -> list[Callable[[_Event, int], bool]]:
        filters: list[Callable[[_Event, int], bool]] = []
        if p.get("status") is not None:
            code = _int(p["status"], "status")
            if code >= len(STATUSES):
                raise _param("status", "is invalid")
            filters.append(lambda e, now: e.status(now) == STATUSES[code])
        if _present(p, "types"):
            types = _str_list(p["types"], "types")
            if not set(types) <= set(TYPES):
                raise _param("types", "is invalid")
            filters.append(lambda e, now: e.type in types)
        return filters

    def _player_counts(self, event_ids: list[int]) -> dict[int, int]:
        if not event_ids:
            return {}
        marks = ",".join("?" * len(event_ids))
        rows = self.db.execute(
            f"SELECT event_id, COUNT(*) FROM bindings WHERE event_id IN ({marks}) GROUP BY event_id", event_ids
        )
        return {r[0]: r[1] for r in rows}

    def _search_row(self, e: _Event, now: int, players: int) -> dict[str, Any]:
        row = self._full_row(e, now, players)
        if self.search_fields == "documented":
            return {k: row[k] for k in A76_DOCUMENTED}
        return row

    def _full_row(self, e: _Event, now: int, players: int) -> dict[str, Any]:
        chips = e.type == "BONUSCHIPS"
        return {
            "eventId": e.event_id,
            "name": e.name,
            "creator": e.agent,
            "numberOfPlayers": players,
            "type": e.type,
            "totalUseTimes": None if chips else 0,
            "totalTimes": None if chips else (e.times or 0) * players,
            "totalCashout": "0.000",
            "machineTypes": e.machine_types,
            "status": e.status(now),
            "currency": self.currency,
            "startTime": _fmt_iso(e.start_ms, e.start_off),
            "endTime": _fmt_iso(e.end_ms, e.end_off),
            "times": self._times_answer(e),
            "bet": _fmt_money(e.bet),
            "minWithdrawal": _fmt_money(e.min_w),
            "maxWithdrawal": _fmt_money(e.max_w),
            "bonusChips": None if e.bonus_chips is None else _fmt_money(e.bonus_chips),
            "chipsMultiplier": None if e.chips_multiplier is None else _fmt_money(e.chips_multiplier),
            "requiredTurnover": e.required_turnover,
            "updateTime": _fmt_iso(e.update_ms, e.start_off),
        }

    def _times_answer(self, e: _Event) -> int | None:
        """``times`` as answered: a BONUSCHIPS event's is null unless the knob echoes what was sent."""
        if e.type == "BONUSCHIPS" and self.bonuschips_times_answer == "null":
            return None
        return e.times

    def _a71_player_events(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        uid = _str(_need(p, "uid"), "uid", max_len=50)
        if not self._players(agent, [uid]):
            raise _Fail("7501", TEXT_USER)
        lo = _ms(_iso(p["startTime"], "startTime")) if _present(p, "startTime") else None
        hi = _ms(_iso(p["endTime"], "endTime")) if _present(p, "endTime") else None
        if lo is not None and hi is not None and lo > hi:
            raise _Fail("8009", TEXT_RANGE)
        now = self._now_ms()
        filters = self._status_type_filters(p)
        rows = self.db.execute(
            "SELECT e.* FROM events e JOIN bindings b ON b.event_id = e.event_id"
            " WHERE e.agent = ? AND b.uid = ? ORDER BY e.event_id",
            (agent, uid),
        ).fetchall()
        events = [
            e
            for e in map(_Event.from_row, rows)
            if (lo is None or e.start_ms >= lo) and (hi is None or e.start_ms <= hi) and all(f(e, now) for f in filters)
        ]
        return {"status": "0000", "data": [self._player_row(e, now) for e in events]}

    def _player_row(self, e: _Event, now: int) -> dict[str, Any]:
        chips = e.type == "BONUSCHIPS"
        return {
            "eventId": e.event_id,
            "name": e.name,
            "currency": self.currency,
            "type": e.type,
            "times": self._times_answer(e),
            "useTimes": None if chips else 0,
            "requiredTurnover": e.required_turnover if chips else None,
            "accumulatedTurnover": "0.000" if chips else None,
            "startTime": _fmt_iso(e.start_ms, e.start_off),
            "endTime": _fmt_iso(e.end_ms, e.end_off),
            "status": e.status(now),
            "machineTypes": e.machine_types,
            "alreadySettle": False,
            "cashout": "0",
            "updateTime": _fmt_iso(e.update_ms, e.start_off),
        }

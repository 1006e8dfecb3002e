"""Emulator of the JDB platform API: ``/apiRequest.do`` with the AES-128-CBC envelope.

Written from ``reference/seeds/jdb-action29-transactions.txt``, ``jdb-action71-player-free-spins.txt``,
``jdb-action72-create-free-spin.zh.txt`` (the contract) and ``reference/jdb.md``, independently of
the client. Actions: 29 (transaction details), 71 (a player's free-spin events), 72 (create),
73 (terminate), 74 (bind players), 75 (unbind players), 76 (search events), 77 (update).

Wire format
-----------
- ``GET`` with ``dc``/``x`` (and the optional envelope ``parent``) in the query string, ``POST``
  form-urlencoded or ``POST`` JSON body; a non-empty body value wins over the query value.
- ``x``: URL-safe or standard Base64, with or without ``=``; AES-128-CBC with the key and IV used as
  their 16 ASCII bytes, no built-in padding; every trailing byte ``<= 0x20`` is stripped after
  decryption (zero bytes, spaces and PKCS#7 bytes alike), then the UTF-8 JSON object is read.
- Answers are JSON, HTTP 200, ``{"status": "0000", "data": ...}`` or ``{"status": code,
  "err_text": text}``; gzip-compressed when the request sends ``Accept-Encoding: gzip``. Unknown
  paths answer 404, other methods 405 (plain JSON errors, no JDB status, so a wrong URL is not mistaken for 'busy'), an injected fault HTTP 503 with status ``9999``.
  Knob ``busy_status``: the status an injected fault answers — ``"9999"`` (the default: the code
  table's generic failure, as HTTP 503) or one of the code table's "try again" statuses, ``"9012"``
  (try again later) and ``"9017"`` (work in process, try again later), with HTTP 200 like every
  other status (the documents give error answers no other HTTP status).
- Envelope checks, in order: ``dc`` missing or shorter than 2 characters ``9002``; wrong ``dc``
  ``9003``; ``x`` missing ``9004``; ``x`` not decryptable to a JSON object ``9006``; ``ts`` missing
  ``8000``; ``ts`` more than 30 s away from the server clock (either direction) ``9005``; unknown
  ``action`` ``9007``; ``parent`` missing ``8000``, unknown agent (payload or envelope) ``7001``.

Semantic decisions where the documents are silent (see also ``reference/jdb.md`` §8)
---------------------------------------------------------------------------------
- Parameter errors use ``8000`` and the documented text ``... parameter:<name> is required``; a
  present but invalid value uses the same prefix with ``<name> is invalid`` (or a short reason).
  Money values with more than three decimals answer ``8014``.
- ``eventId`` is a Long (doc generation G2) in answers and is accepted as a number or a string of
  digits in requests.
- Event status is derived from the clock: ``INACTIVE`` before ``startTime``, ``ACTIVE`` until
  ``endTime``, then ``EXPIRED``; ``TERMINATED`` after Action 73 (which is refused for EXPIRED and
  TERMINATED events with ``9998 This action cannot be executed as the event status is <STATUS>.``).
- Action 72: ``endTime`` must be later than ``startTime`` and, for a new event, than now
  (``8000``). A repeated ``transactionId`` (per agent) creates nothing and answers the existing
  ``eventId`` (seed); knob ``repeat_transaction``: ``"answer"`` (default) binds nothing and answers
  empty player lists, ``"bind"`` also binds the players sent (while the event is INACTIVE or
  ACTIVE) and answers their lists (after the parameter checks, before the
  end-time-versus-now check, so a late retry still finds its event). ``players`` holds at most 50,000 entries; unknown players come back in
  ``notExistedPlayers``, players registered as locked in ``failedBindingPlayers``. ``BONUSCHIPS``
  requires ``bonusChips`` and ``chipsMultiplier`` (``times`` is not used).
- Action 74 binding an already bound player: knob ``bind_bound`` — ``"noop"`` (default; not
  reported), ``"failed"`` (listed in ``failedBindingPlayers``, the binding stays) or ``"error"``
  (the whole call refused, ``9998`` with a guessed text, nothing bound);
  Action 75 unbinding a player who is not bound is a no-op.
- Action 76 returns events whose ``startTime >= startTime`` and ``endTime <= endTime`` of the
  query (containment); ``name`` is an exact match. Knob ``search_fields``: ``"documented"`` (the
  default) answers only the fields the document lists (``eventId`` … ``startTime``, see
  :data:`A76_DOCUMENTED`); ``"extended"`` adds the ones the truncated table presumably holds
  (``endTime``, ``times``, ``bet``, ``minWithdrawal``, ``maxWithdrawal``, ``bonusChips``,
  ``chipsMultiplier``, ``requiredTurnover``, ``updateTime``) — a guess, tested as one.
- Action 72 ``times``: the seed marks it mandatory (``Y``) for every type. Knob
  ``bonuschips_times``: ``"required"`` (the default, as the seed says) refuses a BONUSCHIPS create
  without it (``8000 ... parameter:times is required``); ``"ignored"`` accepts its absence (as the
  newer pages that add BONUSCHIPS suggest). A BONUSCHIPS event does not use times; knob
  ``bonuschips_times_answer``: ``"null"`` (default, as the Action 71 seed says) or ``"echo"``
  (Action 71/76 answer the ``times`` the create sent).
- Action 77 requires ``name``, ``machineTypes``, ``bet``, ``minWithdrawal`` and ``maxWithdrawal``;
  ``type``/``times`` may be sent but must equal the stored values. Knob ``update_fields``:
  ``"newest"`` (default; ``startTime``/``endTime`` may be sent but must equal the stored values, as
  the newest page says) or ``"older"`` (both mandatory and updated, as the older pages list them).
  Only INACTIVE and ACTIVE events can be updated; knob ``update_active``: ``"allowed"`` (default)
  or ``"refused"`` (an ACTIVE event answers ``9998`` with the status text).
- Event retention (seed, Action 71: "retained for 180 days after the free spin reward expires").
  Knob ``event_retention_days``: ``180`` (the default) or ``None`` (kept forever, as this emulator
  did before). How an event disappears is a guess: once ``endTime`` is more than that many days
  past (terminated events too, counted from their ``endTime``), the event, its bindings and its
  ``transactionId`` are gone from every action (71 and 76 no longer list it; 73, 74, 75, 77 answer
  "Event not exist."; a repeated ``transactionId`` creates anew).
- Action 29 reads ``starttime``/``endtime`` as JDB wall-clock time and includes records whose
  ``lastModifyTime`` lies in ``[starttime, endtime]`` — both ends inclusive, so a record stamped
  ``hh:mm:00`` appears in two adjacent windows. Knob ``report_tz``: the report zone, which no seed
  states (default GMT-4, as one public integration treats it; tests also run UTC and UTC+8).
  Seconds other than ``00`` answer ``8005``; a span over 15 minutes or an end before the start
  ``8009``. Knob ``report_too_old``: a start older than 2 hours is refused with ``8006``
  (``"refuse"``, the default) or answered ``0000`` with no records (``"empty"``) — the seed says
  only that 2 hours are served. Records newer than 3 minutes are not shown (a window in the
  future answers ``0000`` with no records). Records are generated deterministically per agent and minute, 0–3 a minute, with the
  per-game-type shapes of the seed.

Player registry
---------------
Without ``players`` every agent has the deterministic sandbox players ``player00001`` …
``player99999``; with ``players`` exactly those. More can be registered at any time with
:meth:`JdbEmulator.register_players` or ``POST /_sandbox/jdb/players`` (``{"agent": ...,
"players": [...], "locked": false}``); ``GET /_sandbox/jdb/players?agent=...`` counts them.
(The HTTP admin route is served through :meth:`JdbEmulator.admin`, which the server must route
``/_sandbox/jdb/...`` paths to.)

Back-office events
------------------
An event made in JDB's back office rather than through Action 72:
:meth:`JdbEmulator.create_back_office_event` or ``POST /_sandbox/jdb/events`` (``{"agent": ...,
"event": {Action 72 fields, no transactionId}, "players": [...], "hidden": ["endTime", "bet"]}``).
``hidden`` names Action 76 answer fields JDB leaves out for that event (as issue 22 saw: no
``endTime``/``bet``), whatever ``search_fields`` says; ``endTime`` may be in the past. Answers
``{"eventId": ...}``.

Test helpers (not vendor API): :meth:`JdbEmulator.stored_events` returns every stored event with
all its fields whatever ``search_fields`` says; :attr:`JdbEmulator.action_counts` counts handled
requests per action.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from Crypto.Cipher import AES

from reconciler.sandbox.base import Emulator, Request, Response

JDB_REPORT_TZ = timezone(timedelta(hours=-4))
TS_WINDOW_MS = 30_000
MAX_PLAYERS = 50_000
REPORT_MAX_SPAN_MS = 15 * 60_000
REPORT_LAG_MS = 3 * 60_000
REPORT_HISTORY_MS = 2 * 3600_000
EVENT_RETENTION_DAYS = 180  # seed (Action 71): kept 180 days after the event expires
DEFAULT_PLAYER = re.compile(r"^player(?!00000)\d{5}$")
WRITE_ACTIONS = frozenset({72, 73, 74, 75, 77})
# the answer of an injected fault (knob ``busy_status``): status -> (err_text, HTTP status)
BUSY_ANSWERS: dict[str, tuple[str, int]] = {
    "9999": ("System busy, please try again later.", 503),  # "failed (generic)"; as a system error
    "9012": ("Try again later.", 200),  # the code table's "try again later"
    "9017": ("Work in process, try again later.", 200),  # "work in process, try again later"
}
STATUSES = ("INACTIVE", "ACTIVE", "EXPIRED", "TERMINATED")
A76_DOCUMENTED = ("eventId", "name", "creator", "numberOfPlayers", "type", "totalUseTimes", "totalTimes",
                  "totalCashout", "machineTypes", "status", "currency", "startTime")
"""The Action 76 answer fields the documents list (the table is cut after ``startTime``)."""
TYPES = ("NORMAL", "FEATURE", "BONUSCHIPS")
KNOBS: dict[str, tuple[str, ...]] = {
    # what Action 71/76 answer as ``times`` of a BONUSCHIPS event: null (Action 71 seed: "only used for
    # normal game and feature game, otherwise it is null") or the value the create sent
    "bonuschips_times_answer": ("null", "echo"),
    # Action 72 with a transactionId that already made an event: answer its eventId and bind nothing
    # ("answer"), or also bind the players sent and answer their lists ("bind"); the seed says only
    # that nothing new is created and the existing eventId is returned
    "repeat_transaction": ("answer", "bind"),
    # Action 77: the newest page forbids changing startTime/endTime ("newest"); older pages list them
    # as mandatory, updatable parameters ("older")
    "update_fields": ("newest", "older"),
    # Action 77 on an ACTIVE event: accepted ("allowed") or refused with 9998 ("refused")
    "update_active": ("allowed", "refused"),
    # Action 74 for a player already bound to the event: a no-op ("noop") or listed in
    # failedBindingPlayers ("failed"; the binding stays), or the whole call refused ("error": 9998
    # with TEXT_BOUND, nothing bound)
    "bind_bound": ("noop", "failed", "error"),
}

PARAM = "The parameter of input error, please check your parameter is correct or not. parameter:"
TEXT_TS = "Assertion(SAML) didn't pass the timestamp validation."
TEXT_RANGE = "Time interval exceeds the allowable range."
TEXT_NO_EVENT = "Event not exist."
TEXT_NOT_INACTIVE = "Only INACTIVE event has right to do this action."
TEXT_USER = "User ID cannot be found."
TEXT_BOUND = "Player has already been bound to this event."  # a guess (knob bind_bound "error")

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?[+-]\d{2}:\d{2}$")
_REPORT = re.compile(r"^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})$")
_BLANK_TAIL = bytes(range(0x21))


class _Fail(Exception):
    """A vendor error answer."""

    def __init__(self, status: str, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def _param(name: str, problem: str = "is required") -> _Fail:
    return _Fail("8000", f"{PARAM}{name} {problem}")


def _state_error(status: str) -> _Fail:
    return _Fail("9998", f"This action cannot be executed as the event status is {status}.")


# -- parameter readers -----------------------------------------------------------------------
def _present(p: dict[str, Any], name: str) -> bool:
    return p.get(name) not in (None, "", [])


def _need(p: dict[str, Any], name: str, label: str | None = None) -> Any:
    if not _present(p, name):
        raise _param(label or name)
    return p[name]


def _int(value: Any, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _param(name, "is invalid")
    if isinstance(value, str) and not value.isdigit():
        raise _param(name, "is invalid")
    number = int(value)
    if number < minimum:
        raise _param(name, "is invalid")
    return number


def _str(value: Any, name: str, *, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise _param(name, "is invalid")
    return value


def _int_list(value: Any, name: str, *, minimum: int = 1) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _param(name, "is invalid")
    return [_int(v, name, minimum=minimum) for v in value]


def _str_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _param(name, "is invalid")
    return value


def _money(value: Any, name: str, *, allow_unlimited: bool = False, positive: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _param(name, "is invalid")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _param(name, "is invalid") from None
    if not number.is_finite():
        raise _param(name, "is invalid")
    if allow_unlimited and number == -1:
        return number
    if number < 0 or (positive and number == 0):
        raise _param(name, "is invalid")
    exponent = number.as_tuple().exponent  # an int for a finite number ('n', 'N', 'F' otherwise)
    if isinstance(exponent, int) and exponent < -3:
        raise _Fail("8014", f"Too many decimal places: {name}.")
    return number


def _fmt_money(value: Decimal) -> str:
    return "-1" if value == -1 else f"{value:.3f}"


def _iso(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not _ISO.match(value):
        raise _param(name, "is invalid")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _param(name, "is invalid") from None


def _fmt_iso(ms: int, offset_min: int) -> str:
    tz = timezone(timedelta(minutes=offset_min))
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _offset_min(dt: datetime) -> int:
    offset = dt.utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)


def _event_id(value: Any, name: str = "eventId") -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _param(name, "is invalid")
    text = str(value)
    if not text.isdigit():
        raise _param(name, "is invalid")
    return int(text)


def decrypt_envelope(x: str, key: bytes, iv: bytes) -> dict[str, Any] | None:
    """Decode ``x`` the tolerant way (either Base64 alphabet, optional ``=``, trailing bytes
    ``<= 0x20`` stripped); ``None`` when it is not a JSON object."""
    text = x.strip().replace(" ", "+").replace("+", "-").replace("/", "_").rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) % 16:
        return None
    plain = AES.new(key, AES.MODE_CBC, iv=iv).decrypt(raw).rstrip(_BLANK_TAIL)
    try:
        obj = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


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
        dec = lambda v: None if v is None else Decimal(v)  # noqa: E731
        return cls(
            event_id=row["event_id"], agent=row["agent"], name=row["name"], type=row["type"],
            start_ms=row["start_ms"], start_off=row["start_off"], end_ms=row["end_ms"], end_off=row["end_off"],
            machine_types=json.loads(row["machine_types"]), bet=Decimal(row["bet"]), times=row["times"],
            min_w=Decimal(row["min_w"]), max_w=Decimal(row["max_w"]), bonus_chips=dec(row["bonus_chips"]),
            chips_multiplier=dec(row["chips_multiplier"]), terminated=bool(row["terminated"]),
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


# -- Action 29 record shapes (seed: per gType family) ----------------------------------------
SLOT, FISHING, ARCADE, LOTTERY, CARD, HRG = (0, 66, 90), (7, 67, 91), (9, 92), (12,), (18, 93), (41,)
THIRD_PARTY = (22, 30, 31, 32, 50, 55, 56, 57, 58, 59, 60, 70, 75, 80, 81, 101, 120, 130, 131, 132)
GAME_TYPES = SLOT + FISHING + ARCADE + LOTTERY + CARD + HRG + THIRD_PARTY


def _money_round(value: float) -> float:
    return round(value, 3)


def _base_record(rnd: random.Random, gtype: int) -> dict[str, Any]:
    denom = rnd.choice((0.01, 0.02, 0.05, 0.1, 1.0))
    bet = -_money_round(denom * rnd.choice((10, 20, 25, 50)))
    win = _money_round(-bet * rnd.choice((0, 0, 0, 0.5, 1, 2, 5)))
    before = _money_round(rnd.uniform(100, 10_000))
    return {
        "gType": gtype, "mtype": gtype * 1000 + rnd.randint(1, 99), "bet": bet, "win": win,
        "total": _money_round(bet + win), "currency": "RB", "denom": denom,
        "beforeBalance": f"{before:.3f}", "afterBalance": f"{_money_round(before + bet + win):.3f}",
        "playerIp": f"10.20.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
        "clientType": rnd.choice(("WEB", "MOBILE")),
    }


def _shape(rec: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    """Keep and add the fields the seed lists for the record's game-type family."""
    g = rec["gType"]
    common = ["historyId", "playerId", "gType", "mtype", "gameDate", "bet", "win", "total", "currency",
              "lastModifyTime", "beforeBalance", "afterBalance"]
    if g in SLOT:
        rec.update(jackpot=0, jackpotContribute=_money_round(rec["bet"] * 0.005),
                   hasFreegame=rnd.choice((0, 0, 1)), systemTakeWin=0)
        keep = common + ["jackpot", "jackpotContribute", "denom", "playerIp", "clientType", "hasFreegame", "systemTakeWin"]
    elif g in FISHING:
        rec.update(roomType=rnd.choice((-1, 0, 1, 2)), beforeBalance=float(rec["beforeBalance"]),
                   afterBalance=float(rec["afterBalance"]))
        keep = common + ["roomType", "denom", "playerIp", "clientType"]
    elif g in ARCADE:
        gamble = rnd.random() < 0.2
        rec.update(gambleBet=rec["bet"] if gamble else 0, hasBonusGame=0, hasGamble=int(gamble))
        if gamble:
            rec["bet"] = 0
        keep = common + ["gambleBet", "denom", "playerIp", "clientType", "hasBonusGame", "hasGamble"]
    elif g in LOTTERY:
        rec.update(hasBonusGame=0)
        keep = common + ["denom", "playerIp", "clientType", "hasBonusGame"]
    elif g in CARD:
        tax = -_money_round(rec["win"] * 0.05) or 0.0
        rec.update(roundSeqNo=rnd.randint(1, 10**6), tax=tax, validBet=rec["bet"],
                   total=_money_round(rec["total"] + tax))
        keep = common + ["roundSeqNo", "tax", "playerIp", "clientType", "validBet"]
    elif g in HRG:
        rec.update(roundSeqNo=f"RND-{rnd.randint(10**12, 10**13 - 1)}", validBet=rec["bet"], commission=0)
        keep = common + ["roundSeqNo", "validBet", "commission"]
    else:
        keep = common
    return {k: rec[k] for k in keep}


def _report_time(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%d-%m-%Y %H:%M:%S")


class JdbEmulator(Emulator):
    """The JDB ``apiRequest.do`` API for free-spin events and transaction reports (see module doc)."""

    name = "jdb"

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
        for knob, value in (("bonuschips_times_answer", bonuschips_times_answer), ("repeat_transaction", repeat_transaction),
                            ("update_fields", update_fields), ("update_active", update_active), ("bind_bound", bind_bound)):
            if value not in KNOBS[knob]:
                raise ValueError(f"{knob} is one of {', '.join(KNOBS[knob])}")
        self.bonuschips_times_answer = bonuschips_times_answer
        self.repeat_transaction = repeat_transaction
        self.update_fields = update_fields
        self.update_active = update_active
        self.bind_bound = bind_bound
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
        self._actions: dict[int, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            29: self._a29_transactions, 71: self._a71_player_events, 72: self._a72_create,
            73: self._a73_terminate, 74: self._a74_bind, 75: self._a75_unbind,
            76: self._a76_search, 77: self._a77_update,
        }
        super().__init__(state_dir)

    def __repr__(self) -> str:  # never show the key or IV
        return f"JdbEmulator(dc={self.dc!r}, agents={list(self.agents)!r})"

    def stored_events(self, agent: str) -> list[dict[str, Any]]:
        """Every stored event of ``agent`` with all its fields (the extended Action 76 row), oldest
        first: what a test inspects after an apply, whatever ``search_fields`` the API answers with."""
        with self.lock:
            self._age_out()
            now = self._now_ms()
            events = [_Event.from_row(r) for r in self.db.execute(
                "SELECT * FROM events WHERE agent = ? ORDER BY event_id", (agent,)).fetchall()]
            counts = self._player_counts([e.event_id for e in events])
            return [self._full_row(e, now, counts.get(e.event_id, 0)) for e in events]

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
                UNIQUE (agent, transaction_id));
            CREATE TABLE IF NOT EXISTS bindings (
                event_id INTEGER NOT NULL, uid TEXT NOT NULL, PRIMARY KEY (event_id, uid)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS events_end ON events (end_ms);
            CREATE TABLE IF NOT EXISTS back_office (
                event_id INTEGER PRIMARY KEY, hidden TEXT NOT NULL);
            """
        )
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
        """Forget events whose ``endTime`` is more than the retention (knob) past, with their bindings."""
        if self.event_retention_days is None:
            return
        cutoff = self._now_ms() - self.event_retention_days * 86_400_000
        if self.db.execute("SELECT 1 FROM events WHERE end_ms < ? LIMIT 1", (cutoff,)).fetchone() is None:
            return  # the usual case: one index lookup per request
        with self.transaction():
            self.db.execute("DELETE FROM bindings WHERE event_id IN (SELECT event_id FROM events WHERE end_ms < ?)",
                            (cutoff,))
            self.db.execute("DELETE FROM back_office WHERE event_id IN (SELECT event_id FROM events WHERE end_ms < ?)",
                            (cutoff,))
            self.db.execute("DELETE FROM events WHERE end_ms < ?", (cutoff,))

    def _event(self, agent: str, event_id: int, *, code: str = "9998") -> _Event:
        row = self.db.execute("SELECT * FROM events WHERE event_id = ? AND agent = ?", (event_id, agent)).fetchone()
        if row is None:
            raise _Fail(code, TEXT_NO_EVENT)
        return _Event.from_row(row)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- HTTP -------------------------------------------------------------------------------
    def _envelope(self, req: Request) -> dict[str, str]:
        params = dict(req.query)
        if req.method == "POST" and req.body.strip():
            ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
            try:
                body = req.json() if "json" in ctype or req.body.lstrip().startswith(b"{") else req.form()
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = {}
            if isinstance(body, dict):
                params.update({k: str(v) for k, v in body.items() if v not in (None, "")})
        return params

    def _payload(self, req: Request) -> dict[str, Any]:
        env = self._envelope(req)
        dc = env.get("dc", "")
        if len(dc) < 2:
            raise _Fail("9002", "Domain is empty or shorter than 2 characters.")
        if dc != self.dc:
            raise _Fail("9003", "Domain validation failed.")
        x = env.get("x", "")
        if not x:
            raise _Fail("9004", "Encrypted data is empty.")
        payload = decrypt_envelope(x, self._key, self._iv)
        if payload is None:
            raise _Fail("9006", "Could not extract parameters from the encrypted data.")
        if env.get("parent") and env["parent"] not in self.agents:
            raise _Fail("7001", "Parent ID cannot be found.")
        return payload

    def is_write(self, req: Request) -> bool:
        try:
            payload = self._payload(req)
        except _Fail:
            return False
        return payload.get("action") in WRITE_ACTIONS

    def operation(self, req: Request) -> str:
        try:
            return f"action {self._payload(req).get('action')}"
        except _Fail:
            return super().operation(req)

    def injected_error(self, req: Request) -> Response:
        text, http_status = BUSY_ANSWERS[self.busy_status]
        return self._respond(req, {"status": self.busy_status, "err_text": text}, http_status)

    def handle(self, req: Request) -> Response:
        if req.path != "/apiRequest.do":
            return Response.json({"error": "Not Found"}, status=404)
        if req.method not in ("GET", "POST"):
            return Response.json({"error": "Method Not Allowed"}, status=405)
        try:
            body = self._dispatch(self._payload(req))
        except _Fail as fail:
            body = {"status": fail.status, "err_text": fail.text}
        return self._respond(req, body)

    def _respond(self, req: Request, body: dict[str, Any], status: int = 200) -> Response:
        resp = Response.json(body, status=status)
        if "gzip" in (req.header("accept-encoding") or "").lower():
            resp.body = gzip.compress(resp.body, compresslevel=5)
            resp.headers["Content-Encoding"] = "gzip"
        return resp

    def _dispatch(self, payload: dict[str, Any]) -> dict[str, Any]:
        ts = _int(_need(payload, "ts"), "ts")
        if abs(self._now_ms() - ts) > TS_WINDOW_MS:
            raise _Fail("9005", TEXT_TS)
        action = payload.get("action")
        if not isinstance(action, int) or isinstance(action, bool) or action not in self._actions:
            raise _Fail("9007", "Unknown action.")
        handler = self._actions[action]
        self._age_out()
        agent = _need(payload, "parent")
        if agent not in self.agents:
            raise _Fail("7001", "Parent ID cannot be found.")
        self.action_counts[action] += 1
        return handler(agent, payload)

    def create_back_office_event(self, agent: str, event: dict[str, Any], *, players: Sequence[str] = (),
                                 hidden: Sequence[str] = ()) -> int:
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
                self.db.execute("INSERT INTO back_office (event_id, hidden) VALUES (?, ?)",
                                (event_id, json.dumps(sorted(set(hidden)))))
            self._bind(agent, event_id, list(players))
        return event_id

    @staticmethod
    def _full_row_keys() -> tuple[str, ...]:
        return ("endTime", "times", "bet", "minWithdrawal", "maxWithdrawal", "bonusChips", "chipsMultiplier",
                "requiredTurnover", "updateTime", "currency", "machineTypes", "totalTimes", "totalUseTimes")

    def _hidden(self, event_ids: list[int]) -> dict[int, list[str]]:
        if not event_ids:
            return {}
        marks = ",".join("?" * len(event_ids))
        rows = self.db.execute(f"SELECT event_id, hidden FROM back_office WHERE event_id IN ({marks})", event_ids)
        return {r[0]: json.loads(r[1]) for r in rows}

    def _admin_event(self, req: Request) -> Response:
        body = req.json() if req.body else {}
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            return Response.json({"error": "expected {\"agent\": ..., \"event\": {...}, \"hidden\": [...]}"}, status=400)
        try:
            event_id = self.create_back_office_event(
                str(body.get("agent") or self.agents[0]), body["event"],
                players=[str(u) for u in body.get("players") or []], hidden=[str(h) for h in body.get("hidden") or []])
        except ValueError as exc:
            return Response.json({"error": str(exc)}, status=400)
        return Response.json({"eventId": event_id})

    def admin(self, req: Request) -> Response | None:
        """``/_sandbox/jdb/players``: register players (POST) or count them (GET);
        ``/_sandbox/jdb/events`` (POST): create a back-office event."""
        if req.path == "/_sandbox/jdb/events" and req.method == "POST":
            return self._admin_event(req)
        if req.path != "/_sandbox/jdb/players":
            return None
        if req.method == "GET":
            agent = req.query.get("agent", self.agents[0])
            count = self.db.execute("SELECT COUNT(*) FROM players WHERE agent = ?", (agent,)).fetchone()[0]
            default = "player00001-player99999" if self._default_players else None
            return Response.json({"agent": agent, "registered": count, "default": default})
        body = req.json() if req.body else {}
        if not isinstance(body, dict) or not isinstance(body.get("players"), list):
            return Response.json({"error": "expected {\"agent\": ..., \"players\": [...]}"}, status=400)
        agent = body.get("agent") or self.agents[0]
        if agent not in self.agents:
            return Response.json({"error": f"unknown agent {agent}"}, status=400)
        count = self.register_players(agent, [str(u) for u in body["players"]], locked=bool(body.get("locked")))
        return Response.json({"agent": agent, "registered": count})

    # -- players ----------------------------------------------------------------------------
    def _bind(self, agent: str, event_id: int, uids: Sequence[str]) -> dict[str, list[str]]:
        uids = list(dict.fromkeys(uids))
        known = self._players(agent, uids)
        bound: set[str] = set()
        if self.bind_bound != "noop":
            for i in range(0, len(uids), 500):
                chunk = uids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                bound.update(r[0] for r in self.db.execute(
                    f"SELECT uid FROM bindings WHERE event_id = ? AND uid IN ({marks})", [event_id, *chunk]))
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
            "name": name, "type": kind, "start_ms": _ms(start), "start_off": _offset_min(start),
            "end_ms": _ms(end), "end_off": _offset_min(end), "machine_types": json.dumps(machine_types),
            "bet": str(bet), "times": times, "min_w": str(min_w), "max_w": str(max_w),
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
        self.db.execute("UPDATE events SET terminated = 1, update_ms = ? WHERE event_id = ?", (self._now_ms(), event.event_id))
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
        fixed = {
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
        return {"status": "0000", "data": [
            {k: v for k, v in self._search_row(e, now, counts.get(e.event_id, 0)).items()
             if k not in hidden.get(e.event_id, ())} for e in events]}

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
            "eventId": e.event_id, "name": e.name, "creator": e.agent, "numberOfPlayers": players,
            "type": e.type, "totalUseTimes": None if chips else 0,
            "totalTimes": None if chips else (e.times or 0) * players, "totalCashout": "0.000",
            "machineTypes": e.machine_types, "status": e.status(now), "currency": self.currency,
            "startTime": _fmt_iso(e.start_ms, e.start_off), "endTime": _fmt_iso(e.end_ms, e.end_off),
            "times": self._times_answer(e), "bet": _fmt_money(e.bet), "minWithdrawal": _fmt_money(e.min_w),
            "maxWithdrawal": _fmt_money(e.max_w),
            "bonusChips": None if e.bonus_chips is None else _fmt_money(e.bonus_chips),
            "chipsMultiplier": None if e.chips_multiplier is None else _fmt_money(e.chips_multiplier),
            "requiredTurnover": e.required_turnover, "updateTime": _fmt_iso(e.update_ms, e.start_off),
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
            e for e in map(_Event.from_row, rows)
            if (lo is None or e.start_ms >= lo) and (hi is None or e.start_ms <= hi) and all(f(e, now) for f in filters)
        ]
        return {"status": "0000", "data": [self._player_row(e, now) for e in events]}

    def _player_row(self, e: _Event, now: int) -> dict[str, Any]:
        chips = e.type == "BONUSCHIPS"
        return {
            "eventId": e.event_id, "name": e.name, "currency": self.currency, "type": e.type,
            "times": self._times_answer(e), "useTimes": None if chips else 0,
            "requiredTurnover": e.required_turnover if chips else None,
            "accumulatedTurnover": "0.000" if chips else None,
            "startTime": _fmt_iso(e.start_ms, e.start_off), "endTime": _fmt_iso(e.end_ms, e.end_off),
            "status": e.status(now), "machineTypes": e.machine_types, "alreadySettle": False,
            "cashout": "0", "updateTime": _fmt_iso(e.update_ms, e.start_off),
        }

    # -- Action 29 --------------------------------------------------------------------------
    def _report_ms(self, p: dict[str, Any], name: str) -> int:
        value = _need(p, name)
        match = _REPORT.match(value) if isinstance(value, str) else None
        if match is None:
            raise _param(name, "is invalid")
        day, month, year, hour, minute, second = (int(g) for g in match.groups())
        if second != 0:
            raise _Fail("8005", f"The seconds of {name} must be 00.")
        try:
            return _ms(datetime(year, month, day, hour, minute, tzinfo=self.report_tz))
        except ValueError:
            raise _param(name, "is invalid") from None

    def _a29_transactions(self, agent: str, p: dict[str, Any]) -> dict[str, Any]:
        start = self._report_ms(p, "starttime")
        end = self._report_ms(p, "endtime")
        if end < start or end - start > REPORT_MAX_SPAN_MS:
            raise _Fail("8009", TEXT_RANGE)
        now = self._now_ms()
        if start < now - REPORT_HISTORY_MS:
            if self.report_too_old == "empty":
                return {"status": "0000", "data": []}
            raise _Fail("8006", "starttime is more than 2 hours ago; use Action 64 for older records.")
        game_types = set(_int_list(p["gTypes"], "gTypes", minimum=0) if _present(p, "gTypes") else GAME_TYPES)
        newest = min(end, now - REPORT_LAG_MS)
        records = [
            r for minute in range(start // 60_000, newest // 60_000 + 1)
            for stamp, r in self._minute_records(agent, minute)
            if start <= stamp <= newest and r["gType"] in game_types
        ]
        return {"status": "0000", "data": records}

    def transactions_between(self, agent: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Test helper (not vendor API): every record of ``agent`` whose ``lastModifyTime`` instant
        lies in ``[start, end)``, whatever the report zone, oldest first."""
        lo, hi = _ms(start), _ms(end)
        return [r for minute in range(lo // 60_000, hi // 60_000 + 1)
                for stamp, r in self._minute_records(agent, minute) if lo <= stamp < hi]

    def _minute_records(self, agent: str, minute: int) -> list[tuple[int, dict[str, Any]]]:
        """The deterministic records whose lastModifyTime falls in one minute, oldest first."""
        rnd = random.Random(f"jdb-a29|{agent}|{minute}")
        players = self._sample_players()
        out = []
        for i in range(rnd.randint(0, 3)):
            second = 0 if i == 0 and rnd.random() < 0.3 else rnd.randint(0, 59)
            stamp = minute * 60_000 + second * 1000
            rec = _base_record(rnd, rnd.choice(GAME_TYPES))
            rec.update(
                historyId=str(5_250_000_000_000 + minute * 10 + i), playerId=rnd.choice(players),
                gameDate=_report_time(stamp - rnd.randint(0, 9) * 1000, self.report_tz),
                lastModifyTime=_report_time(stamp, self.report_tz),
            )
            out.append((stamp, _shape(rec, rnd)))
        return sorted(out, key=lambda pair: pair[0])

"""Client of the JDB platform API (``/apiRequest.do``): free-spin events and transaction reports.

Every call is one encrypted action (:mod:`reconciler.vendors.jdb.crypto`) sent as a form POST
(``dc``, ``x`` and, for sub-account keys, the envelope ``parent``) — the form JDB's own sample
code uses. Answers carry ``status`` (``"0000"`` = success) and ``err_text``; every other status
becomes a typed :class:`JdbError` (see :data:`CODES`).

Retries (the one policy of :class:`~reconciler.clients.http.HttpTransport`):

- reads (29, 71, 76: :data:`READ_ACTIONS`) are retried on lost replies, timeouts, 429 and 5xx; a
  read that still has no reply fails without saying "the outcome is unknown" (every action is a
  POST, so the transport is told which ones write);
- writes (72, 73, 74, 75, 77) are never repeated blindly after a lost reply: the outcome is unknown
  and is resolved by reading back by key first. For create (72) the documented read-back by key
  *is* a repeat with the same ``transactionId`` — JDB creates nothing for a ``transactionId`` that
  already made an event and answers that event's ``eventId`` (seed, Action 72) — so
  :meth:`JdbClient.create_event` does it itself and says the binding lists of that answer are not
  known (:attr:`CreateResult.binding_known`). For 73, 74, 75 and 77 the caller reads the event
  (Action 76 by ``eventId``, Action 71 by player) and repeats only what did not happen
  (:mod:`reconciler.vendors.jdb.free_spin_event`).

The envelope is sealed again for every attempt, so a retry carries a fresh ``ts`` (JDB refuses
``ts`` older than 30 seconds). Errors name the vendor, the host (``host:port``), the action and the
cause (JDB status and text, HTTP status, or what happened to the connection); they never contain
the key, the IV, ``x`` or a request body.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, Iterator, Mapping, Sequence, TypedDict


from reconciler.clients import redact
from reconciler.clients.http import HttpTransport, Response, RetryPolicy, retry_context
from reconciler.vendors.jdb.crypto import JdbCipher
from reconciler.vendors.jdb.errors import (  # re-exported: callers import the errors from the client
    CODES as CODES,
    HINTS as HINTS,
    JdbAgentError as JdbAgentError,
    JdbAuthError as JdbAuthError,
    JdbClockError as JdbClockError,
    JdbError as JdbError,
    JdbEventNotFoundError as JdbEventNotFoundError,
    JdbEventStateError as JdbEventStateError,
    JdbParameterError as JdbParameterError,
    JdbPlayerError as JdbPlayerError,
    JdbTransportError as JdbTransportError,
    JdbUnavailableError as JdbUnavailableError,
    error_for as error_for,
)

JDB_REPORT_TZ = timezone(timedelta(hours=-4))
"""JDB's wall clock for report times (``dd-MM-yyyy HH:mm:ss``); GMT-4 per a public integration."""
PATH = "/apiRequest.do"
MAX_PLAYERS_PER_CALL = 50_000
READ_ACTIONS = frozenset({29, 71, 76})
"""The actions that change nothing (the JDB documents: 29 transaction details, 71 a player's
free-spin events, 76 search events); a lost reply to one of them is retried, never "unknown".
Every other action (72 create, 73 terminate, 74 bind, 75 unbind, 77 update) is a write."""
STATUS_CODES = {"INACTIVE": 0, "ACTIVE": 1, "EXPIRED": 2, "TERMINATED": 3}
EventId = int | str


# -- payload types -----------------------------------------------------------------------------
class EventInfo(TypedDict, total=False):
    """One row of Action 76. The document lists the fields up to ``startTime``; the others are
    read only when a reply carries them (a field a reply lacks is unknown, never "equal")."""

    eventId: EventId
    name: str
    creator: str
    numberOfPlayers: int
    type: str
    totalUseTimes: int | None
    totalTimes: int | None
    totalCashout: str
    machineTypes: list[int]
    status: str
    currency: str
    startTime: str
    endTime: str
    times: int | None
    bet: str
    minWithdrawal: str
    maxWithdrawal: str
    bonusChips: str | None
    chipsMultiplier: str | None
    requiredTurnover: str | None
    updateTime: str


@dataclass(frozen=True)
class EventDraft:
    """The declared fields of a free-spin event (Action 72; 77 takes the mutable ones)."""

    name: str
    start: datetime
    end: datetime
    machine_types: tuple[int, ...]
    bet: str
    type: str
    min_withdrawal: str
    max_withdrawal: str
    times: int | None = None
    bonus_chips: str | None = None
    chips_multiplier: str | None = None

    @property
    def sent_times(self) -> int:
        """``times`` as sent to Action 72: the seed marks it mandatory for every type, while
        Action 71 says it is "only used for normal game and feature game, otherwise it is null" —
        so a BONUSCHIPS event sends 1, the smallest value any positive-integer check accepts,
        which JDB does not use for that type."""
        return self.times if self.times is not None else BONUSCHIPS_TIMES


BONUSCHIPS_TIMES = 1


@dataclass(frozen=True)
class BindResult:
    """Players JDB could not bind: existing but failed, and unknown."""

    failed: tuple[str, ...] = ()
    not_existed: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: Any) -> "BindResult":
        data = data if isinstance(data, dict) else {}
        return cls(tuple(data.get("failedBindingPlayers") or ()), tuple(data.get("notExistedPlayers") or ()))

    def __add__(self, other: "BindResult") -> "BindResult":
        return BindResult(self.failed + other.failed, self.not_existed + other.not_existed)


@dataclass(frozen=True)
class CreateResult:
    event_id: EventId
    binding: BindResult
    binding_known: bool = True  # False when the first reply was lost: the repeat's lists say nothing


def iso(dt: datetime) -> str:
    """``yyyy-MM-ddTHH:mm:ss.sss±hh:mm`` (the free-spin actions' format)."""
    if dt.tzinfo is None:
        raise ValueError("free-spin times need a UTC offset")
    return dt.isoformat(timespec="milliseconds")


def parse_iso(text: str) -> datetime:
    """A JDB ISO-8601 time (with or without milliseconds)."""
    return datetime.fromisoformat(text)


def chunks(items: Sequence[str], size: int = MAX_PLAYERS_PER_CALL) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class _Envelope(Mapping[str, str]):
    """The form fields of one request, sealed afresh each time the transport encodes them (once per
    attempt), so that every retry carries a current ``ts``. Only ``items()`` seals."""

    def __init__(self, keys: tuple[str, ...], seal: Callable[[], dict[str, str]]):
        self._keys = keys
        self._seal = seal

    def __getitem__(self, key: str) -> str:
        return self._seal()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> Any:
        return self._seal().items()


class JdbClient:
    """Typed calls to JDB actions 29 and 71–77 for one ``dc`` and key/IV pair.

    ``agent`` (the payload ``parent``) is given per call; ``parent`` here is the optional
    *envelope* parent for sub-accounts with their own key/IV. ``action_counts`` counts calls per
    action number (benchmarks and tests read it).
    """

    def __init__(
        self,
        base_url: str,
        *,
        dc: str,
        key: str,
        iv: str,
        parent: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 4,
        requests_per_second: float | None = None,
        clock: Callable[[], float] = time.time,
        report_tz: tzinfo = JDB_REPORT_TZ,
    ):
        self.dc = dc
        self.parent = parent
        self.clock = clock
        self.report_tz = report_tz
        self._cipher = JdbCipher(key, iv)
        redact.register(key)
        redact.register(iv)
        self.http = HttpTransport(
            base_url,
            vendor="jdb",
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            error_cls=JdbError,
            transport_error_cls=JdbTransportError,
            requests_per_second=requests_per_second,
        )
        self.action_counts: Counter[int] = Counter()
        self._count_lock = threading.Lock()
        self._form_keys = ("dc", "x", "parent") if parent else ("dc", "x")

    def __repr__(self) -> str:
        return f"JdbClient(dc={self.dc!r})"

    def close(self) -> None:
        self.http.close()

    # -- transport --------------------------------------------------------------------------
    def _form(self, payload: dict[str, Any]) -> dict[str, str]:
        sealed = {**payload, "ts": int(self.clock() * 1000)}
        form = {"dc": self.dc, "x": self._cipher.seal(sealed)}
        if self.parent:
            form["parent"] = self.parent
        return form

    def call(self, action: int, agent: str, params: Mapping[str, Any], *, idempotent: bool) -> Any:
        """Send one action and return its ``data`` (``None`` when the answer has none).

        Every action is a POST; whether a lost reply leaves an unknown outcome depends on the
        action: the reads (:data:`READ_ACTIONS`) change nothing, every other action is a write."""
        payload = {"action": action, "parent": agent, **{k: v for k, v in params.items() if v is not None}}
        if action not in READ_ACTIONS:
            return self._call_once(action, payload, idempotent=idempotent)
        # a read refused as busy at HTTP 200 ("try again later", maintenance, rate limit) is asked
        # again under the transport's retry policy, as the transport asks again after a 5xx: it
        # changes nothing, and one refusal would otherwise drop the kind from the plan
        p = self.http.retry
        for attempt in retry_context(
            on=_busy_at_200,
            attempts=p.attempts,
            timeout=p.timeout,
            wait_initial=p.wait_initial,
            wait_max=p.wait_max,
            wait_jitter=p.wait_jitter,
        ):
            with attempt:
                return self._call_once(action, payload, idempotent=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_once(self, action: int, payload: dict[str, Any], *, idempotent: bool) -> Any:
        with self._count_lock:
            self.action_counts[action] += 1
        try:
            resp = self.http.send(
                "POST",
                PATH,
                idempotent=idempotent,
                write=action not in READ_ACTIONS,
                data=_Envelope(self._form_keys, lambda: self._form(payload)),
                headers={"Accept-Encoding": "gzip"},
                shape=_status_shape,  # a cut or non-JSON success: a read is asked again, a write is unknown
            )
        except JdbTransportError as exc:
            raise type(exc)(_name_action(exc.vendor_message, action), code=exc.code, http_status=exc.http_status) from None
        body = self._body(resp, action)
        status = str(body.get("status", ""))
        if status != "0000":
            raise error_for(
                status,
                str(body.get("err_text") or ""),
                http_status=_http_status(resp),
                host=self.http.host,
                operation=f"action {action}",
            )
        return body.get("data")

    def _body(self, resp: Response, action: int) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise JdbError(
                "the answer is not a JDB status object",
                http_status=resp.status_code,
                host=self.http.host,
                operation=f"action {action}",
            )
        return body

    # -- reports ----------------------------------------------------------------------------
    def report_time(self, dt: datetime) -> str:
        """``dd-MM-yyyy HH:mm:ss`` in JDB's report time zone."""
        if dt.tzinfo is None:
            raise ValueError("report times need a UTC offset")
        return dt.astimezone(self.report_tz).strftime("%d-%m-%Y %H:%M:%S")

    def transactions(
        self, *, agent: str, start: datetime, end: datetime, game_types: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        """Action 29: settled game records whose ``lastModifyTime`` lies in the window."""
        params = {
            "starttime": self.report_time(start),
            "endtime": self.report_time(end),
            "gTypes": list(game_types) if game_types else None,
        }
        return list(self.call(29, agent, params, idempotent=True) or [])

    # -- free-spin events -------------------------------------------------------------------
    def player_events(
        self,
        *,
        agent: str,
        uid: str,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Action 71: the events a player is bound to (``start``/``end`` bound the event start time)."""
        params = {
            "uid": uid,
            "startTime": iso(start) if start else None,
            "endTime": iso(end) if end else None,
            "status": STATUS_CODES[status] if status else None,
            "types": list(types) if types else None,
        }
        return list(self.call(71, agent, params, idempotent=True) or [])

    def search_events(
        self,
        *,
        agent: str,
        start: datetime,
        end: datetime,
        event_id: EventId | None = None,
        name: str | None = None,
        status: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[EventInfo]:
        """Action 76: the agent's events inside the ``[start, end]`` time window."""
        params = {
            "startTime": iso(start),
            "endTime": iso(end),
            "eventId": event_id,
            "name": name,
            "status": STATUS_CODES[status] if status else None,
            "types": list(types) if types else None,
        }
        return list(self.call(76, agent, params, idempotent=True) or [])

    def create_event(
        self, *, agent: str, draft: EventDraft, transaction_id: str, players: Sequence[str] = (), auto_create_player: bool = False
    ) -> CreateResult:
        """Action 72. Binds ``players`` (at most 50,000) in the same call. A lost reply is
        resolved by asking again with the same ``transactionId`` (the documented read-back by key:
        it creates nothing when the first call took effect); the binding lists of such an answer
        are not trusted (``binding_known=False``)."""
        if len(players) > MAX_PLAYERS_PER_CALL:
            raise ValueError(f"at most {MAX_PLAYERS_PER_CALL} players per create; bind the rest with bind_players")
        if auto_create_player and len(players) != 1:
            raise ValueError("autoCreatePlayerEnabled needs exactly one player (Action 72)")
        params = {
            **_draft_fields(draft),
            "type": draft.type,
            "times": draft.sent_times,
            "bonusChips": draft.bonus_chips,
            "chipsMultiplier": draft.chips_multiplier,
            "transactionId": transaction_id,
            "players": list(players) or None,
            "autoCreatePlayerEnabled": True if auto_create_player else None,
        }
        lost = failed = 0
        while True:
            try:
                data = self.call(72, agent, params, idempotent=False) or {}
                break
            except JdbTransportError:
                lost += 1
                if lost + failed >= max(2, self.http.retry.attempts):
                    raise
            except JdbUnavailableError:
                # a "busy" answer: asking again with the same transactionId is safe whatever happened
                failed += 1
                if lost + failed >= max(2, self.http.retry.attempts):
                    raise
        event_id = data.get("eventId") if isinstance(data, dict) else None
        if isinstance(event_id, bool) or not isinstance(event_id, int | str):
            raise JdbError("the answer carries no eventId", host=self.http.host, operation="action 72")
        return CreateResult(event_id=event_id, binding=BindResult.from_data(data), binding_known=not lost)

    def update_event(self, *, agent: str, event_id: EventId, draft: EventDraft) -> None:
        """Action 77: name, machine types, bet and withdrawals (times are sent unchanged)."""
        self.call(77, agent, {"eventId": event_id, **_draft_fields(draft)}, idempotent=False)

    def terminate_event(self, *, agent: str, event_id: EventId) -> None:
        """Action 73. Not repeated after a lost reply: the caller reads the event's status first."""
        self.call(73, agent, {"eventId": event_id}, idempotent=False)

    def bind_players(self, *, agent: str, event_id: EventId, players: Sequence[str]) -> BindResult:
        """Action 74, in calls of at most 50,000 players (a lost reply raises
        :class:`JdbTransportError`; the caller reads back before repeating)."""
        result = BindResult()
        for chunk in chunks(players):
            data = self.call(74, agent, {"eventId": event_id, "players": chunk}, idempotent=False)
            result = result + BindResult.from_data(data)
        return result

    def unbind_players(self, *, agent: str, event_id: EventId, players: Sequence[str]) -> None:
        """Action 75 (only while the event is INACTIVE), in calls of at most 50,000 players."""
        for chunk in chunks(players):
            self.call(75, agent, {"eventId": event_id, "players": chunk}, idempotent=False)


def _draft_fields(draft: EventDraft) -> dict[str, Any]:
    return {
        "name": draft.name,
        "startTime": iso(draft.start),
        "endTime": iso(draft.end),
        "machineTypes": list(draft.machine_types),
        "bet": draft.bet,
        "minWithdrawal": draft.min_withdrawal,
        "maxWithdrawal": draft.max_withdrawal,
    }


def _name_action(transport_message: str, action: int) -> str:
    """A transport error's text with the action as its operation: one path serves every action."""
    op = f"POST {PATH}"
    if op in transport_message:
        return transport_message.replace(op, f"action {action}", 1)
    return f"{transport_message} (action {action})"


def _status_shape(body: Any) -> bool:
    """Whether a success's body is a JDB status object."""
    return isinstance(body, dict) and "status" in body


def _busy_at_200(exc: Exception) -> bool:
    """A busy refusal the transport did not already retry (those came with a 5xx)."""
    return isinstance(exc, JdbUnavailableError) and exc.http_status is None


def _http_status(resp: Response) -> int | None:
    return None if resp.status_code == 200 else resp.status_code

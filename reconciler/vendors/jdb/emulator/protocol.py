"""The JDB API's vocabulary as the emulator speaks it: limits, status codes and texts, the knobs'
possible answers, the readers of request parameters (each refusal a :class:`_Fail` with the
documented code) and the ``x`` envelope's decryption. See the package docstring for the rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from Crypto.Cipher import AES

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
    "9019": ("Request rate limit exceeded.", 200),  # "request rate limit exceeded"
}
STATUSES = ("INACTIVE", "ACTIVE", "EXPIRED", "TERMINATED")
A76_DOCUMENTED = (
    "eventId",
    "name",
    "creator",
    "numberOfPlayers",
    "type",
    "totalUseTimes",
    "totalTimes",
    "totalCashout",
    "machineTypes",
    "status",
    "currency",
    "startTime",
)
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
    # when the 180 days of retention start for a TERMINATED event (Action 71 seed: "retained for 180
    # days after the free spin reward expires"; when a stopped event "expires" is not written): at
    # its endTime ("end"), or when it was terminated ("stop"); an EXPIRED event counts from endTime
    "event_retention_from": ("end", "stop"),
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

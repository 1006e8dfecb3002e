"""Emulator of the BestProxy OpenAPI (proxy accounts and IP allowlists).

Written from ``reference/seeds/bestproxy-openapi.txt`` (the contract), independently of the
client. Endpoints::

    GET  /gateway/whitelist-account/list
    POST /gateway/whitelist-account/{add,delete,enable,disable,change-password,change-remark,change-limit}
    POST /gateway/proxy-account/change
    GET  /gateway/proxy-ip/list
    POST /gateway/proxy-ip/{add,delete}

Wire format
-----------
- ``app_key`` is read from the POST body (JSON or form-encoded) or from the query string; a body
  value wins over a query value. A missing or wrong key answers ``{"code": 3, "msg": ..., "data":
  null}``. The bearer scheme the document also names is *not* accepted (unverified upstream).
- POST bodies: ``application/json`` (an object) or ``application/x-www-form-urlencoded``; without a
  content type a body starting with ``{`` is read as JSON, anything else as a form.
- Success: ``{"code": 200, "msg": "success", "data": null}`` (lists: ``data = {"list": [...]}``).
- A request that breaks a validation rule — missing/ill-typed/out-of-range field, unknown or already
  existing account, bad IP, wrong verification code — answers the document's ``ErrorResponse``:
  ``{"code": 400, "message": "Parameter error", "errors": {field: [text, ...]}}`` (note: ``message``,
  not ``msg``, and no ``data``), listing every failing field at once.
- Other failures use the envelope ``{"code": N, "msg": text, "data": null}``: ``3`` invalid app_key,
  ``156`` account not verified (whitelist-account writes only, when :attr:`verified` is False),
  ``404`` unknown path, ``405`` wrong method, ``500`` injected fault.
- Every vendor answer is HTTP 200 (the document lists no other status); only unknown paths (404),
  wrong methods (405) and injected faults (500) use another HTTP status.
- Integers are accepted as JSON integers or as decimal strings (form bodies carry only strings);
  booleans and floats are rejected. String fields must be JSON strings. ``null`` = not provided.
  Unknown fields are ignored.
- Order of checks: route (404/405) → body parse (a body that cannot be parsed is an ErrorResponse
  on ``body``, before authentication, since the key may be inside it) → app_key (3) → field
  validation (400) → 156 → state checks (unknown/existing account, verification code; 400).

Semantic decisions where the document is silent
-----------------------------------------------
- Usernames and passwords: letters and digits only (``[A-Za-z0-9]``). Passwords are 6–16 characters
  on ``/gateway/proxy-account/change``, the only endpoint whose text states a length. Knob
  ``password_length``: ``"documented"`` (default) checks it there only; ``"everywhere"`` also on
  add and change-password (a guess the document does not make). Usernames: 1–64 characters (the cap is the emulator's own). Usernames are
  case-sensitive and unique across all product types.
- Remark: at most 64 characters, or at most 32 when it contains any CJK character (see
  :func:`has_cjk` for the ranges). Empty is allowed (clears the remark).
- ``limit`` / ``daily_limit``: integer GB in 0..102400, 0 = no limit.
- Knobs (:data:`KNOBS`, set with :meth:`BestProxyEmulator.set_knobs` or as constructor keywords;
  the first answer is the default) give each answer where the document is silent.
- Batches (``accounts`` in add/delete/enable/disable, ``ips`` in proxy-ip add/delete): knob
  ``batches``. ``"whole"`` (default): every entry is validated first; a malformed entry, a
  duplicate username in the batch, an unknown account (delete/enable/disable), an already existing
  account (add), an invalid IP, or an IP held by another product type (``ip_product_types=one``)
  rejects the whole batch with an ErrorResponse naming the offending items (malformed account
  entries by position only: they are never echoed, as they may hold a password), and nothing
  changes. ``"partial"``: the good entries are applied and the answer is the same ErrorResponse
  naming only the entries that were not (a batch with no good entry changes nothing). A problem
  with another field (remark, product_type, verification) refuses the whole request either way. Entries are separated by ``,``
  with no surrounding spaces; empty entries are malformed. Enabling an enabled account or disabling
  a disabled one succeeds and changes nothing.
- add: ``product_type`` is optional in the document ("Required: No"; 9/11/14/25 when given). Knob
  ``add_product_type``: ``"optional"`` (default; an account added without one is stored as type 9,
  the first plan type the document lists — a guess) or ``"required"`` (ErrorResponse without it).
  New accounts: status 1, limit_flow 0,
  daily_limit 0, udp 0, usage_flow 0.
- change-remark requires the ``remark`` field (an empty string clears it); change-limit requires
  ``limit``; change-password requires ``password``.
- proxy-account/change: ``account`` required; ``password``, ``remark``, ``limit``, ``daily_limit``,
  ``status`` (0/1), ``udp`` (0/1) optional — absent or ``null`` fields (and an empty ``password``
  or empty integer field) are unchanged; an empty ``remark`` clears it. ``udp: 0`` is accepted for
  every account (the document's own example sends it); ``udp: 1`` for a product type other than
  14, 16, 21 or 25 (where the document says the switch applies) is knob ``udp_other_types``:
  ``"refused"`` (ErrorResponse, default) or ``"ignored"`` (accepted, not stored). A call changing nothing succeeds. Unknown account →
  ErrorResponse. ``daily_limit`` is not checked against ``limit``. This endpoint never answers 156
  (the document lists only 200 for it).
- The document's 5-minute window (deletes, disables and password changes "take about 5 minutes";
  the old password keeps working; charges may continue) is behind the knob ``settle_seconds``
  (default 0: everything takes effect at once). With it, a deleted account leaves the list at once
  but its username stays taken until the window has passed: an add of it in the meantime is refused
  like an existing account (a guess: the document does not say what an add in the window answers).
  Disables and password changes show in the list at once; their effect on proxy traffic, which the
  window is about, is not observable through the API.
- New accounts in the list: knob ``list_delay_seconds`` (default 0: listed at once). The document
  gives account changes a window of up to 5 minutes but does not say whether the list shows a new
  account at once; with the knob, an added account exists at once (an add of it again is refused
  as existing; change, enable, disable and delete act on it) but the list leaves it out until that
  many seconds (by :attr:`clock`) have passed. Kept in memory, not in the state folder.
- ``daily_limit`` and ``udp`` are stored but, as in the document, not returned by the list:
  they are write-only through the API (:meth:`BestProxyEmulator.account_record` shows them to tests).
- ``usage_flow`` (KB) is server-owned and moves: every list call adds ``128 * (1 + id % 5)`` KB to
  every account before answering, so the first read is already non-zero and each read differs.
- ``created_at``: ``"YYYY-MM-DD HH:MM:SS"`` in UTC+8 (the vendor's time zone).
- IP allowlist entries are keyed by ``(ip, product_type)``. Knob ``ip_product_types``: ``"many"``
  (default; the same IP may be allowlisted for several product types) or ``"one"`` (an add of an IP
  another product type holds is refused for that IP). Knob ``ip_forms``: ``"ipv4"`` (default; IPv4
  dotted quads in canonical form: no IPv6, no CIDR, no leading zeros) or ``"any"`` (also IPv6
  addresses and IPv4/IPv6 CIDR blocks, stored and listed as sent). Entries made in the back office
  (:meth:`BestProxyEmulator.back_office_add_ip`) may take any form whatever the knob.
- proxy-ip/list: optional ``product_type`` filter (0/9/11/14/25; absent or empty = all); ordered by
  product_type then insertion.
- proxy-ip/add: ``ips`` split on commas and line breaks; whitespace around each IP is stripped and
  empty items skipped; at least one IP required. ``product_type`` is "Required: No" in the
  document: knob ``ip_add_product_type``: ``"optional"`` (default; absent or 0 — the value the
  document's add and list examples show — stores the entry under product type 0) or
  ``"required"`` (9/11/14/25 only).
  ``user_product_id`` is required for type 11 — it must be one of ``user_product_ids[11]`` when the
  emulator was given that mapping, any positive integer otherwise — and ignored for other types.
  Adding an IP that is already allowlisted for that product type is a no-op for that IP (its remark,
  created_at and user_product_id are kept: *add does not update remarks*); duplicates inside one
  batch collapse. An invalid IP rejects the whole batch.
- proxy-ip/delete: ``ips`` split on commas only (whitespace stripped); no product_type, so each IP
  is removed from **every** product type. IPs not on the allowlist are ignored (delete succeeds).
  ``verify_type`` ∈ phone/email/wechat/totp and ``verify_code`` are required and checked before
  anything is deleted: for ``totp`` the code must verify with pyotp against ``totp_secret`` with
  ``valid_window=1`` (without a secret, ``totp`` is refused: not bound); for phone/email/wechat the
  code is the fixed sandbox code :data:`SANDBOX_VERIFY_CODE` (``"000000"``). Knob ``totp_reuse``:
  ``"accepted"`` (default; a code may be used again within its window) or ``"refused"`` (a code's
  time step is used once: a code of that step or an earlier one is refused after it, RFC 6238
  §5.2). Phone/email/wechat codes are not single-use.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pyotp

from reconciler.sandbox.base import Emulator, Request, Response

SANDBOX_VERIFY_CODE = "000000"
PRODUCT_TYPES = (9, 11, 14, 25)
UDP_PRODUCT_TYPES = (14, 16, 21, 25)
VERIFY_TYPES = ("phone", "email", "wechat", "totp")
MAX_LIMIT_GB = 102400
PASSWORD_MIN, PASSWORD_MAX = 6, 16
USERNAME_MAX = 64
REMARK_MAX, REMARK_MAX_CJK = 64, 32

_ALNUM = re.compile(r"[A-Za-z0-9]+")
_INT = re.compile(r"-?[0-9]+")
_TZ = timezone(timedelta(hours=8))

# Code point ranges counted as "Chinese" characters for the remark length rule.
_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x31BF),  # Bopomofo, Hangul compatibility jamo, Kanbun, Bopomofo ext.
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # Half-/full-width forms
    (0x20000, 0x3134F),  # CJK unified ideographs extensions B–G, compatibility supplement
)


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains a CJK character (the ranges in ``_CJK_RANGES``)."""
    for ch in text:
        cp = ord(ch)
        if cp >= 0x2E80 and any(lo <= cp <= hi for lo, hi in _CJK_RANGES):
            return True
    return False


def remark_problem(remark: str) -> str | None:
    limit = REMARK_MAX_CJK if has_cjk(remark) else REMARK_MAX
    if len(remark) > limit:
        kind = "with Chinese characters " if limit == REMARK_MAX_CJK else ""
        return f"remark {kind}may not exceed {limit} characters"
    return None


class _BadBody(Exception):
    pass


class _Params:
    """Reads fields from a request's parameters, collecting every validation problem."""

    def __init__(self, values: dict[str, Any]):
        self.values = values
        self.errors: dict[str, list[str]] = {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def string(self, name: str, *, required: bool = False, allow_empty: bool = True) -> str | None:
        v = self.values.get(name)
        if v is None:
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        if not isinstance(v, str):
            self.fail(name, f"The {name} field must be a string.")
            return None
        if v == "" and not allow_empty:
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        return v

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        choices: tuple[int, ...] | None = None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> int | None:
        v = self.values.get(name)
        if v is None or v == "":
            if required:
                self.fail(name, f"The {name} field is required.")
            return None
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            self.fail(name, f"The {name} field must be an integer.")
            return None
        if isinstance(v, str):
            if not _INT.fullmatch(v):
                self.fail(name, f"The {name} field must be an integer.")
                return None
            v = int(v)
        if choices is not None and v not in choices:
            self.fail(name, f"The selected {name} is invalid (one of {', '.join(map(str, choices))}).")
            return None
        if lo is not None and v < lo or hi is not None and v > hi:
            self.fail(name, f"The {name} field must be between {lo} and {hi}.")
            return None
        return v

    def remark(self, name: str = "remark", *, required: bool = False) -> str | None:
        v = self.string(name, required=required)
        if v is not None and (problem := remark_problem(v)):
            self.fail(name, problem)
            return None
        return v

    def password(self, name: str = "password", *, required: bool = False, length: bool = True) -> str | None:
        v = self.string(name, required=required, allow_empty=False)
        if v is not None and (problem := password_problem(v, length=length)):
            self.fail(name, problem)
            return None
        return v

    def username(self, name: str = "account") -> str | None:
        v = self.string(name, required=True, allow_empty=False)
        if v is not None and (problem := username_problem(v)):
            self.fail(name, problem)
            return None
        return v


def username_problem(username: str) -> str | None:
    # Invalid names are not echoed: a mistyped entry may carry a password.
    if not _ALNUM.fullmatch(username):
        return "account names may only contain letters and digits"
    if len(username) > USERNAME_MAX:
        return f"account names may not exceed {USERNAME_MAX} characters"
    return None


def password_problem(password: str, *, length: bool = True) -> str | None:
    if not _ALNUM.fullmatch(password):
        return "password may only contain letters and digits"
    if length and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"
    return None


def parse_ipv4(text: str) -> str | None:
    """The canonical dotted quad, or None when ``text`` is not a plain IPv4 address."""
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    canonical = str(addr)
    return canonical if canonical == text else None


# Where the document is silent, each answer the emulator can give (the first is the default).
KNOBS: dict[str, tuple[str, ...]] = {
    "add_product_type": ("optional", "required"),  # whitelist-account/add without product_type
    "password_length": ("documented", "everywhere"),  # 6-16 characters checked on change only, or everywhere
    "ip_add_product_type": ("optional", "required"),  # proxy-ip/add without product_type
    "ip_forms": ("ipv4", "any"),  # proxy-ip/add takes IPv4 only, or also IPv6 and CIDR blocks
    "ip_product_types": ("many", "one"),  # one IP allowlisted under several product types, or one only
    "batches": ("whole", "partial"),  # a batch with a bad item is refused whole, or the rest is applied
    "totp_reuse": ("accepted", "refused"),  # a TOTP code (its time step) may be used again, or once only
    "udp_other_types": ("refused", "ignored"),  # udp=1 on a type other than 14/16/21/25
}


class BestProxyEmulator(Emulator):
    """The BestProxy OpenAPI account and IP-allowlist endpoints, state in SQLite.

    ``user_product_ids`` maps a product type to the user-package ids the account owns; only type 11
    uses it (``user_product_id`` is required when adding IPs for type 11). Set :attr:`verified` to
    False to make whitelist-account writes answer code 156 (account not verified; not persisted).
    :attr:`clock` (seconds since the epoch) drives ``created_at`` and TOTP checks; tests may replace
    it. :meth:`account_record`, :meth:`ip_records` and :meth:`wipe` are test helpers, not vendor API.
    """

    name = "bestproxy"

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        app_key: str,
        totp_secret: str | None = None,
        user_product_ids: dict[int, list[int]] | None = None,
        add_product_type: str = "optional",
        password_length: str = "documented",
        settle_seconds: float = 0.0,
        list_delay_seconds: float = 0.0,
        **knobs: str,
    ):
        self.add_product_type = add_product_type
        self.password_length = password_length
        self.ip_add_product_type = self.ip_forms = self.ip_product_types = ""
        self.batches = self.totp_reuse = self.udp_other_types = ""
        self.set_knobs(**{k: v[0] for k, v in KNOBS.items() if k not in ("add_product_type", "password_length")})
        self.set_knobs(add_product_type=add_product_type, password_length=password_length, **knobs)
        self._totp_last_step: int | None = None  # the last TOTP time step accepted (totp_reuse=refused)
        self.settle_seconds = settle_seconds
        self._settling: dict[str, float] = {}  # deleted username -> when it may be added again
        self.list_delay_seconds = list_delay_seconds
        self._unlisted: dict[str, float] = {}  # new username -> when the list starts showing it
        if not app_key:
            raise ValueError("app_key must not be empty")
        if totp_secret:
            try:
                pyotp.TOTP(totp_secret).byte_secret()
            except (ValueError, TypeError) as exc:
                # binascii.Error is a ValueError; never echo the secret itself.
                raise ValueError(f"totp_secret is not a usable base32 TOTP secret: {exc}") from None
        self.app_key = app_key
        self.totp_secret = totp_secret
        self.user_product_ids = (
            {int(k): [int(x) for x in v] for k, v in user_product_ids.items()}
            if user_product_ids is not None
            else None
        )
        self.verified = True
        self.clock: Callable[[], float] = time.time
        super().__init__(state_dir)
        self._routes: dict[str, tuple[str, Callable[[dict[str, Any]], Response]]] = {
            "/gateway/whitelist-account/list": ("GET", self._account_list),
            "/gateway/whitelist-account/add": ("POST", self._account_add),
            "/gateway/whitelist-account/delete": ("POST", self._account_delete),
            "/gateway/whitelist-account/enable": ("POST", self._account_enable),
            "/gateway/whitelist-account/disable": ("POST", self._account_disable),
            "/gateway/whitelist-account/change-password": ("POST", self._account_change_password),
            "/gateway/whitelist-account/change-remark": ("POST", self._account_change_remark),
            "/gateway/whitelist-account/change-limit": ("POST", self._account_change_limit),
            "/gateway/proxy-account/change": ("POST", self._proxy_account_change),
            "/gateway/proxy-ip/list": ("GET", self._ip_list),
            "/gateway/proxy-ip/add": ("POST", self._ip_add),
            "/gateway/proxy-ip/delete": ("POST", self._ip_delete),
        }

    def set_knobs(self, **knobs: str) -> None:
        """Set knobs (names and answers in :data:`KNOBS`); an unknown name or answer is a ValueError."""
        for name, value in knobs.items():
            if name not in KNOBS or value not in KNOBS[name]:
                raise ValueError(f"unknown knob {name}={value!r} (knobs: {KNOBS})")
        for name, value in knobs.items():
            setattr(self, name, value)
        if knobs.get("totp_reuse"):
            self._totp_last_step = None

    def knobs(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in KNOBS}

    # -- storage ----------------------------------------------------------------------------
    def init_db(self) -> None:
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS accounts (
                id           INTEGER PRIMARY KEY AUTOINCREMENT,
                username     TEXT    NOT NULL UNIQUE,
                password     TEXT    NOT NULL,
                created_at   TEXT    NOT NULL,
                remark       TEXT    NOT NULL DEFAULT '',
                product_type INTEGER NOT NULL,
                usage_flow   INTEGER NOT NULL DEFAULT 0,
                limit_flow   INTEGER NOT NULL DEFAULT 0,
                daily_limit  INTEGER NOT NULL DEFAULT 0,
                status       INTEGER NOT NULL DEFAULT 1,
                udp          INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS proxy_ips (
                id              INTEGER PRIMARY KEY AUTOINCREMENT,
                ip              TEXT    NOT NULL,
                product_type    INTEGER NOT NULL,
                remark          TEXT    NOT NULL DEFAULT '',
                user_product_id INTEGER,
                created_at      TEXT    NOT NULL,
                UNIQUE (ip, product_type)
            );
            """
        )

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), _TZ).strftime("%Y-%m-%d %H:%M:%S")

    def _existing(self, usernames: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(usernames), 500):
            chunk = usernames[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT username FROM accounts WHERE username IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def _account(self, username: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM accounts WHERE username = ?", (username,)).fetchone()
        return dict(row) if row else None

    # -- inspection helpers for tests (not part of the vendor API) ----------------------------
    def account_record(self, username: str) -> dict[str, Any] | None:
        """Every stored field of one account, including the write-only daily_limit and udp."""
        with self.lock:
            return self._account(username)

    def ip_records(self) -> list[dict[str, Any]]:
        """Every stored allowlist row, including user_product_id."""
        with self.lock:
            rows = self.db.execute("SELECT * FROM proxy_ips ORDER BY product_type, id").fetchall()
            return [dict(r) for r in rows]

    def wipe(self) -> None:
        """Delete every account and allowlisted IP (a DR drill's "empty account")."""
        with self.lock, self.transaction():
            self.db.execute("DELETE FROM accounts")
            self.db.execute("DELETE FROM proxy_ips")
            self._settling.clear()
            self._unlisted.clear()

    # -- envelope -----------------------------------------------------------------------------
    @staticmethod
    def _ok(data: Any = None) -> Response:
        return Response.json({"code": 200, "msg": "success", "data": data})

    @staticmethod
    def _fail(code: int, msg: str, status: int = 200) -> Response:
        return Response.json({"code": code, "msg": msg, "data": None}, status=status)

    @staticmethod
    def _param_error(errors: dict[str, list[str]]) -> Response:
        return Response.json({"code": 400, "message": "Parameter error", "errors": errors})

    def is_write(self, req: Request) -> bool:
        return req.method == "POST"

    def injected_error(self, req: Request) -> Response:
        return self._fail(500, "Internal server error (injected fault)", status=500)

    # -- dispatch -----------------------------------------------------------------------------
    def _params(self, req: Request) -> dict[str, Any]:
        if req.method != "POST":
            return {}
        if not req.body.strip():
            return {}
        ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
        is_json = ctype == "application/json" or ctype.endswith("+json")
        if not ctype:
            is_json = req.body.lstrip().startswith(b"{")
        try:
            if is_json:
                obj = json.loads(req.body.decode("utf-8"))
                if not isinstance(obj, dict):
                    raise _BadBody("the JSON body must be an object")
                return obj
            if ctype in ("", "application/x-www-form-urlencoded"):
                return req.form()
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadBody(f"the body cannot be parsed: {exc.__class__.__name__}") from None
        raise _BadBody(f"unsupported content type {ctype}")

    def handle(self, req: Request) -> Response:
        route = self._routes.get(req.path)
        if route is None:
            return self._fail(404, "Not Found", status=404)
        method, handler = route
        if req.method != method:
            return self._fail(405, "Method Not Allowed", status=405)
        try:
            params = self._params(req)
        except _BadBody as exc:
            return self._param_error({"body": [str(exc)]})
        key = params.get("app_key")
        if key is None or key == "":
            key = req.query.get("app_key")
        if key != self.app_key:
            return self._fail(3, "invalid app_key")
        return handler(params if req.method == "POST" else dict(req.query))

    # -- whitelist-account -------------------------------------------------------------------
    def _account_list(self, params: dict[str, Any]) -> Response:
        with self.transaction():
            self.db.execute("UPDATE accounts SET usage_flow = usage_flow + 128 * (1 + id % 5)")
            rows = self.db.execute(
                "SELECT id, username, password, created_at, remark, product_type, usage_flow,"
                " limit_flow, status FROM accounts ORDER BY id"
            ).fetchall()
        now = self.clock()
        hidden = {u for u, at in self._unlisted.items() if at > now}
        return self._ok({"list": [dict(r) for r in rows if r["username"] not in hidden]})

    def _items(self, p: _Params, field: str, problems: list[str]) -> list[str]:
        """Problems with single items of a batch: with ``batches=whole`` they refuse the request
        (into ``p``); with ``partial`` they are returned, to be answered after the rest is applied."""
        if self.batches == "whole":
            for prob in problems:
                p.fail(field, prob)
            return []
        return problems

    def _partial(self, field: str, failed: list[str]) -> Response:
        """The answer to a batch that was applied: success, or with ``batches=partial`` an
        ErrorResponse naming the items that were not (the others were)."""
        return self._param_error({field: failed}) if failed else self._ok()

    def _batch(self, p: _Params, *, with_passwords: bool) -> tuple[list[tuple[str, str | None]], list[str]]:
        """Parse ``accounts``: ``u:p,u:p`` (with_passwords) or ``u,u``. Field problems go into
        ``p``; problems of single entries are returned (see :meth:`_items`)."""
        raw = p.string("accounts", required=True, allow_empty=False)
        if raw is None:
            return [], []
        entries: list[tuple[str, str | None]] = []
        problems: list[str] = []
        for n, item in enumerate(raw.split(","), 1):
            if with_passwords:
                user, sep, pw = item.partition(":")
                if not sep:
                    # Never echo the entry: it may be a password.
                    problems.append(f"entry {n} is not username:password")
                    continue
                if prob := username_problem(user):
                    problems.append(f"entry {n}: {prob}")
                    continue
                if prob := password_problem(pw, length=self.password_length == "everywhere"):
                    problems.append(f"account {user}: {prob}")
                    continue
                entries.append((user, pw))
            else:
                if prob := username_problem(item):
                    problems.append(f"entry {n}: {prob}")
                    continue
                entries.append((item, None))
        seen: set[str] = set()
        dups: set[str] = set()
        for user, _ in entries:
            if user in seen:
                dups.add(user)
            seen.add(user)
        if dups:
            problems.append(f"duplicate account(s) in the batch: {', '.join(sorted(dups))}")
            entries = [e for e in entries if e[0] not in dups]
        return entries, problems

    def _account_add(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        entries, bad = self._batch(p, with_passwords=True)
        bad = self._items(p, "accounts", bad)
        remark = p.remark() or ""
        product_type = p.integer("product_type", required=self.add_product_type == "required", choices=PRODUCT_TYPES)
        if product_type is None and "product_type" not in p.errors:
            product_type = PRODUCT_TYPES[0]
        if p.errors or not entries:
            return self._param_error(p.errors or {"accounts": bad})
        if not self.verified:
            return self._fail(156, "account not verified")
        exists = self._existing([u for u, _ in entries])
        now_s = self.clock()
        exists |= {u for u, _ in entries if self._settling.get(u, 0.0) > now_s}
        if exists:
            bad.append(f"account(s) already exist: {', '.join(sorted(exists))}")
            entries = [e for e in entries if e[0] not in exists]
            if self.batches == "whole" or not entries:
                return self._param_error({"accounts": bad})
        now = self._now()
        with self.transaction():
            self.db.executemany(
                "INSERT INTO accounts (username, password, created_at, remark, product_type)"
                " VALUES (?, ?, ?, ?, ?)",
                [(u, pw, now, remark, product_type) for u, pw in entries],
            )
        if self.list_delay_seconds > 0:
            self._unlisted.update((u, now_s + self.list_delay_seconds) for u, _ in entries)
        return self._partial("accounts", bad)

    def _known_batch(self, params: dict[str, Any]) -> tuple[list[str], list[str], Response | None]:
        """The existing accounts a delete/enable/disable names, the problems of the entries left
        out (``batches=partial``), or the refusal."""
        p = _Params(params)
        entries, bad = self._batch(p, with_passwords=False)
        bad = self._items(p, "accounts", bad)
        users = [u for u, _ in entries]
        if p.errors or not users:
            return [], [], self._param_error(p.errors or {"accounts": bad})
        if not self.verified:
            return [], [], self._fail(156, "account not verified")
        missing = set(users) - self._existing(users)
        if missing:
            bad.append(f"account(s) do not exist: {', '.join(sorted(missing))}")
            users = [u for u in users if u not in missing]
            if self.batches == "whole" or not users:
                return [], [], self._param_error({"accounts": bad})
        return users, bad, None

    def _account_delete(self, params: dict[str, Any]) -> Response:
        users, bad, err = self._known_batch(params)
        if err:
            return err
        with self.transaction():
            self.db.executemany("DELETE FROM accounts WHERE username = ?", [(u,) for u in users])
        for u in users:
            self._unlisted.pop(u, None)
        if self.settle_seconds > 0:
            self._settling.update((u, self.clock() + self.settle_seconds) for u in users)
        return self._partial("accounts", bad)

    def _set_status(self, params: dict[str, Any], status: int) -> Response:
        users, bad, err = self._known_batch(params)
        if err:
            return err
        with self.transaction():
            self.db.executemany(
                "UPDATE accounts SET status = ? WHERE username = ?", [(status, u) for u in users]
            )
        return self._partial("accounts", bad)

    def _account_enable(self, params: dict[str, Any]) -> Response:
        return self._set_status(params, 1)

    def _account_disable(self, params: dict[str, Any]) -> Response:
        return self._set_status(params, 0)

    def _single(
        self, p: _Params, *, check_verified: bool = True
    ) -> tuple[dict[str, Any] | None, Response | None]:
        """Resolve ``account`` after the other fields were read into ``p``."""
        if p.errors:
            return None, self._param_error(p.errors)
        if check_verified and not self.verified:
            return None, self._fail(156, "account not verified")
        username = p.values["account"]
        row = self._account(username)
        if row is None:
            return None, self._param_error({"account": [f"account {username} does not exist"]})
        return row, None

    def _update(self, username: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction():
            self.db.execute(
                f"UPDATE accounts SET {cols} WHERE username = ?", (*fields.values(), username)
            )

    def _account_change_password(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        p.username()
        password = p.password(required=True, length=self.password_length == "everywhere")
        row, err = self._single(p)
        if err:
            return err
        assert row is not None
        self._update(row["username"], password=password)
        return self._ok()

    def _account_change_remark(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        p.username()
        remark = p.remark(required=True)
        row, err = self._single(p)
        if err:
            return err
        assert row is not None
        self._update(row["username"], remark=remark)
        return self._ok()

    def _account_change_limit(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        p.username()
        limit = p.integer("limit", required=True, lo=0, hi=MAX_LIMIT_GB)
        row, err = self._single(p)
        if err:
            return err
        assert row is not None
        self._update(row["username"], limit_flow=limit)
        return self._ok()

    def _proxy_account_change(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        p.username()
        fields: dict[str, Any] = {
            "password": p.password(),
            "remark": p.remark(),
            "limit_flow": p.integer("limit", lo=0, hi=MAX_LIMIT_GB),
            "daily_limit": p.integer("daily_limit", lo=0, hi=MAX_LIMIT_GB),
            "status": p.integer("status", choices=(0, 1)),
            "udp": p.integer("udp", choices=(0, 1)),
        }
        # The document lists only code 200 (and 3) for this endpoint: no 156 here.
        row, err = self._single(p, check_verified=False)
        if err:
            return err
        assert row is not None
        if fields["udp"] == 1 and row["product_type"] not in UDP_PRODUCT_TYPES:
            if self.udp_other_types == "ignored":
                fields["udp"] = None
            else:
                types = ", ".join(map(str, UDP_PRODUCT_TYPES))
                return self._param_error({"udp": [f"udp can only be switched on for product types {types}"]})
        self._update(row["username"], **{k: v for k, v in fields.items() if v is not None})
        return self._ok()

    # -- proxy-ip -----------------------------------------------------------------------------
    def _ip_list(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        product_type = p.integer("product_type", choices=(0, *PRODUCT_TYPES))
        if p.errors:
            return self._param_error(p.errors)
        sql = "SELECT ip, remark, product_type, created_at FROM proxy_ips"
        args: tuple[Any, ...] = ()
        if product_type is not None:
            sql += " WHERE product_type = ?"
            args = (product_type,)
        rows = self.db.execute(sql + " ORDER BY product_type, id", args).fetchall()
        return self._ok({"list": [dict(r) for r in rows]})

    def _parse_ip(self, text: str) -> str | None:
        """The entry as stored, or None when this emulator's ``ip_forms`` does not take it."""
        if self.ip_forms == "ipv4":
            return parse_ipv4(text)
        try:
            if "/" in text:
                ipaddress.ip_network(text, strict=False)
            else:
                ipaddress.ip_address(text)
        except ValueError:
            return None
        return text  # kept as sent (case, zeros, host bits): the list answers what was added

    def _ips(self, p: _Params, separators: str) -> tuple[list[str], list[str]]:
        """The valid addresses of ``ips`` and the problems of the invalid ones (see :meth:`_items`)."""
        raw = p.string("ips", required=True, allow_empty=False)
        if raw is None:
            return [], []
        ips: list[str] = []
        bad: list[str] = []
        for item in re.split(separators, raw):
            item = item.strip()
            if not item:
                continue
            ip = self._parse_ip(item)
            if ip is None:
                bad.append(item)
            elif ip not in ips:
                ips.append(ip)
        what = "IPv4 address(es)" if self.ip_forms == "ipv4" else "IP address(es) or CIDR block(s)"
        problems = [f"invalid {what}: {', '.join(bad)}"] if bad else []
        if not ips and not bad:
            p.fail("ips", "The ips field is required.")
        return ips, problems

    def _ip_add(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        ips, bad = self._ips(p, r"\r\n|[,\n\r]")
        bad = self._items(p, "ips", bad)
        remark = p.remark() or ""
        choices = PRODUCT_TYPES if self.ip_add_product_type == "required" else (0, *PRODUCT_TYPES)
        product_type = p.integer("product_type", required=self.ip_add_product_type == "required", choices=choices) or 0
        if product_type == 0 and self.ip_add_product_type == "required" and "product_type" not in p.errors:
            p.fail("product_type", "The product_type field is required.")
        upid = p.integer("user_product_id", required=product_type == 11, lo=None)
        if product_type == 11 and upid is not None:
            owned = None if self.user_product_ids is None else self.user_product_ids.get(11, [])
            if upid <= 0 or (owned is not None and upid not in owned):
                p.fail("user_product_id", f"user_product_id {upid} is not a type 11 package of this account")
        if p.errors or not ips:
            return self._param_error(p.errors or {"ips": bad})
        if self.ip_product_types == "one":
            marks = ",".join("?" * len(ips))
            taken = self.db.execute(
                f"SELECT ip, product_type FROM proxy_ips WHERE product_type != ? AND ip IN ({marks})",
                (product_type, *ips),
            ).fetchall()
            if taken:
                bad.append("already allowlisted for another product type: "
                           + ", ".join(f"{r['ip']} ({r['product_type']})" for r in taken))
                ips = [ip for ip in ips if ip not in {r["ip"] for r in taken}]
                if self.batches == "whole" or not ips:
                    return self._param_error({"ips": bad})
        now = self._now()
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO proxy_ips (ip, product_type, remark, user_product_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(ip, product_type, remark, upid if product_type == 11 else None, now) for ip in ips],
            )
        return self._partial("ips", bad)

    def _totp_ok(self, code: str) -> bool:
        """Whether ``code`` is the TOTP of this step or one either side (pyotp's valid_window=1);
        with ``totp_reuse=refused`` a step at or before the last one accepted is refused."""
        assert self.totp_secret
        totp = pyotp.TOTP(self.totp_secret)
        now = int(self.clock())
        for offset in (0, -1, 1):
            at = now + offset * totp.interval
            if totp.verify(code, for_time=at, valid_window=0):
                step = at // totp.interval
                if self.totp_reuse == "refused" and self._totp_last_step is not None and step <= self._totp_last_step:
                    continue
                self._totp_last_step = max(step, self._totp_last_step or step)
                return True
        return False

    def _ip_delete(self, params: dict[str, Any]) -> Response:
        p = _Params(params)
        ips, bad = self._ips(p, r",")
        bad = self._items(p, "ips", bad)
        vtype = p.string("verify_type", required=True, allow_empty=False)
        if vtype is not None and vtype not in VERIFY_TYPES:
            p.fail("verify_type", f"The selected verify_type is invalid (one of {', '.join(VERIFY_TYPES)}).")
            vtype = None
        code = p.string("verify_code", required=True, allow_empty=False)
        if p.errors or not ips:
            return self._param_error(p.errors or {"ips": bad})
        assert vtype is not None and code is not None
        if vtype == "totp":
            if not self.totp_secret:
                return self._param_error({"verify_type": ["TOTP is not bound to this account"]})
            ok = self._totp_ok(code)
        else:
            ok = code == SANDBOX_VERIFY_CODE
        if not ok:
            return self._param_error({"verify_code": ["invalid verification code"]})
        with self.transaction():
            self.db.executemany("DELETE FROM proxy_ips WHERE ip = ?", [(ip,) for ip in ips])
        return self._partial("ips", bad)

    # -- the vendor's back office (test helper, not API) ---------------------------------------
    def back_office_add_ip(self, ip: str, product_type: int, remark: str = "") -> None:
        """An allowlist entry made in BestProxy's web console, which may take forms the API
        refuses (IPv6, CIDR): stored as given."""
        with self.lock, self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO proxy_ips (ip, product_type, remark, created_at) VALUES (?, ?, ?, ?)",
                (ip, product_type, remark, self._now()),
            )

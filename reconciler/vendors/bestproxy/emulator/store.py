"""The BestProxy emulator's state: the knobs, the SQLite tables (accounts, allowlisted IPs), the
delays that make a deleted name settle and a new one show late, the test helpers that read or wipe
the state, and the answer envelope (``code``/``msg``/``data``) every operation answers with.

The operations (:mod:`.accounts`, :mod:`.allowlist`) and the HTTP side (:mod:`.api`) are
subclasses that read and write this state under the server's lock.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pyotp

from reconciler.sandbox.base import Emulator, Response
from reconciler.vendors.bestproxy.emulator.params import _TZ, KNOBS, _Params


class BestProxyState(Emulator):
    """The stored state, knobs and answer envelope of the BestProxy emulator (see :class:`BestProxyEmulator`)."""

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
            {int(k): [int(x) for x in v] for k, v in user_product_ids.items()} if user_product_ids is not None else None
        )
        self.verified = True
        self.clock: Callable[[], float] = time.time
        super().__init__(state_dir)

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

    # -- batches (accounts and IPs alike) ----------------------------------------------------
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

    # -- the vendor's back office (test helper, not API) ---------------------------------------
    def back_office_add_ip(self, ip: str, product_type: int, remark: str = "") -> None:
        """An allowlist entry made in BestProxy's web console, which may take forms the API
        refuses (IPv6, CIDR): stored as given."""
        with self.lock, self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO proxy_ips (ip, product_type, remark, created_at) VALUES (?, ?, ?, ?)",
                (ip, product_type, remark, self._now()),
            )

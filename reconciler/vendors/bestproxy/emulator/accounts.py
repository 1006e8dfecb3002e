"""The whitelist-account endpoints (list, add, delete, enable, disable, change-password,
change-remark, change-limit) and proxy-account/change, with the batch, settle and knob rules of the
package docstring.
"""

from __future__ import annotations

from typing import Any

from reconciler.sandbox.base import Response
from reconciler.vendors.bestproxy.emulator.params import (
    MAX_LIMIT_GB,
    PRODUCT_TYPES,
    UDP_PRODUCT_TYPES,
    _Params,
    password_problem,
    username_problem,
)
from reconciler.vendors.bestproxy.emulator.store import BestProxyState


class AccountOperations(BestProxyState):
    """whitelist-account/* and proxy-account/change."""

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
                "INSERT INTO accounts (username, password, created_at, remark, product_type) VALUES (?, ?, ?, ?, ?)",
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
            self.db.executemany("UPDATE accounts SET status = ? WHERE username = ?", [(status, u) for u in users])
        return self._partial("accounts", bad)

    def _account_enable(self, params: dict[str, Any]) -> Response:
        return self._set_status(params, 1)

    def _account_disable(self, params: dict[str, Any]) -> Response:
        return self._set_status(params, 0)

    def _single(self, p: _Params, *, check_verified: bool = True) -> tuple[dict[str, Any] | None, Response | None]:
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
            self.db.execute(f"UPDATE accounts SET {cols} WHERE username = ?", (*fields.values(), username))

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

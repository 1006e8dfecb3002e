"""The proxy-ip endpoints (list, add, delete): IP forms, product types, the verification that
delete requires (TOTP or the sandbox code), as the package docstring says.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pyotp

from reconciler.sandbox.base import Response
from reconciler.vendors.bestproxy.emulator.params import (
    PRODUCT_TYPES,
    SANDBOX_VERIFY_CODE,
    VERIFY_TYPES,
    _Params,
    parse_ipv4,
)
from reconciler.vendors.bestproxy.emulator.store import BestProxyState


class IpAllowlistOperations(BestProxyState):
    """proxy-ip/*."""

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
                bad.append(
                    "already allowlisted for another product type: "
                    + ", ".join(f"{r['ip']} ({r['product_type']})" for r in taken)
                )
                ips = [ip for ip in ips if ip not in {r["ip"] for r in taken}]
                if self.batches == "whole" or not ips:
                    return self._param_error({"ips": bad})
        now = self._now()
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO proxy_ips (ip, product_type, remark, user_product_id, created_at) VALUES (?, ?, ?, ?, ?)",
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

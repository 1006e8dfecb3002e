"""BestProxy OpenAPI client (``/gateway/...``, ``app_key`` auth).

Both response envelopes are understood: ``{"code": 200, "msg": ...}`` (accounts, IPs, usage) and
``{"code": 0, "message": ...}`` (orders, products); ``ErrorResponse`` ``{"code": 400, "message",
"errors"}``. Documented failure codes map to typed errors. Batch inputs are comma-joined strings.

Retries: reads are repeated freely. Writes here are *state-setting* (add an account that exists
fails cleanly, enable/disable/delete/change are absolute), so the transport may repeat them after
a lost reply only where the emulated/real semantics make a repeat harmless; ``add`` is not
retried blindly — the caller re-lists to resolve an unknown outcome.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from reconciler.clients import redact
from reconciler.clients.http import HttpTransport, RetryPolicy
from reconciler.errors import ApiError, TransportError


class BestProxyError(ApiError):
    vendor = "bestproxy"


class BestProxyInvalidAppKey(BestProxyError):
    """code 3: the app_key is invalid."""


class BestProxyAccountNotVerified(BestProxyError):
    """code 156: the BestProxy account has not completed verification."""


class BestProxyParameterError(BestProxyError):
    """code 400 ErrorResponse: a parameter was rejected. ``fields`` are the parameter names the
    answer's ``errors`` names (empty when it names none)."""

    fields: tuple[str, ...] = ()


class BestProxyHttpError(BestProxyError):
    """A non-JSON or non-2xx HTTP answer."""


class BestProxyTransportError(BestProxyError, TransportError):
    retryable = True


_CODES: dict[int, type[BestProxyError]] = {
    3: BestProxyInvalidAppKey,
    156: BestProxyAccountNotVerified,
    400: BestProxyParameterError,
}
_SUCCESS = (200, 0)


def parse_envelope(operation: str, http_status: int, payload: Any, *, host: str | None = None) -> Any:
    """``data`` of a successful answer in either envelope, else the typed error.

    Success: ``{"code": 200, "msg", "data"}`` or ``{"code": 0, "message", "data"}``. Failure:
    documented codes (3, 156, 400 ErrorResponse with ``errors``) map to their classes. The error
    names ``host`` (``host:port``) and ``operation`` (``METHOD /path``, never the query string).
    """
    if not isinstance(payload, dict) or "code" not in payload:
        raise BestProxyHttpError("unexpected answer shape", http_status=http_status, host=host, operation=operation)
    code = payload.get("code")
    if code in _SUCCESS and http_status < 400:
        return payload.get("data")
    message = str(payload.get("msg") or payload.get("message") or "error")
    errors = payload.get("errors")
    if isinstance(errors, dict) and errors:
        # field names and the server's rule texts; values of secret-bearing fields are not shown
        shown = {k: v for k, v in sorted(errors.items()) if k not in _SECRET_FIELDS}
        if shown:
            message += " (" + "; ".join(f"{k}: {_first(v)}" for k, v in shown.items()) + ")"
        hidden = sorted(set(errors) & _SECRET_FIELDS)
        if hidden:
            message += f" (rejected: {', '.join(hidden)})"
    cls = _CODES.get(code if isinstance(code, int) else -1, BestProxyError)
    exc = cls(message, code=code, http_status=http_status if http_status != 200 else None, host=host, operation=operation)
    if isinstance(exc, BestProxyParameterError) and isinstance(errors, dict):
        exc.fields = tuple(sorted(str(k) for k in errors))
    raise exc


_SECRET_FIELDS = {"app_key", "password", "accounts", "verify_code"}


def _envelope_shape(payload: Any) -> bool:
    """Whether a success's body is a BestProxy envelope (an object with ``code``)."""
    return isinstance(payload, dict) and "code" in payload


def _first(value: Any) -> str:
    return str(value[0]) if isinstance(value, list) and value else str(value)


@dataclass(frozen=True)
class LiveAccount:
    username: str
    password: str
    remark: str
    product_type: int
    limit_gb: int
    enabled: bool
    raw: dict[str, Any]


@dataclass(frozen=True)
class LiveIp:
    ip: str
    remark: str
    product_type: int


class BestProxyClient:
    def __init__(
        self,
        base_url: str,
        *,
        app_key: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 4,
        requests_per_second: float | None = None,
    ):
        self._app_key = app_key
        # the last TOTP time step a verification code was made for, by secret digest (one code per step)
        self.verify_steps: dict[str, int] = {}
        self.verify_lock = threading.Lock()
        redact.register(app_key)  # a query parameter of every GET: never in a log line
        self.http = HttpTransport(
            base_url,
            vendor="bestproxy",
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            error_cls=BestProxyError,
            transport_error_cls=BestProxyTransportError,
            requests_per_second=requests_per_second,
        )

    def __repr__(self) -> str:
        return "BestProxyClient(<app_key hidden>)"

    def close(self) -> None:
        self.http.close()

    # -- envelope --------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, idempotent: bool) -> Any:
        # a success whose body is cut short or not an envelope is an unreadable reply: a read is
        # asked again, a write's outcome is unknown (settled by reading back: kinds/writes.py)
        if method == "GET":
            params = {"app_key": self._app_key, **(body or {})}
            resp = self.http.send("GET", path, params=params, idempotent=True, shape=_envelope_shape)
        else:
            resp = self.http.send(
                method, path, json={"app_key": self._app_key, **(body or {})}, idempotent=idempotent, shape=_envelope_shape
            )
        operation = f"{method} {path}"
        try:
            payload = resp.json()
        except ValueError:
            raise BestProxyHttpError(
                "the answer is not JSON", http_status=resp.status_code, host=self.http.host, operation=operation
            ) from None
        return parse_envelope(operation, resp.status_code, payload, host=self.http.host)

    # -- accounts --------------------------------------------------------------------------
    def list_accounts(self) -> list[LiveAccount]:
        data = self._call("GET", "/gateway/whitelist-account/list", idempotent=True) or {}
        out = []
        for item in data.get("list") or []:
            out.append(
                LiveAccount(
                    username=str(item.get("username", "")),
                    password=str(item.get("password", "")),
                    remark=str(item.get("remark") or ""),
                    product_type=int(item.get("product_type") or 0),
                    limit_gb=int(item.get("limit_flow") or 0),
                    enabled=int(item.get("status") or 0) == 1,
                    raw=item,
                )
            )
        return out

    def add_accounts(self, accounts: list[tuple[str, str]], *, product_type: int, remark: str = "") -> None:
        """One call for many accounts of one product type and remark (``user:pass,user:pass``)."""
        joined = ",".join(f"{u}:{p}" for u, p in accounts)
        self._call(
            "POST",
            "/gateway/whitelist-account/add",
            {"accounts": joined, "remark": remark, "product_type": product_type},
            idempotent=False,
        )

    def delete_accounts(self, usernames: list[str]) -> None:
        self._call("POST", "/gateway/whitelist-account/delete", {"accounts": ",".join(usernames)}, idempotent=True)

    def enable_accounts(self, usernames: list[str]) -> None:
        self._call("POST", "/gateway/whitelist-account/enable", {"accounts": ",".join(usernames)}, idempotent=True)

    def disable_accounts(self, usernames: list[str]) -> None:
        self._call("POST", "/gateway/whitelist-account/disable", {"accounts": ",".join(usernames)}, idempotent=True)

    def change_account(self, username: str, **fields: Any) -> None:
        """``/gateway/proxy-account/change``: password, remark, limit, daily_limit, status, udp."""
        allowed = {"password", "remark", "limit", "daily_limit", "status", "udp"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown account fields: {sorted(unknown)}")
        self._call("POST", "/gateway/proxy-account/change", {"account": username, **fields}, idempotent=True)

    # -- IP allowlist ----------------------------------------------------------------------
    def list_ips(self, product_type: int | None) -> list[LiveIp]:
        """The allowlist of one product type, or (``None``) the whole list. Entries are returned
        as the vendor writes them: IPv4, IPv6 or CIDR text, or anything else it holds."""
        query = {} if product_type is None else {"product_type": product_type}
        data = self._call("GET", "/gateway/proxy-ip/list", query, idempotent=True) or {}
        out = []
        for i in data.get("list") or []:
            pt = i.get("product_type")
            out.append(
                LiveIp(
                    ip=str(i.get("ip", "")).strip(),
                    remark=str(i.get("remark") or ""),
                    product_type=int(pt) if isinstance(pt, (int, str)) and str(pt).isdigit() else (product_type or 0),
                )
            )
        return out

    def add_ips(self, ips: list[str], *, product_type: int | None, remark: str = "", user_product_id: int | None = None) -> None:
        """``product_type`` None sends none (the document marks it optional; the entry is the
        account's, product type 0 in the list)."""
        body: dict[str, Any] = {"ips": ",".join(ips), "remark": remark}
        if product_type:
            body["product_type"] = product_type
        if user_product_id is not None:
            body["user_product_id"] = user_product_id
        self._call("POST", "/gateway/proxy-ip/add", body, idempotent=False)

    def delete_ips(self, ips: list[str], *, verify_type: str, verify_code: str) -> None:
        # not repeated by the transport: a repeat would send the same verification code again, which
        # BestProxy may refuse as used; the caller settles an unknown outcome and sends a fresh code
        self._call(
            "POST",
            "/gateway/proxy-ip/delete",
            {"ips": ",".join(ips), "verify_type": verify_type, "verify_code": verify_code},
            idempotent=False,
        )

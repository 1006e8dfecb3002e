"""Acme Edge API v1 client (``examples/vendor-acme/API.md``) on the product's HTTP transport.

The transport (:class:`reconciler.clients.http.HttpTransport`) owns connections, timeouts, the
retry policy (429 and 5xx of idempotent requests, ``Retry-After``), the rate budget and the
unknown outcome of a write whose reply was lost; this module only knows Acme's paths and answers.
Both writes are idempotent (a PUT sets the whole rule; a DELETE leaves no rule), so the transport
may repeat them after a lost reply; a repeated DELETE may find the rule gone (404 or 204: the
document does not say which, and both mean "gone" here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from reconciler.clients import redact
from reconciler.clients.http import HttpTransport, RetryPolicy
from reconciler.errors import ApiError, TransportError

MAX_PAGES = 100  # 500 rules per zone at 100 a page: far more pages than a zone can have


class AcmeError(ApiError):
    vendor = "acme"


class AcmeNotFound(AcmeError):
    """404: no such zone, or no such rule."""


class AcmeServerError(AcmeError):
    """429 or 5xx, after the transport's own retries: worth trying again later. With the code
    ``overloaded`` (VendorSpec.refused_codes) nothing was written, and the engine tries the change
    again in a later pass; any other 5xx leaves the outcome of a write unknown."""

    retryable = True


class AcmeTransportError(AcmeError, TransportError):
    retryable = True


@dataclass(frozen=True)
class LiveRule:
    name: str
    path: str
    ttl_seconds: int
    enabled: bool
    version: int
    updated_at: str


def _is_answer(payload: Any) -> bool:
    """Whether a success's body is an Acme answer (an object): else the reply is unreadable."""
    return isinstance(payload, dict)


class AcmeClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        zone: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 4,
        requests_per_second: float | None = None,
    ):
        redact.register(token)  # in a header of every request: never in a log line
        self._headers = {"Authorization": f"Bearer {token}"}
        self.zone = zone
        self.http = HttpTransport(
            base_url,
            vendor="acme",
            timeout=timeout,
            retry=retry,
            max_connections=max_connections,
            error_cls=AcmeError,
            transport_error_cls=AcmeTransportError,
            requests_per_second=requests_per_second,
        )

    def __repr__(self) -> str:
        return f"AcmeClient(zone={self.zone!r}, <token hidden>)"

    def close(self) -> None:
        self.http.close()

    def _rules_path(self, name: str | None = None) -> str:
        base = f"/v1/zones/{quote(self.zone, safe='')}/cache-rules"
        return base if name is None else f"{base}/{quote(name, safe='')}"

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None, gone_ok: bool = False
    ) -> Any:
        resp = self.http.send(
            method,
            path,
            params=params,
            json=body,
            headers=self._headers,
            idempotent=True,
            shape=_is_answer if method != "DELETE" else None,
        )
        operation = f"{method} {path}"
        if resp.status_code == 204 or (gone_ok and resp.status_code == 404 and _code(resp) == "rule_not_found"):
            return None
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if 200 <= resp.status_code < 300 and isinstance(payload, dict):
            return payload
        err = payload.get("error") if isinstance(payload, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        message = str(err.get("message") or "error") if isinstance(err, dict) else "the answer is not Acme's JSON"
        cls: type[AcmeError] = AcmeError
        if resp.status_code == 404:
            cls = AcmeNotFound
        elif resp.status_code == 429 or resp.status_code >= 500:
            cls = AcmeServerError
        raise cls(message, code=code, http_status=resp.status_code, host=self.http.host, operation=operation)

    # -- rules ---------------------------------------------------------------------------------
    def list_rules(self) -> list[LiveRule]:
        """Every rule of the zone, page by page (bounded by :data:`MAX_PAGES`)."""
        out: list[LiveRule] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            data = self._call("GET", self._rules_path(), params=params)
            out += [_rule(r) for r in data.get("rules") or []]
            cursor = data.get("next_cursor")
            if not cursor:
                return out
        raise AcmeError(f"more than {MAX_PAGES} pages of rules", host=self.http.host, operation="GET cache-rules")

    def put_rule(self, name: str, *, path: str, ttl_seconds: int, enabled: bool) -> LiveRule:
        return _rule(
            self._call("PUT", self._rules_path(name), body={"path": path, "ttl_seconds": ttl_seconds, "enabled": enabled})
        )

    def delete_rule(self, name: str) -> None:
        """Delete a rule; a rule already gone (404 ``rule_not_found``, or 204) is done too."""
        self._call("DELETE", self._rules_path(name), gone_ok=True)


def _code(resp: Any) -> Any:
    try:
        payload = resp.json()
    except ValueError:
        return None
    err = payload.get("error") if isinstance(payload, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def _rule(item: Any) -> LiveRule:
    if not isinstance(item, dict):
        raise AcmeError("a rule in the answer is not an object")
    return LiveRule(
        name=str(item.get("name", "")),
        path=str(item.get("path", "")),
        ttl_seconds=int(item.get("ttl_seconds") or 0),
        enabled=bool(item.get("enabled")),
        version=int(item.get("version") or 0),
        updated_at=str(item.get("updated_at") or ""),
    )

"""Emulator of the Acme Edge API v1 cache rules, written from ``examples/vendor-acme/API.md`` (the
contract) and independently of the client. Endpoints::

    GET    /v1/zones/{zone}/cache-rules?limit=N&cursor=C
    PUT    /v1/zones/{zone}/cache-rules/{name}
    DELETE /v1/zones/{zone}/cache-rules/{name}

State is one SQLite table (``rules``) in the sandbox's state folder, so consecutive ``--sandbox``
commands see the same zone. The zones it serves and their tokens are given to the constructor.

Where the document is silent the answer is a knob (:data:`KNOBS`; the first value is the default):

- ``delete_absent``: what ``DELETE`` of a rule that does not exist answers: ``"not_found"`` (404
  ``rule_not_found``, as for any other request about a missing rule) or ``"no_content"`` (204).

Cursors are opaque to clients: here the name of the last rule of the page, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler.sandbox.base import Emulator, Request, Response

KNOBS: dict[str, tuple[str, ...]] = {"delete_absent": ("not_found", "no_content")}
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PATH_CHARS = re.compile(r"^/[\x21-\x7e]{0,255}$")  # printable ASCII, no space
MAX_TTL = 31_536_000
MAX_RULES = 500
MAX_LIMIT = 100
ROUTE = re.compile(r"^/v1/zones/(?P<zone>[^/]+)/cache-rules(?:/(?P<name>[^/]+))?$")


def _error(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response.json({"error": body}, status=status, headers=headers)


class AcmeEmulator(Emulator):
    name = "acme"

    def __init__(self, state_dir: Path | str | None = None, *, zones: dict[str, str], **knobs: str):
        """``zones``: zone name -> its API token."""
        self.zones = dict(zones)
        self.knobs = {k: v[0] for k, v in KNOBS.items()}
        super().__init__(state_dir)
        self.set_knobs(**knobs)

    def set_knobs(self, **values: str) -> None:
        for k, v in values.items():
            if k not in KNOBS or v not in KNOBS[k]:
                raise ValueError(f"unknown knob {k}={v!r} (known: {KNOBS})")
            self.knobs[k] = v

    def init_db(self) -> None:
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS rules (zone TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, "
            "ttl_seconds INTEGER NOT NULL, enabled INTEGER NOT NULL, version INTEGER NOT NULL, "
            "updated_at TEXT NOT NULL, PRIMARY KEY (zone, name))"
        )

    def injected_error(self, req: Request) -> Response:
        return _error(503, "overloaded", "the edge refused the request")

    # -- requests ------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        m = ROUTE.match(req.path)
        if m is None:
            return _error(404, "not_found", "no such endpoint")
        zone, name = m.group("zone"), m.group("name")
        allowed = ("PUT", "DELETE") if name is not None else ("GET",)
        if req.method not in allowed:
            return _error(405, "method_not_allowed", f"{req.method} is not allowed here")
        token = self.zones.get(zone)
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in self.zones.values():
            return _error(401, "unauthorized", "missing or wrong API token")
        if token is None or auth[7:] != token:
            return _error(404, "zone_not_found", "no such zone")
        with self.lock:
            if name is None:
                return self._list(zone, req)
            if req.method == "PUT":
                return self._put(zone, name, req)
            return self._delete(zone, name)

    def _list(self, zone: str, req: Request) -> Response:
        q = req.query
        limit = MAX_LIMIT
        if "limit" in q:
            if not q["limit"].isdigit() or not 1 <= int(q["limit"]) <= MAX_LIMIT:
                return _error(400, "invalid_request", "limit: 1-100", {"limit": "1-100"})
            limit = int(q["limit"])
        after = ""
        if "cursor" in q:
            try:
                after = base64.urlsafe_b64decode(q["cursor"].encode("ascii")).decode("utf-8")
            except (binascii.Error, UnicodeError, ValueError):
                after = ""
            if not NAME.match(after):
                return _error(400, "invalid_request", "cursor: not a cursor this server gave", {"cursor": "unknown cursor"})
        rows = self.db.execute(
            "SELECT * FROM rules WHERE zone = ? AND name > ? ORDER BY name LIMIT ?", (zone, after, limit + 1)
        ).fetchall()
        page = [self._rule(r) for r in rows[:limit]]
        more = len(rows) > limit
        cursor = base64.urlsafe_b64encode(page[-1]["name"].encode()).decode("ascii") if more else None
        return Response.json({"rules": page, "next_cursor": cursor})

    def _put(self, zone: str, name: str, req: Request) -> Response:
        try:
            body = req.json()
        except (UnicodeError, ValueError):
            return _error(400, "invalid_request", "the body is not JSON", {"body": "not JSON"})
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "the body is not a JSON object", {"body": "not an object"})
        fields = self._check(name, body)
        if fields:
            return _error(400, "invalid_request", "; ".join(f"{k}: {v}" for k, v in sorted(fields.items())), fields)
        with self.transaction():
            old = self.db.execute("SELECT version FROM rules WHERE zone = ? AND name = ?", (zone, name)).fetchone()
            if old is None:
                count = self.db.execute("SELECT COUNT(*) FROM rules WHERE zone = ?", (zone,)).fetchone()[0]
                if count >= MAX_RULES:
                    return _error(409, "quota_exceeded", f"the zone holds {MAX_RULES} rules already")
            version = 1 if old is None else old["version"] + 1
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.db.execute(
                "INSERT OR REPLACE INTO rules VALUES (?, ?, ?, ?, ?, ?, ?)",
                (zone, name, body["path"], body["ttl_seconds"], int(body["enabled"]), version, now),
            )
        row = self.db.execute("SELECT * FROM rules WHERE zone = ? AND name = ?", (zone, name)).fetchone()
        return Response.json(self._rule(row), status=201 if old is None else 200)

    @staticmethod
    def _check(name: str, body: dict[str, Any]) -> dict[str, str]:
        fields: dict[str, str] = {}
        if not NAME.match(name):
            fields["name"] = "1-63 lower-case letters, digits and '-', starting with a letter or digit"
        for extra in sorted(set(body) - {"path", "ttl_seconds", "enabled"}):
            fields[extra] = "unknown field"
        path, ttl, enabled = body.get("path"), body.get("ttl_seconds"), body.get("enabled")
        if not isinstance(path, str) or not PATH_CHARS.match(path):
            fields["path"] = "required: 1-256 printable ASCII characters without spaces, starting with /"
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            fields["ttl_seconds"] = f"required: an integer 0-{MAX_TTL}"
        if not isinstance(enabled, bool):
            fields["enabled"] = "required: true or false"
        return fields

    def _delete(self, zone: str, name: str) -> Response:
        gone = self.db.execute("DELETE FROM rules WHERE zone = ? AND name = ?", (zone, name)).rowcount
        if not gone and self.knobs["delete_absent"] == "not_found":
            return _error(404, "rule_not_found", "no such rule")
        return Response(204)

    @staticmethod
    def _rule(row: Any) -> dict[str, Any]:
        return {
            "name": row["name"],
            "path": row["path"],
            "ttl_seconds": row["ttl_seconds"],
            "enabled": bool(row["enabled"]),
            "version": row["version"],
            "updated_at": row["updated_at"],
        }

    # -- for tests -----------------------------------------------------------------------------
    def rules(self, zone: str) -> dict[str, dict[str, Any]]:
        """The zone's rules by name, as stored (tests compare them, independently of the client)."""
        with self.lock:
            rows = self.db.execute("SELECT * FROM rules WHERE zone = ? ORDER BY name", (zone,)).fetchall()
        return {r["name"]: self._rule(r) for r in rows}

"""The JDB emulator as the sandbox server sees it (:class:`~reconciler.sandbox.base.Emulator`): the
``/apiRequest.do`` envelope checks, the dispatch by action, injected faults, gzip answers and the
``/_sandbox/jdb/...`` admin routes. The actions are in :mod:`.free_spins` and :mod:`.transactions`.
"""

from __future__ import annotations

import gzip
import json
from functools import cached_property
from typing import Any, Callable

from reconciler.sandbox.base import Request, Response
from reconciler.vendors.jdb.emulator.free_spins import FreeSpinActions
from reconciler.vendors.jdb.emulator.protocol import (
    BUSY_ANSWERS,
    TEXT_TS,
    TS_WINDOW_MS,
    WRITE_ACTIONS,
    _Fail,
    _int,
    _need,
    decrypt_envelope,
)
from reconciler.vendors.jdb.emulator.transactions import TransactionActions


class JdbEmulator(FreeSpinActions, TransactionActions):
    """The JDB ``apiRequest.do`` API for free-spin events and transaction reports (see the package docstring)."""

    name = "jdb"

    @cached_property
    def _actions(self) -> dict[int, Callable[[str, dict[str, Any]], dict[str, Any]]]:
        return {
            29: self._a29_transactions,
            71: self._a71_player_events,
            72: self._a72_create,
            73: self._a73_terminate,
            74: self._a74_bind,
            75: self._a75_unbind,
            76: self._a76_search,
            77: self._a77_update,
        }

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

    def _admin_event(self, req: Request) -> Response:
        body = req.json() if req.body else {}
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            return Response.json({"error": 'expected {"agent": ..., "event": {...}, "hidden": [...]}'}, status=400)
        try:
            event_id = self.create_back_office_event(
                str(body.get("agent") or self.agents[0]),
                body["event"],
                players=[str(u) for u in body.get("players") or []],
                hidden=[str(h) for h in body.get("hidden") or []],
            )
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
            return Response.json({"error": 'expected {"agent": ..., "players": [...]}'}, status=400)
        agent = body.get("agent") or self.agents[0]
        if agent not in self.agents:
            return Response.json({"error": f"unknown agent {agent}"}, status=400)
        count = self.register_players(agent, [str(u) for u in body["players"]], locked=bool(body.get("locked")))
        return Response.json({"agent": agent, "registered": count})

"""Shared machinery for the emulators: an HTTP/1.1 server on an event loop, SQLite state, fault knobs.

An emulator subclasses :class:`Emulator` and implements :meth:`Emulator.handle`. The server adds,
on every emulator, an admin surface under ``/_sandbox/``:

- ``GET  /_sandbox/faults`` — the current fault knobs as JSON;
- ``POST /_sandbox/faults`` — set knobs (JSON object, unknown keys rejected):
  ``latency_ms`` (each vendor request's response time: it is handled when it arrives and its answer
  held back until ``latency_ms`` after that, so the emulator's own work is inside the latency, as a
  remote vendor's is inside its response time), ``error_rate`` (0..1, answer with the
  emulator's injected error instead of handling the request), ``drop_reply_rate`` (0..1, handle a
  *write* — so it takes effect — then close the connection without replying),
  ``drop_next_writes`` (int, drop the replies of the next N writes; deterministic for tests),
  ``drop_next_replies`` (int, handle the next N vendor requests, reads included, and drop each
  reply; reads' lost replies for tests),
  ``fail_next`` (int, inject the error on the next N vendor requests), ``fail_next_writes`` (int,
  inject it on the next N writes only; reads are answered as usual),
  ``mangle_replies`` (a list of rules ``{"how": "cut" | "not_json", "count": N, "match": OP,
  "writes_only": bool}``: handle the next N matching requests — so a write takes effect — and
  answer each with its status but a body cut to half its length (``cut``; a compressed body is
  cut before compression, so it still decompresses) or an HTML page (``not_json``), as a proxy
  or a crash on the way back may; ``match`` is optional and compares with the request's path or
  the emulator's name of its operation (:meth:`Emulator.operation`: JDB ``action 72``, TcaplusDB
  ``AddRecord``); a rule whose count reaches 0 is removed),
  ``late_duplicate_replies`` (int: the next N vendor answers on kept-alive connections are each
  sent once more, late — written on the same connection together with, and just before, the
  answer to the next request it carries, as a reply duplicated on the way back arrives after the
  client sent its next request; the late copy is a whole, well-framed answer to the *previous*
  request; a connection that closes first never gets it), ``seed``;
- ``GET  /_sandbox/stats`` — request counts per ``METHOD path`` since start, counted as they
  arrive (benchmarks read it);
- ``GET  /_sandbox/stats/answered`` — the same counts of the requests answered so far (a request
  waiting out ``latency_ms`` has arrived but is not answered yet);
- ``GET  /_sandbox/stats/span`` — ``{"first": t, "last": t}``: wall-clock seconds (epoch) when the
  first vendor request since the last reset arrived and when the latest one was answered (``null``
  before any), so a benchmark can tell how long each vendor was busy;
- ``GET  /_sandbox/stats/user_agents`` — vendor requests counted by their ``User-Agent`` header
  (``""`` for none; at most 100 distinct values, the rest counted under ``"(other)"``);
- ``POST /_sandbox/stats/reset`` — zero the counters (all of them, and the span);
- ``GET  /_sandbox/state`` — every stored row, table by table (restore tests compare it).
"""

from __future__ import annotations

import asyncio
import gzip
import html
import json
import random
import select
import selectors
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httptools

from reconciler import safeio


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, last value wins, decoded (``%20`` and ``+`` both become spaces)."""
        return {k: v[-1] for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        text = self.body.decode("utf-8") if self.body else ""
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        h = {"Content-Type": "application/json; charset=utf-8"}
        h.update(headers or {})
        return cls(status, json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(), h)


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_reply_rate: float = 0.0
    drop_next_writes: int = 0
    drop_next_replies: int = 0
    fail_next: int = 0
    fail_next_writes: int = 0
    mangle_replies: list[dict[str, Any]] = field(default_factory=list)
    late_duplicate_replies: int = 0
    seed: int | None = None


class Emulator:
    """Base class of one vendor emulator. Subclasses set ``name`` and implement ``handle``.

    ``self.db`` is a SQLite connection (file under ``state_dir`` or in memory); ``self.lock``
    serialises request handling so handlers may use the connection freely.
    """

    name = "emulator"

    def __init__(self, state_dir: Path | str | None = None):
        self.state_dir = Path(state_dir) if state_dir is not None else None
        if self.state_dir is not None:
            # made and entered without following a symlink (safeio); SQLite opens its files by name
            # and follows links, so none may be at their names: a committed .reconciler/sandbox/
            # symlink would have the emulator write through it
            safeio.ensure_dir(self.state_dir)
            safeio.refuse_symlinks(self.state_dir, [f"{self.name}.sqlite{s}" for s in ("", "-wal", "-shm", "-journal")])
            target = str(self.state_dir / f"{self.name}.sqlite")
        else:
            target = ":memory:"
        self.db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if target != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
            # A commit then survives the emulator process being killed (what the sandbox and the
            # tests need), though not a power cut. With the default (FULL) every write waited for
            # an fsync under the emulator's lock: 2-3 ms per write here, 20,000 TcaplusDB AddRecords
            # = about 50 s of a cold apply (bench/fleet.py).
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.RLock()
        self.faults = Faults()
        self.rng = random.Random()
        self.stats: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.span: dict[str, float | None] = {"first": None, "last": None}
        self.init_db()

    # -- hooks -------------------------------------------------------------------------------
    def init_db(self) -> None:
        """Create tables (idempotent)."""

    def handle(self, req: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_write(self, req: Request) -> bool:
        """Whether a request changes state (only writes have their replies dropped)."""
        return req.method != "GET"

    def operation(self, req: Request) -> str:
        """The name of the request's operation for the ``mangle_replies`` knob's ``match``."""
        return f"{req.method} {req.path}"

    def admin(self, req: Request) -> Response | None:
        """Emulator-specific ``/_sandbox/...`` endpoints; ``None`` when ``req`` is not one."""
        return None

    def injected_error(self, req: Request) -> Response:
        """The answer given when the ``error_rate``/``fail_next`` knob fires."""
        return Response.json({"error": "injected fault"}, status=503)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One SQLite transaction (the connection is in autocommit mode otherwise)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- admin -------------------------------------------------------------------------------
    def set_faults(self, values: dict[str, Any]) -> Faults:
        known = set(asdict(self.faults))
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        if "mangle_replies" in values:
            values = {**values, "mangle_replies": _mangle_rules(values["mangle_replies"])}
        for k, v in values.items():
            setattr(self.faults, k, v)
        if "seed" in values:
            self.rng.seed(values["seed"])
        return self.faults

    def dump_state(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored row, table by table (``GET /_sandbox/state``): what a test compares to
        prove a restore brought the vendor's state back, independently of our clients."""
        tables = [r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted((dict(row) for row in self.db.execute(f'SELECT * FROM "{t}"')),
                          key=lambda r: json.dumps(r, sort_keys=True, default=str)) for t in tables}

    def close(self) -> None:
        with self.lock:
            self.db.close()


# -- the HTTP server ---------------------------------------------------------------------------
#
# One asyncio event loop per emulator, in its own thread: an asyncio Protocol per connection and
# httptools (the C parser uvicorn uses) for the requests. Every request is answered on the loop's
# thread; ``Emulator.handle`` runs there synchronously (fast SQLite work under ``emu.lock``), and the
# latency knob is a timer on the loop, so thousands of delayed answers need no thread each. A
# request is handled as it arrives and only its answer waits for the timer: with the work after the
# wait, eight requests due at once were handled one after another and the last answered ~2 ms
# late, a cost of this one-threaded stand-in that no vendor's latency includes. A
# thread per connection blocked on its socket (http.server) cost ~0.3 ms of CPU per request here,
# as much as the client's own request; the loop costs about a third of that (bench/http_floor.py).
#
# Kept from http.server (the server before): HTTP/1.1 keep-alive, HTTP/1.0 closes unless
# ``Connection: keep-alive``, ``Connection: close`` either way closes after the answer, pipelined
# requests answered one at a time in order (the next one "arrives" when the previous is answered),
# ``Expect: 100-continue`` answered with ``100 Continue``, a request line or header line over
# 65,536 bytes refused (414/431), more than 100 header lines refused (431), methods other than GET,
# POST, PUT and DELETE refused (501), HTTP/2+ refused (505), ``//path`` reduced to ``/path``; every
# refusal closes the connection. New bounds: the whole head (1 MiB) and the body (64 MiB, 413), and
# chunked request bodies are read (http.server left them unread: no client of ours sends them).

LINE_MAX = 65_536  # request target, one header line (http.server's limit)
HEADERS_MAX = 100  # header lines (http.server's limit)
HEAD_MAX = 1 << 20  # the request line and all headers
BODY_MAX = 64 << 20  # one request body (JDB's biggest, 50,000 players, is a few MB)
_PIPELINE_MAX = 64  # requests read ahead on one connection before reading pauses
_FD_SETSIZE = 1024  # select() takes descriptors below this
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_REASONS = {int(s): s.phrase for s in HTTPStatus}
_EXPLAIN = {int(s): s.description for s in HTTPStatus}
_ERROR_PAGE = (  # http.server's error page
    '<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <meta charset="utf-8">\n'
    "        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n"
    "        <p>Error code: {code}</p>\n        <p>Message: {message}.</p>\n"
    "        <p>Error code explanation: {code} - {explain}.</p>\n    </body>\n</html>\n"
)


class _Refusal(Exception):
    """A request refused with an error status; the connection closes after the answer."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message or _REASONS.get(status, "")

    def response(self) -> Response:
        page = _ERROR_PAGE.format(code=self.status, message=html.escape(self.message, quote=False),
                                  explain=html.escape(_EXPLAIN.get(self.status, ""), quote=False))
        return Response(self.status, page.encode("utf-8", "replace"),
                        {"Connection": "close", "Content-Type": "text/html;charset=utf-8"})


def _encode(resp: Response) -> tuple[bytes, bool]:
    """Status line, headers and body as one write (one system call, one segment for a small
    answer); and whether the answer asks to close the connection."""
    head = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, '')}\r\n"]
    close = False
    for k, v in resp.headers.items():
        head.append(f"{k}: {v}\r\n")
        if k.lower() == "connection" and v.lower() == "close":
            close = True
    head.append(f"Content-Length: {len(resp.body)}\r\n\r\n")
    return "".join(head).encode("latin-1") + resp.body, close


def _admin(emu: Emulator, req: Request) -> Response:
    try:
        if req.path == "/_sandbox/faults":
            if req.method == "POST":
                with emu.lock:
                    emu.set_faults(req.json() or {})
            return Response.json(asdict(emu.faults))
        if req.path == "/_sandbox/stats":
            return Response.json(dict(emu.stats))
        if req.path == "/_sandbox/stats/answered":
            return Response.json(dict(emu.answered))
        if req.path == "/_sandbox/stats/user_agents":
            return Response.json(dict(emu.user_agents))
        if req.path == "/_sandbox/stats/span":
            return Response.json(dict(emu.span))
        if req.path == "/_sandbox/state" and req.method == "GET":
            with emu.lock:
                return Response.json(emu.dump_state())
        if req.path == "/_sandbox/stats/reset" and req.method == "POST":
            with emu.lock:
                emu.stats.clear()
                emu.answered.clear()
                emu.user_agents.clear()
                emu.span.update(first=None, last=None)
            return Response.json({})
        with emu.lock:
            own = emu.admin(req)  # emulator-specific admin endpoints (JDB player registry)
        if own is not None:
            return own
    except (ValueError, TypeError) as exc:
        return Response.json({"error": str(exc)}, status=400)
    return Response.json({"error": "not found"}, status=404)


def _vendor(emu: Emulator, req: Request, arrived: float) -> Response | None:
    """A vendor request through the fault knobs; ``None`` when its reply is to be dropped."""
    f = emu.faults
    with emu.lock:
        emu.stats[f"{req.method} {req.path}"] += 1
        agent = req.headers.get("user-agent", "")
        emu.user_agents[agent if agent in emu.user_agents or len(emu.user_agents) < 100 else "(other)"] += 1
        if emu.span["first"] is None:
            emu.span["first"] = arrived
        inject = False
        if f.fail_next > 0:
            f.fail_next -= 1
            inject = True
        elif f.error_rate and emu.rng.random() < f.error_rate:
            inject = True
        elif f.fail_next_writes > 0 and emu.is_write(req):
            f.fail_next_writes -= 1
            inject = True
        if inject:
            return emu.injected_error(req)
        resp = emu.handle(req)
        if f.mangle_replies:
            resp = _mangled(emu, req, resp)
        if f.drop_next_replies > 0:
            f.drop_next_replies -= 1
            return None
        if emu.is_write(req):
            if f.drop_next_writes > 0:
                f.drop_next_writes -= 1
                return None
            if f.drop_reply_rate and emu.rng.random() < f.drop_reply_rate:
                return None
        return resp


def _mangle_rules(rules: Any) -> list[dict[str, Any]]:
    """The ``mangle_replies`` knob checked: a list of ``{"how", "count", "match"?, "writes_only"?}``."""
    if not isinstance(rules, list):
        raise ValueError("mangle_replies is a list of rules")
    out = []
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - {"how", "count", "match", "writes_only"}:
            raise ValueError("a mangle_replies rule has how, count, match and writes_only")
        if rule.get("how") not in ("cut", "not_json"):
            raise ValueError("mangle_replies: how is 'cut' or 'not_json'")
        count = rule.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError("mangle_replies: count is a whole number")
        out.append({"how": rule["how"], "count": count, "match": rule.get("match"),
                    "writes_only": bool(rule.get("writes_only", False))})
    return [r for r in out if r["count"] > 0]


def _mangled(emu: Emulator, req: Request, resp: Response) -> Response:
    """``resp`` with its body cut or replaced when a ``mangle_replies`` rule matches ``req``."""
    rules = emu.faults.mangle_replies
    for rule in rules:
        if rule["match"] is not None and rule["match"] not in (req.path, emu.operation(req)):
            continue
        if rule["writes_only"] and not emu.is_write(req):
            continue
        rule["count"] -= 1
        if rule["count"] <= 0:
            rules.remove(rule)
        headers = dict(resp.headers)
        if rule["how"] == "not_json":
            headers.pop("Content-Encoding", None)
            headers["Content-Type"] = "text/html; charset=utf-8"
            return Response(resp.status, b"<html><body><h1>200 OK</h1></body></html>", headers)
        body = resp.body
        gzipped = headers.get("Content-Encoding") == "gzip"
        if gzipped:
            body = gzip.decompress(body)
        body = body[: len(body) // 2]
        return Response(resp.status, gzip.compress(body) if gzipped else body, headers)
    return resp


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools (its callbacks are the ``on_*``
    methods), answered one at a time in the order they came."""

    def __init__(self, server: "EmulatorServer") -> None:
        self.server = server
        self.emu = server.emulator
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # (request, keep the connection alive, ``100 Continue`` owed before its answer) or a refusal
        self.queue: deque[tuple[Request, bool, bool] | _Refusal] = deque()
        self.busy = False  # an answer is waiting out the latency knob
        self.timer: asyncio.TimerHandle | None = None
        self.done = False  # nothing more is read or answered
        self.refused = False  # a refusal is queued: nothing more is read
        self.eof = False  # the client sent everything it will send
        self.read_paused = False
        self.write_paused = False
        self.continue_owed = False  # ``100 Continue`` to send once the answers before it are out
        self.late = b""  # an answer sent again before the next one (``late_duplicate_replies``)
        # the request being read
        self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_lines = 0
        self.body: list[bytes] = []
        self.body_bytes = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # a request waiting out the latency knob was handled when it arrived (a write took effect,
        # as when a client gives up on a slow vendor); its answer goes nowhere
        self.done = True
        self.queue.clear()
        self.server._connections.discard(self)

    def eof_received(self) -> bool:
        self.eof = True
        self._pump()
        return True  # half-open: the answers still to come are written before closing

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self.done or self.refused:
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # Upgrade/CONNECT: not served (as with http.server); the request, complete, is queued
            # and answered like any other; what follows is read as new requests
            self.parser = httptools.HttpRequestParser(self)
            self._reset()
            rest = data[exc.args[0]:]
            if rest:
                self.data_received(rest)
                return
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            self._refuse(refusal if isinstance(refusal, _Refusal) else _Refusal(400, "Bad request"))
        except httptools.HttpParserError as exc:
            self._refuse(_Refusal(400, f"Bad request ({exc})"))
        else:
            if self.in_head and self.head_bytes > HEAD_MAX:
                self._refuse(_Refusal(431, "Request header fields too large"))
        self._pump()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > LINE_MAX:
            raise _Refusal(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_lines += 1
        if self.header_lines > HEADERS_MAX:
            raise _Refusal(431, "Too many headers")
        if len(name) + len(value) + 4 > LINE_MAX:
            raise _Refusal(431, "Line too long")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        if not parser.get_http_version().startswith("1."):
            raise _Refusal(505, f"Invalid HTTP version ({parser.get_http_version()})")
        method = parser.get_method().decode("latin-1")
        if method not in _METHODS:
            raise _Refusal(501, f"Unsupported method ({method!r})")
        length = self.headers.get("content-length")
        if length and int(length) > BODY_MAX:
            raise _Refusal(413)
        if self.headers.get("expect", "").lower() == "100-continue" and parser.get_http_version() != "1.0":
            if self.queue or self.busy:
                self.continue_owed = True  # sent once the answers before this request are out
            else:
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > BODY_MAX:
            raise _Refusal(413)
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        keep = parser.get_http_version() != "1.0"
        conntype = self.headers.get("connection", "").lower()
        if conntype == "close":
            keep = False
        elif conntype == "keep-alive":
            keep = True
        target = self.url.decode("latin-1")
        if target.startswith("//"):
            target = "/" + target.lstrip("/")
        parts = urlsplit(target)
        req = Request(method=parser.get_method().decode("latin-1"), path=parts.path, raw_query=parts.query,
                      headers=self.headers, body=b"".join(self.body))
        self.queue.append((req, keep, self.continue_owed))
        self.continue_owed = False
        self._reset()
        if len(self.queue) >= _PIPELINE_MAX and self.transport is not None:
            self.transport.pause_reading()
            self.read_paused = True

    def _reset(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.headers = {}
        self.header_lines = 0
        self.body = []
        self.body_bytes = 0

    # -- answering -----------------------------------------------------------------------------
    def _refuse(self, refusal: _Refusal) -> None:
        self.refused = True
        self.continue_owed = False
        self.queue.append(refusal)

    def _pump(self) -> None:
        """Answer the queued requests in order while nothing holds them up."""
        while self.queue and not (self.busy or self.done or self.write_paused):
            item = self.queue.popleft()
            if isinstance(item, _Refusal):
                self._write(item.response(), keep=False)
                return
            req, keep, owed = item
            if owed:
                self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
            if req.path.startswith("/_sandbox/"):
                self._write(_admin(self.emu, req), keep)
                continue
            arrived = time.time()
            latency = self.emu.faults.latency_ms
            due = self.loop.time() + latency / 1000.0
            try:
                resp = _vendor(self.emu, req, arrived)
            except Exception:  # noqa: BLE001 - an emulator bug: reported, the connection closed
                self._crashed()
                return
            if latency:
                self.busy = True
                self.timer = self.loop.call_at(due, self._delayed, req, resp, keep)
                return
            self._answer(req, resp, keep)
        if self.done or self.busy or self.queue:
            return
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()
        if self.continue_owed:
            self.continue_owed = False
            self._send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.eof:
            self._close()

    def _delayed(self, req: Request, resp: Response | None, keep: bool) -> None:
        self.timer = None
        self.busy = False
        self._answer(req, resp, keep)
        self._pump()

    def _answer(self, req: Request, resp: Response | None, keep: bool) -> None:
        if resp is None:
            # The write took effect; the reply is lost on the way back.
            self.done = True
            self.queue.clear()
            if self.transport is not None:
                self.transport.write_eof()
                self.transport.close()
            return
        if self.transport is None or self.transport.is_closing():
            return  # the client went away: nothing to answer
        with self.emu.lock:  # counted before the write, so whoever reads the answer sees it counted
            self.emu.answered[f"{req.method} {req.path}"] += 1
            self.emu.span["last"] = time.time()
            faults = self.emu.faults
            duplicate = keep and faults.late_duplicate_replies > 0
            if duplicate:
                faults.late_duplicate_replies -= 1
        self._write(resp, keep, duplicate=duplicate)

    def _write(self, resp: Response, keep: bool, *, duplicate: bool = False) -> bool:
        """Send an answer (after a late copy of the one before, if one is owed); close the
        connection after it unless kept alive; with ``duplicate``, send it again before the next
        answer. Whether it was sent."""
        data, close = _encode(resp)
        late, self.late = self.late, (data if duplicate and keep and not close else b"")
        sent = self._send(late + data if late else data)
        if close or not keep:
            self._close()
        return sent

    def _send(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False  # the client went away: nothing to report
        self.transport.write(data)
        return True

    def _close(self) -> None:
        self.done = True
        self.queue.clear()
        if self.transport is not None:
            self.transport.close()  # after what is written so far

    def _crashed(self) -> None:
        """An emulator bug: reported on stderr (as socketserver does), the connection closed."""
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        print("-" * 40, file=sys.stderr)
        print("Exception occurred during processing of request from", peer, file=sys.stderr)
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)
        self.abort()

    def abort(self) -> None:
        self.done = True
        self.queue.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()


def _new_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire on time. Linux's ``epoll_wait`` takes whole milliseconds,
    rounded up, so a timer (the latency knob) fired up to a millisecond late: a 5 ms knob answered
    after 5.5-6 ms. The epoll descriptor is itself readable when an event is ready, and ``select``
    on it waits to the microsecond; then epoll is asked without waiting."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()  # kqueue (macOS, BSD) takes nanoseconds already

    class PreciseEpollSelector(selectors.EpollSelector):
        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0 and self.fileno() < _FD_SETSIZE:
                if not select.select([self.fileno()], [], [], timeout)[0]:
                    return []
                timeout = 0
            return super().select(timeout)

    return asyncio.SelectorEventLoop(PreciseEpollSelector())


class EmulatorServer:
    """Runs one emulator on ``host:port`` (port 0 picks a free port) on an event loop in a daemon
    thread. The port is bound when the server is made; ``start`` begins answering."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0):
        self.emulator = emulator
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
            self._sock.listen(128)
        except BaseException:
            self._sock.close()
            raise
        self._address: tuple[str, int] = self._sock.getsockname()
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def start(self) -> "EmulatorServer":
        loop = self._loop = _new_loop()
        started: list[BaseException | None] = []
        ready = threading.Event()

        def run() -> None:
            try:
                server = loop.run_until_complete(loop.create_server(lambda: _Connection(self), sock=self._sock))
            except BaseException as exc:  # noqa: BLE001 - re-raised by start()
                started.append(exc)
                ready.set()
                loop.close()
                return
            started.append(None)
            ready.set()
            try:
                loop.run_forever()  # until stop()
                server.close()
                for conn in list(self._connections):
                    conn.abort()
                loop.run_until_complete(asyncio.sleep(0))  # the aborted connections' sockets close
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"{self.emulator.name}-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if started[0] is not None:
            raise started[0]
        return self

    def stop(self) -> None:
        """Stop answering, close every connection (delayed answers are not sent) and the emulator."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._sock.close()
        self.emulator.close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The emulator contract: requests and answers, SQLite state, fault knobs, the latency model, and
the admin surface; no HTTP here (the wire, an aiohttp server, is :mod:`reconciler.sandbox.wire`).

An emulator subclasses :class:`Emulator` and implements :meth:`Emulator.handle`. Every emulator has
an admin surface under ``/_sandbox/`` (:meth:`Emulator.answer_admin`):

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
  request; a connection that closes first never gets it), ``hold_replies`` (a list of names
  compared like ``match`` above, ``"*"`` for every request: a matching vendor request is handled
  when it arrives, so it takes effect, but its answer is held back — after ``latency_ms`` — for as
  long as the knob still names it; setting the knob to ``[]`` releases every held answer. A vendor
  that stalls on one operation, without a race against the clock: tests look at what the client
  printed while an answer is outstanding), ``seed``;
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

In the process that runs an emulator (not over HTTP: nothing more is answered than the above),
:attr:`Emulator.on_arrival` observers see each vendor request as it arrives, before it is handled,
with its arrival time on the monotonic clock: a test of the shared rate budget reads there when
every request of N shard processes reached the vendor.
"""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs

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
    hold_replies: list[str] = field(default_factory=list)
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
        # in-process observers of vendor requests as they arrive: (request, time.monotonic())
        self.on_arrival: list[Callable[[Request, float], None]] = []
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
        if "hold_replies" in values:
            held = values["hold_replies"]
            if not isinstance(held, list) or not all(isinstance(x, str) for x in held):
                raise ValueError("hold_replies is a list of paths or operation names")
        for k, v in values.items():
            setattr(self.faults, k, v)
        if "seed" in values:
            self.rng.seed(values["seed"])
        return self.faults

    def dump_state(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored row, table by table (``GET /_sandbox/state``): what a test compares to
        prove a restore brought the vendor's state back, independently of our clients."""
        tables = [
            r[0]
            for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            t: sorted(
                (dict(row) for row in self.db.execute(f'SELECT * FROM "{t}"')),
                key=lambda r: json.dumps(r, sort_keys=True, default=str),
            )
            for t in tables
        }

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- requests through the knobs (called by the wire, reconciler/sandbox/wire.py) -----------
    def answer_admin(self, req: Request) -> Response:
        """The answer to an admin request (a path under ``/_sandbox/``): never counted, never
        delayed, never touched by a fault knob."""
        try:
            if req.path == "/_sandbox/faults":
                if req.method == "POST":
                    with self.lock:
                        self.set_faults(req.json() or {})
                return Response.json(asdict(self.faults))
            if req.path == "/_sandbox/stats":
                return Response.json(dict(self.stats))
            if req.path == "/_sandbox/stats/answered":
                return Response.json(dict(self.answered))
            if req.path == "/_sandbox/stats/user_agents":
                return Response.json(dict(self.user_agents))
            if req.path == "/_sandbox/stats/span":
                return Response.json(dict(self.span))
            if req.path == "/_sandbox/state" and req.method == "GET":
                with self.lock:
                    return Response.json(self.dump_state())
            if req.path == "/_sandbox/stats/reset" and req.method == "POST":
                with self.lock:
                    self.stats.clear()
                    self.answered.clear()
                    self.user_agents.clear()
                    self.span.update(first=None, last=None)
                return Response.json({})
            with self.lock:
                own = self.admin(req)  # emulator-specific admin endpoints (JDB player registry)
            if own is not None:
                return own
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, status=400)
        return Response.json({"error": "not found"}, status=404)

    def answer_vendor(self, req: Request, arrived: float) -> Response | None:
        """A vendor request, handled now through the fault knobs and counted as arrived at
        ``arrived`` (epoch seconds); ``None`` when its reply is to be dropped: the request took effect
        and the wire closes the connection without answering. The wire holds the answer back until
        :meth:`due` passed (the latency model)."""
        f = self.faults
        with self.lock:
            for observe in self.on_arrival:
                observe(req, time.monotonic())
            self.stats[f"{req.method} {req.path}"] += 1
            agent = req.headers.get("user-agent", "")
            self.user_agents[agent if agent in self.user_agents or len(self.user_agents) < 100 else "(other)"] += 1
            if self.span["first"] is None:
                self.span["first"] = arrived
            inject = False
            if f.fail_next > 0:
                f.fail_next -= 1
                inject = True
            elif f.error_rate and self.rng.random() < f.error_rate:
                inject = True
            elif f.fail_next_writes > 0 and self.is_write(req):
                f.fail_next_writes -= 1
                inject = True
            if inject:
                return self.injected_error(req)
            resp = self.handle(req)
            if f.mangle_replies:
                resp = _mangled(self, req, resp)
            if f.drop_next_replies > 0:
                f.drop_next_replies -= 1
                return None
            if self.is_write(req):
                if f.drop_next_writes > 0:
                    f.drop_next_writes -= 1
                    return None
                if f.drop_reply_rate and self.rng.random() < f.drop_reply_rate:
                    return None
            return resp

    def due(self) -> float:
        """Seconds the answer to a vendor request arriving now is held back (the latency model:
        ``latency_ms`` is a response time, the request is handled when it arrives and only its
        answer waits, so the emulator's own work is inside the latency)."""
        return self.faults.latency_ms / 1000.0

    def held(self, req: Request) -> bool:
        """Whether the ``hold_replies`` knob holds the answer to ``req`` back (asked again until not)."""
        names = self.faults.hold_replies
        return bool(names) and ("*" in names or req.path in names or self.operation(req) in names)

    def record_answer(self, req: Request, *, kept_alive: bool) -> bool:
        """Count a vendor answer as about to be sent (before the write, so whoever reads the answer
        sees it counted); whether the ``late_duplicate_replies`` knob wants it sent once more, late
        (only on a connection kept alive: one that closes never carries the late copy)."""
        with self.lock:
            self.answered[f"{req.method} {req.path}"] += 1
            self.span["last"] = time.time()
            duplicate = kept_alive and self.faults.late_duplicate_replies > 0
            if duplicate:
                self.faults.late_duplicate_replies -= 1
        return duplicate


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
        out.append(
            {"how": rule["how"], "count": count, "match": rule.get("match"), "writes_only": bool(rule.get("writes_only", False))}
        )
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

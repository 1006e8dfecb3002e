"""Shared machinery for the emulators: a threaded stdlib HTTP server, SQLite state, fault knobs.

An emulator subclasses :class:`Emulator` and implements :meth:`Emulator.handle`. The server adds,
on every emulator, an admin surface under ``/_sandbox/``:

- ``GET  /_sandbox/faults`` — the current fault knobs as JSON;
- ``POST /_sandbox/faults`` — set knobs (JSON object, unknown keys rejected):
  ``latency_ms`` (added before each vendor request), ``error_rate`` (0..1, answer with the
  emulator's injected error instead of handling the request), ``drop_reply_rate`` (0..1, handle a
  *write* — so it takes effect — then close the connection without replying),
  ``drop_next_writes`` (int, drop the replies of the next N writes; deterministic for tests),
  ``drop_next_replies`` (int, handle the next N vendor requests, reads included, and drop each
  reply; reads' lost replies for tests),
  ``fail_next`` (int, inject the error on the next N vendor requests), ``fail_next_writes`` (int,
  inject it on the next N writes only; reads are answered as usual), ``seed``;
- ``GET  /_sandbox/stats`` — request counts per ``METHOD path`` since start (benchmarks read it);
- ``GET  /_sandbox/stats/span`` — ``{"first": t, "last": t}``: wall-clock seconds (epoch) when the
  first vendor request since the last reset arrived and when the latest one was answered (``null``
  before any), so a benchmark can tell how long each vendor was busy;
- ``POST /_sandbox/stats/reset`` — zero the counters (and the span);
- ``GET  /_sandbox/state`` — every stored row, table by table (restore tests compare it).
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit


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
            self.state_dir.mkdir(parents=True, exist_ok=True)
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


class _Handler(BaseHTTPRequestHandler):
    # Without this every reply waits ~44 ms for a delayed ACK (reference/libraries.md §4.12).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    emulator: Emulator  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            method=self.command,
            path=parts.path,
            raw_query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if req.path.startswith("/_sandbox/"):
            self._send(self._admin(req))
            return
        emu = self.emulator
        f = emu.faults
        arrived = time.time()
        if f.latency_ms:
            time.sleep(f.latency_ms / 1000.0)
        with emu.lock:
            emu.stats[f"{req.method} {req.path}"] += 1
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
                resp = emu.injected_error(req)
                drop = False
            else:
                resp = emu.handle(req)
                drop = False
                if f.drop_next_replies > 0:
                    f.drop_next_replies -= 1
                    drop = True
                elif emu.is_write(req):
                    if f.drop_next_writes > 0:
                        f.drop_next_writes -= 1
                        drop = True
                    elif f.drop_reply_rate and emu.rng.random() < f.drop_reply_rate:
                        drop = True
        if drop:
            # The write took effect; the reply is lost on the way back.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(resp)
        with emu.lock:
            emu.span["last"] = time.time()

    def _admin(self, req: Request) -> Response:
        emu = self.emulator
        try:
            if req.path == "/_sandbox/faults":
                if req.method == "POST":
                    with emu.lock:
                        emu.set_faults(req.json() or {})
                return Response.json(asdict(emu.faults))
            if req.path == "/_sandbox/stats":
                return Response.json(dict(emu.stats))
            if req.path == "/_sandbox/stats/span":
                return Response.json(dict(emu.span))
            if req.path == "/_sandbox/state" and req.method == "GET":
                with emu.lock:
                    return Response.json(emu.dump_state())
            if req.path == "/_sandbox/stats/reset" and req.method == "POST":
                with emu.lock:
                    emu.stats.clear()
                    emu.span.update(first=None, last=None)
                return Response.json({})
            with emu.lock:
                own = emu.admin(req)  # emulator-specific admin endpoints (JDB player registry)
            if own is not None:
                return own
        except (ValueError, TypeError) as exc:
            return Response.json({"error": str(exc)}, status=400)
        return Response.json({"error": "not found"}, status=404)

    def _send(self, resp: Response) -> None:
        # status line, headers and body in one write (one system call, one segment for a small
        # answer) instead of send_response/send_header/end_headers and a second write for the body
        reason = self.responses.get(resp.status, ("",))[0]
        head = [f"{self.protocol_version} {resp.status} {reason}\r\n"]
        for k, v in resp.headers.items():
            head.append(f"{k}: {v}\r\n")
            if k.lower() == "connection" and v.lower() == "close":
                self.close_connection = True
        head.append(f"Content-Length: {len(resp.body)}\r\n\r\n")
        self.wfile.write("".join(head).encode("latin-1") + resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away (killed, timed out): nothing to report
        super().handle_error(request, client_address)


class EmulatorServer:
    """Runs one emulator on ``host:port`` (port 0 picks a free port) in a daemon thread."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0):
        handler = type(f"{type(emulator).__name__}Handler", (_Handler,), {"emulator": emulator})
        self.emulator = emulator
        self.httpd = _Server((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host!s}:{self.port}"

    def start(self) -> "EmulatorServer":
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{self.emulator.name}-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.emulator.close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

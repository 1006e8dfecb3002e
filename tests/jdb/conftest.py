"""JDB fixtures: an emulator on 127.0.0.1 port 0 per test (in-memory state) and a client for it.

The key and IV below are sandbox-only values for these tests, never real credentials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.support import CliWorkspace
from reconciler.clients.http import RetryPolicy
from reconciler.vendors.jdb.client import JdbClient
from reconciler.vendors.jdb.crypto import JdbCipher
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import EVENT_RETENTION_DAYS, JdbEmulator

SANDBOX_DC = "sbx"
SANDBOX_KEY = "sbxTestKey000001"  # sandbox-only
SANDBOX_IV = "sbxTestIv0000001"  # sandbox-only
AGENT = "sandboxag"
NO_WAIT = RetryPolicy(attempts=4, timeout=10.0, wait_initial=0, wait_max=0, wait_jitter=0)


@dataclass
class Clock:
    """A settable clock shared by the emulator and the client (seconds since the epoch)."""

    now: float
    ticking_since: float | None = None  # set by tick(): the clock then runs with real time

    def __call__(self) -> float:
        if self.ticking_since is None:
            return self.now
        return self.now + (time.monotonic() - self.ticking_since)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def tick(self) -> None:
        """From now on the clock runs at real time from its reading: a long test whose CLI seals
        JDB requests with the real time stays inside the emulator's 30 s ``ts`` window."""
        self.ticking_since = time.monotonic()


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture(params=["documented", "extended"])
def jdb_mode(request: pytest.FixtureRequest) -> str:
    """The emulator's Action 76 answer: only the documented fields, or the extended guess. Every
    JDB test runs against both; a test that reads an undocumented field pins
    ``@pytest.mark.parametrize("jdb_mode", ["extended"])``."""
    return str(request.param)


@pytest.fixture
def bonuschips_times() -> str:
    """Action 72 ``times`` for BONUSCHIPS: ``required`` as the seed marks it; a test can pin
    ``@pytest.mark.parametrize("bonuschips_times", ["ignored"])``."""
    return "required"


@pytest.fixture
def busy_status() -> str:
    """The status of an injected fault: ``9999`` (HTTP 503); a test can pin
    ``@pytest.mark.parametrize("busy_status", ["9012", "9017"])`` (the documented "try again" statuses)."""
    return "9999"


@pytest.fixture
def bonuschips_times_answer() -> str:
    """Action 71/76 ``times`` of a BONUSCHIPS event: ``null`` as the Action 71 seed says, or ``echo``
    (what the create sent); tests of the behaviour run both."""
    return "null"


@pytest.fixture
def repeat_transaction() -> str:
    """Action 72 with a used ``transactionId``: ``answer`` (the existing eventId, nothing bound) or
    ``bind`` (also binds the players sent)."""
    return "answer"


@pytest.fixture
def update_fields() -> str:
    """Action 77: ``newest`` (start/end cannot change) or ``older`` (start/end mandatory and set)."""
    return "newest"


@pytest.fixture
def update_active() -> str:
    """Action 77 on an ACTIVE event: ``allowed`` or ``refused`` (9998)."""
    return "allowed"


@pytest.fixture
def bind_bound() -> str:
    """Action 74 for an already bound player: ``noop`` or ``failed`` (listed in failedBindingPlayers)."""
    return "noop"


@pytest.fixture
def event_retention_days() -> int | None:
    """Days an event (its bindings and transactionId) is kept after its endTime: 180 as the Action
    71 seed says; ``None`` (forever) is the other answer a test can pin."""
    return EVENT_RETENTION_DAYS


@pytest.fixture
def event_retention_from() -> str:
    """When a TERMINATED event's retention starts: ``end`` (its endTime) or ``stop`` (when it was
    terminated); the seed does not say. Tests of the behaviour run both."""
    return "end"


@pytest.fixture
def jdb_emulator(
    clock: Clock,
    jdb_mode: str,
    bonuschips_times: str,
    busy_status: str,
    bonuschips_times_answer: str,
    repeat_transaction: str,
    update_fields: str,
    update_active: str,
    bind_bound: str,
    event_retention_days: int | None,
    event_retention_from: str,
) -> JdbEmulator:
    return JdbEmulator(
        dc=SANDBOX_DC,
        key=SANDBOX_KEY,
        iv=SANDBOX_IV,
        agents=[AGENT, "otherag"],
        clock=clock,
        search_fields=jdb_mode,
        bonuschips_times=bonuschips_times,
        busy_status=busy_status,
        bonuschips_times_answer=bonuschips_times_answer,
        repeat_transaction=repeat_transaction,
        update_fields=update_fields,
        update_active=update_active,
        bind_bound=bind_bound,
        event_retention_days=event_retention_days,
        event_retention_from=event_retention_from,
    )


@pytest.fixture
def jdb_server(jdb_emulator: JdbEmulator) -> Iterator[EmulatorServer]:
    server = EmulatorServer(jdb_emulator).start()
    yield server
    server.stop()


@pytest.fixture
def make_jdb_client(jdb_server: EmulatorServer, clock: Clock) -> Iterator[Callable[..., JdbClient]]:
    """A factory of clients for the test's emulator; keyword arguments override the defaults."""
    made: list[JdbClient] = []

    def make(**overrides: Any) -> JdbClient:
        options: dict[str, Any] = {"dc": SANDBOX_DC, "key": SANDBOX_KEY, "iv": SANDBOX_IV, "retry": NO_WAIT, "clock": clock}
        options.update(overrides)
        made.append(JdbClient(jdb_server.url, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def jdb_client(make_jdb_client: Callable[..., JdbClient]) -> JdbClient:
    return make_jdb_client()


@dataclass
class RawJdb:
    """Hand-built requests to the emulator (no client): checks the wire format from the documents."""

    url: str
    cipher: JdbCipher
    clock: Clock

    def seal(self, action: dict[str, Any]) -> str:
        return self.cipher.seal({"ts": int(self.clock() * 1000), "parent": AGENT, **action})

    def post_form(self, fields: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/apiRequest.do", data=fields, headers=headers)

    def call(self, action: dict[str, Any], *, dc: str = SANDBOX_DC) -> dict[str, Any]:
        body = self.post_form({"dc": dc, "x": self.seal(action)}).json()
        assert isinstance(body, dict)
        return body


@pytest.fixture
def raw(jdb_server: EmulatorServer, clock: Clock) -> RawJdb:
    return RawJdb(jdb_server.url, JdbCipher(SANDBOX_KEY, SANDBOX_IV), clock)


@dataclass
class JdbWorkspace(CliWorkspace):
    """A folder with reconciler.yaml pointing at the test's emulator; runs the real CLI."""

    server: EmulatorServer
    emulator: JdbEmulator
    client: JdbClient
    clock: Clock

    def events(self) -> list[dict[str, Any]]:
        """Every event of the agent (terminated ones included), oldest first, with every stored
        field (read from the emulator's state, whatever its Action 76 answers)."""
        return self.emulator.stored_events(AGENT)

    def live(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["status"] != "TERMINATED"]

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.server.url}/_sandbox/stats").json())

    def faults(self, **knobs: Any) -> None:
        httpx.post(f"{self.server.url}/_sandbox/faults", json=knobs).raise_for_status()


@pytest.fixture
def ws(
    tmp_path: Path,
    jdb_server: EmulatorServer,
    jdb_emulator: JdbEmulator,
    jdb_client: JdbClient,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> JdbWorkspace:
    space = JdbWorkspace(tmp_path, jdb_server, jdb_emulator, jdb_client, clock)
    space.write("secrets/jdb_key", SANDBOX_KEY)
    space.write("secrets/jdb_iv", SANDBOX_IV)
    space.write(
        "reconciler.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Config
        providers:
          jdb:
            base_url: {jdb_server.url}
            dc: {SANDBOX_DC}
            key: file:secrets/jdb_key
            iv: file:secrets/jdb_iv
            retry_wait_initial: 0
        """,
    )
    monkeypatch.chdir(tmp_path)
    return space

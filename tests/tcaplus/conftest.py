"""One TcaplusDB emulator per test session on 127.0.0.1 (port 0), emptied before every test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import CliWorkspace
from reconciler.clients.http import RetryPolicy
from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

DATA = Path(__file__).parent / "data"
APP_ID = 2  # the manual's sample URLs use apps/2/zones/1
ZONE_ID = 1
PASSWORD = "c3eda5f013f92c81dda7afcdc273cf82"  # the manual's example AppKey
PASSWORD_MD5 = hashlib.md5(PASSWORD.encode()).hexdigest()  # 879423b88d153cace7b31773a7f46039
TABLES = {"tb_example": DATA / "tb_example.proto", "game_players": DATA / "game_players.proto"}
NO_WAIT = RetryPolicy(attempts=3, timeout=10.0, wait_initial=0.0, wait_max=0.0, wait_jitter=0.0)


@pytest.fixture(scope="session")
def tcaplus_server() -> Iterator[EmulatorServer]:
    emulator = TcaplusEmulator(app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture(params=[False, True], ids=["plus-literal", "plus-space"])
def emulator(tcaplus_server: EmulatorServer, request: pytest.FixtureRequest) -> Iterator[TcaplusEmulator]:
    """The session's emulator, reset; every TcaplusDB test runs against both answers to what the
    manual leaves open: a '+' in the query kept as a plus, or read as a space."""
    emu = tcaplus_server.emulator
    assert isinstance(emu, TcaplusEmulator)
    emu.clear()
    emu.plus_as_space = request.param
    emu.set_faults({"latency_ms": 0.0, "error_rate": 0.0, "drop_reply_rate": 0.0, "drop_next_writes": 0, "fail_next": 0})
    emu.stats.clear()
    yield emu


@pytest.fixture
def base_url(tcaplus_server: EmulatorServer, emulator: TcaplusEmulator) -> str:
    return tcaplus_server.url


@pytest.fixture(scope="session")
def session_client(tcaplus_server: EmulatorServer) -> Iterator[TcaplusClient]:
    # one client for the session: building an httpx client loads the CA bundle (~50 ms)
    c = TcaplusClient(tcaplus_server.url, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, retry=NO_WAIT)
    yield c
    c.close()


@pytest.fixture
def client(session_client: TcaplusClient, emulator: TcaplusEmulator) -> TcaplusClient:
    session_client.transport.request_counts.clear()
    return session_client


@dataclass
class Workspace(CliWorkspace):
    """A folder with reconciler.yaml pointing at the emulator, the two test tables and a password file."""

    emulator: TcaplusEmulator
    client: TcaplusClient



    def requests(self) -> int:
        return sum(self.emulator.stats.values())


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tcaplus_server: EmulatorServer,
       emulator: TcaplusEmulator, client: TcaplusClient) -> Workspace:
    workspace = Workspace(tmp_path, emulator, client)
    for name, path in TABLES.items():
        workspace.write(f"protos/{name}.proto", path.read_text(encoding="utf-8"))
    workspace.write("secrets/tcaplus_password", PASSWORD)
    workspace.write(
        "reconciler.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Config
        providers:
          tcaplus:
            base_url: {tcaplus_server.url}
            app_id: {APP_ID}
            zone_id: {ZONE_ID}
            password: file:secrets/tcaplus_password
            retry_wait_initial: 0
            tables:
              tb_example: {{proto: protos/tb_example.proto}}
              game_players: {{proto: protos/game_players.proto}}
        """,
    )
    monkeypatch.chdir(tmp_path)
    return workspace

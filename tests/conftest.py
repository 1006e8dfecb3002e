"""Fixtures shared by test folders (a fixture used in one folder lives in that folder's
conftest.py, one used in one module stays in that module). Every fixture name in tests/ means one
thing: ``tests/test_harness.py`` checks that no two fixtures share a name, except a module that
overrides its folder's fixture with the same type, and that no test module imports a fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import yaml

from reconciler.sandbox.wire import EmulatorServer
from reconciler.sandbox.serve import Sandbox
from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator
from tests.bestproxy.conftest import BESTPROXY_ANSWERS, Workspace, bestproxy_workspace
from tests.environments.support import PASSWORDS, ROOT, Fleet
from tests.tcaplus.conftest import APP_ID, NO_WAIT, PASSWORD, TABLES, ZONE_ID
from tests.tcaplus.conftest import Workspace as TcaplusWorkspace


@pytest.fixture(params=sorted(BESTPROXY_ANSWERS))
def bestproxy_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """A BestProxy emulator and a working folder (cwd) whose config points at it, once for each
    set of answers the emulator gives where the document is silent (``BESTPROXY_ANSWERS``)."""
    yield from bestproxy_workspace(tmp_path, monkeypatch, knobs=BESTPROXY_ANSWERS[request.param])


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    """Two sandboxes: the default connection of every vendor on A, the named connection ``brand-b``
    on B (tests/environments/support.py)."""
    monkeypatch.chdir(tmp_path)
    proto = tmp_path / "tables" / "item_catalog.proto"
    proto.parent.mkdir()
    proto.write_text((ROOT / "tables" / "item_catalog.proto").read_text())
    tables = {"item_catalog": proto}
    ws = Fleet(tmp_path)
    ws.a = Sandbox(tmp_path / "state-a", tcaplus_tables=tables).start()
    ws.b = Sandbox(tmp_path / "state-b", tcaplus_tables=tables).start()
    try:
        conf_a, conf_b = ws.a.providers(), ws.b.providers()
        for conf in (conf_a, conf_b):
            conf["tcaplus"]["tables"] = {"item_catalog": {"proto": "tables/item_catalog.proto"}}
        config = {
            "apiVersion": "reconciler/v1",
            "kind": "Config",
            "providers": conf_a,
            "connections": {vendor: {"brand-b": conf_b[vendor]} for vendor in ("bestproxy", "tcaplus", "jdb")},
            "settings": {"threshold_min_existing": 2, "max_change_ratio": 0.5},
        }
        ws.write("reconciler.yaml", yaml.safe_dump(config, sort_keys=False))
        for conn, pw in PASSWORDS.items():
            ws.write(f"manifests/secrets/{conn}.txt", pw)
        yield ws
    finally:
        ws.a.stop()
        ws.b.stop()


@pytest.fixture(scope="session")
def tcaplus_server() -> Iterator[EmulatorServer]:
    """One TcaplusDB emulator per test session (per xdist worker) on 127.0.0.1, port 0."""
    emulator = TcaplusEmulator(app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, tables=TABLES)
    with EmulatorServer(emulator) as server:
        yield server


@pytest.fixture(params=[False, True], ids=["plus-literal", "plus-space"])
def tcaplus_emulator(tcaplus_server: EmulatorServer, request: pytest.FixtureRequest) -> Iterator[TcaplusEmulator]:
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
def tcaplus_url(tcaplus_server: EmulatorServer, tcaplus_emulator: TcaplusEmulator) -> str:
    return tcaplus_server.url


@pytest.fixture(scope="session")
def tcaplus_session_client(tcaplus_server: EmulatorServer) -> Iterator[TcaplusClient]:
    # one client for the session: building an httpx client loads the CA bundle (~50 ms)
    c = TcaplusClient(tcaplus_server.url, app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, retry=NO_WAIT)
    yield c
    c.close()


@pytest.fixture
def tcaplus_client(tcaplus_session_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> TcaplusClient:
    tcaplus_session_client.transport.request_counts.clear()
    return tcaplus_session_client


@pytest.fixture
def tcaplus_ws(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tcaplus_server: EmulatorServer,
    tcaplus_emulator: TcaplusEmulator,
    tcaplus_client: TcaplusClient,
) -> TcaplusWorkspace:
    """A folder (cwd) with reconciler.yaml pointing at the emulator, the two test tables and a
    password file."""
    workspace = TcaplusWorkspace(tmp_path, tcaplus_emulator, tcaplus_client)
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

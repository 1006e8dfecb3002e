"""Every request of every vendor client names the product and its version in ``User-Agent``
(issue 24 item 3), as each emulator records it (``GET /_sandbox/stats/user_agents``)."""

from __future__ import annotations

import importlib.metadata
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pyotp
import pytest

from reconciler.vendors.bestproxy.client import BestProxyClient
from reconciler.clients.http import RetryPolicy, user_agent
from reconciler.vendors.jdb.client import JdbClient
from reconciler.vendors.tcaplus.client import TcaplusClient
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import BestProxyEmulator
from reconciler.vendors.jdb.emulator import JdbEmulator
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

MANUAL_EXAMPLE_APP_KEY = "c3eda5f013f92c81dda7afcdc273cf82"  # the TcaplusDB manual's example AppKey (public; sandbox only)

NO_WAIT = RetryPolicy(attempts=2, timeout=10.0, wait_initial=0, wait_max=0, wait_jitter=0)
TCAPLUS_DATA = Path(__file__).parent / "tcaplus" / "data"


def seen(server: EmulatorServer) -> dict[str, int]:
    """The emulator's vendor requests by ``User-Agent``, and checked against its request counts."""
    agents = httpx.get(f"{server.url}/_sandbox/stats/user_agents").json()
    total = sum(httpx.get(f"{server.url}/_sandbox/stats").json().values())
    assert total > 0 and sum(agents.values()) == total
    return agents


def test_the_user_agent_names_the_product_and_its_version() -> None:
    assert user_agent() == f"gameops-reconciler/{importlib.metadata.version('gameops-reconciler')}"
    assert user_agent().split("/")[1][0].isdigit()


def test_bestproxy_sees_the_user_agent_on_every_request() -> None:
    emu = BestProxyEmulator(None, app_key="TestOnlyAppKey0123456789abcdefAB", totp_secret=pyotp.random_base32())
    with EmulatorServer(emu) as server:
        client = BestProxyClient(server.url, app_key="TestOnlyAppKey0123456789abcdefAB", retry=NO_WAIT)
        try:
            client.add_accounts([("uaacct01", "Passw0rd1")], product_type=9)
            assert [a.username for a in client.list_accounts()] == ["uaacct01"]
            client.list_ips(None)
        finally:
            client.close()
        assert seen(server) == {user_agent(): 3}


def test_jdb_sees_the_user_agent_on_every_request() -> None:
    now = time.time()
    emu = JdbEmulator(dc="sbx", key="sbxTestKey000001", iv="sbxTestIv0000001", agents=["sandboxag"], clock=lambda: now)
    with EmulatorServer(emu) as server:
        client = JdbClient(server.url, dc="sbx", key="sbxTestKey000001", iv="sbxTestIv0000001", retry=NO_WAIT, clock=lambda: now)
        try:
            at = datetime.fromtimestamp(now, timezone.utc)
            client.search_events(agent="sandboxag", start=at - timedelta(days=1), end=at + timedelta(days=1))
        finally:
            client.close()
        agents = seen(server)
        assert agents == {user_agent(): sum(agents.values())}


def test_tcaplus_sees_the_user_agent_on_every_request_threads_and_event_loop() -> None:
    emu = TcaplusEmulator(
        app_id=2, zone_id=1, password=MANUAL_EXAMPLE_APP_KEY, tables={"game_players": TCAPLUS_DATA / "game_players.proto"}
    )
    with EmulatorServer(emu) as server:
        client = TcaplusClient(server.url, app_id=2, zone_id=1, password=MANUAL_EXAMPLE_APP_KEY, retry=NO_WAIT)
        keys = {"player_id": 7, "player_name": "ann lee", "player_email": "ann@example.com"}
        try:
            client.add("game_players", {**keys, "game_server_id": 3})
            assert client.get("game_players", keys) is not None
            assert client.transport.run(lambda: client.transport.asend("GET", "/", idempotent=True)).status_code
        finally:
            client.close()
        assert seen(server) == {user_agent(): 3}


def test_without_the_installed_distribution_the_package_version_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    user_agent.cache_clear()
    try:
        assert user_agent() == f"gameops-reconciler/{reconciler.__version__}"
    finally:
        monkeypatch.undo()
        user_agent.cache_clear()
    assert user_agent() == f"gameops-reconciler/{importlib.metadata.version('gameops-reconciler')}"

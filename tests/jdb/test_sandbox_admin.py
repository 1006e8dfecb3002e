"""The sandbox's JDB player registry over HTTP, and a wrong URL that is not mistaken for 'busy'."""

from __future__ import annotations

import httpx
import pytest

from reconciler.vendors.jdb.client import JdbError, JdbUnavailableError
from reconciler.sandbox.wire import EmulatorServer
from tests.jdb.conftest import AGENT


def test_players_are_registered_over_http(jdb_server: EmulatorServer) -> None:
    r = httpx.post(jdb_server.url + "/_sandbox/jdb/players", json={"agent": AGENT, "players": ["zz001", "zz002"]})
    assert r.status_code == 200, r.text
    count = httpx.get(jdb_server.url + "/_sandbox/jdb/players", params={"agent": AGENT}).json()["registered"]
    assert count >= 2
    bad = httpx.post(jdb_server.url + "/_sandbox/jdb/players", json={"agent": "nobody", "players": ["x1"]})
    assert bad.status_code == 400


def test_wrong_path_is_a_plain_error_not_busy(jdb_server: EmulatorServer, make_jdb_client) -> None:
    client = make_jdb_client()
    client.http.base_url = jdb_server.url + "/wrong"
    with pytest.raises(JdbError) as info:
        client.call(76, AGENT, {}, idempotent=True)
    assert not isinstance(info.value, JdbUnavailableError)
    assert info.value.http_status == 404

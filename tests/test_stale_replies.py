"""No stale answer is acted on (issue 24 item 4): the emulators' ``late_duplicate_replies`` knob
sends an answer a second time, late, on the kept-alive connection, just before the answer to the
next request. An HTTP/1.1 client cannot tell which of the two answers is the one to its request,
so the request's outcome is unknown: the connection is closed and not reused, a read is asked
again on a new connection, and a write is settled by reading back (DESIGN.md principle 2).

Both ways a request can go (threads, event loop) are checked against the real emulator, and the
whole plan/apply runs with every answer duplicated. A later transport (aiohttp, issue 24 item 1)
must pass these tests unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from reconciler.clients.http import HttpTransport, RetryPolicy
from reconciler.errors import TransportError
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import BestProxyEmulator
from tests.bestproxy.conftest import Workspace, account_doc, bestproxy_workspace

MANUAL_EXAMPLE_APP_KEY = "c3eda5f013f92c81dda7afcdc273cf82"  # the TcaplusDB manual's example AppKey (public; sandbox only)

APP_KEY = "TestOnlyAppKey0123456789abcdefAB"
RETRY = RetryPolicy(attempts=3, timeout=30.0, wait_initial=0, wait_max=0, wait_jitter=0)
WAYS = ["threads", "event loop"]


@pytest.fixture
def stale_server() -> Iterator[EmulatorServer]:
    emu = BestProxyEmulator(None, app_key=APP_KEY, totp_secret=pyotp.random_base32())
    with EmulatorServer(emu) as s:
        yield s


def seed(url: str) -> None:
    """One IP and one account, so the two lists' answers differ."""
    httpx.post(f"{url}/gateway/proxy-ip/add", json={"app_key": APP_KEY, "product_type": 14, "ips": "10.9.9.9"}).raise_for_status()
    httpx.post(
        f"{url}/gateway/whitelist-account/add", json={"app_key": APP_KEY, "product_type": 9, "accounts": "stale01:Passw0rd1"}
    ).raise_for_status()
    httpx.post(f"{url}/_sandbox/stats/reset").raise_for_status()


def knobs(url: str, **values: Any) -> None:
    httpx.post(f"{url}/_sandbox/faults", json=values).raise_for_status()


def exchange(t: HttpTransport, way: str, calls: list[dict[str, Any]]) -> list[Any]:
    """The calls in order on one transport (one kept-alive connection), the given way; each
    result is the answer's JSON, or the TransportError raised."""

    def one(call: dict[str, Any]) -> Any:
        try:
            return t.send(**call).json()
        except TransportError as exc:
            return exc

    async def all_async() -> list[Any]:
        out = []
        for call in calls:
            try:
                out.append((await t.asend(**call)).json())
            except TransportError as exc:
                out.append(exc)
        return out

    if way == "threads":
        return [one(c) for c in calls]
    return t.run(all_async)


def ips_call() -> dict[str, Any]:
    return {
        "method": "GET",
        "path": "/gateway/proxy-ip/list",
        "params": {"app_key": APP_KEY, "product_type": 14},
        "idempotent": True,
    }


def accounts_call() -> dict[str, Any]:
    return {"method": "GET", "path": "/gateway/whitelist-account/list", "params": {"app_key": APP_KEY}, "idempotent": True}


@pytest.mark.parametrize("way", WAYS)
def test_a_read_never_takes_the_late_copy_of_the_answer_before(stale_server: EmulatorServer, way: str) -> None:
    # no ``shape``: the transport alone must see that the connection carried more than one answer
    seed(stale_server.url)
    t = HttpTransport(stale_server.url, vendor="bestproxy", retry=RETRY, max_connections=1)
    knobs(stale_server.url, late_duplicate_replies=1)
    try:
        ips, accounts = exchange(t, way, [ips_call(), accounts_call()])
    finally:
        t.close()
    assert [i["ip"] for i in ips["data"]["list"]] == ["10.9.9.9"]
    # the accounts answer, read again on a new connection; not the IP list, nor the two run together
    assert [a["username"] for a in accounts["data"]["list"]] == ["stale01"], accounts
    stats = httpx.get(f"{stale_server.url}/_sandbox/stats").json()
    assert stats["GET /gateway/whitelist-account/list"] == 2  # asked again: the first answer was not trusted


@pytest.mark.parametrize("way", WAYS)
def test_a_write_answered_together_with_a_late_copy_has_an_unknown_outcome(stale_server: EmulatorServer, way: str) -> None:
    seed(stale_server.url)
    t = HttpTransport(stale_server.url, vendor="bestproxy", retry=RETRY, max_connections=1)
    knobs(stale_server.url, late_duplicate_replies=1)
    add = {
        "method": "POST",
        "path": "/gateway/proxy-ip/add",
        "idempotent": False,
        "json": {"app_key": APP_KEY, "product_type": 14, "ips": "10.0.0.7", "remark": ""},
    }
    try:
        ips, added, after = exchange(t, way, [ips_call(), add, ips_call()])
    finally:
        t.close()
    assert [i["ip"] for i in ips["data"]["list"]] == ["10.9.9.9"]
    assert isinstance(added, TransportError)
    assert str(added).endswith("; the outcome is unknown") and "POST /gateway/proxy-ip/add" in str(added)
    # reading back settles it: the add took effect (the emulator handled it)
    assert sorted(i["ip"] for i in after["data"]["list"]) == ["10.0.0.7", "10.9.9.9"]


@pytest.fixture
def stale_bp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    yield from bestproxy_workspace(tmp_path, monkeypatch)


def test_apply_with_every_answer_duplicated_loses_no_write_and_its_exit_code_is_true(stale_bp: Workspace) -> None:
    ips = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(38)]
    stale_bp.write(
        "manifests/ips.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {{name: datacenter}}
        spec:
          productType: 14
          entries: [{", ".join(ips)}]
        """,
    )
    stale_bp.write("manifests/accounts.yaml", "---\n".join(account_doc(f"dup{i:02d}") for i in range(3)))
    knobs(stale_bp.url, late_duplicate_replies=10_000)
    applied = stale_bp.cli("apply", "--auto-approve")
    # every write whose answer came with a late copy was settled by reading back: all are there,
    # none was made twice, and the exit code says the run did what it was asked
    assert applied.exit_code == 0, applied.output + applied.stderr
    assert sorted(stale_bp.ips(14)) == sorted(ips) and sorted(stale_bp.accounts()) == ["dup00", "dup01", "dup02"]
    assert "ok      create IpAllowlist/14: added 38" in applied.stdout
    stats = httpx.get(f"{stale_bp.url}/_sandbox/stats").json()
    # each write sent once: an answer not trusted was settled by reading back, not by sending again
    assert stats["POST /gateway/proxy-ip/add"] == 1 and stats["POST /gateway/whitelist-account/add"] == 1, stats
    knobs(stale_bp.url, late_duplicate_replies=0)
    plan = stale_bp.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0 and "No changes" in plan.stdout, plan.output


@pytest.mark.parametrize("way", WAYS)
def test_tcaplus_reads_each_get_their_own_record(way: str) -> None:
    from reconciler.vendors.tcaplus.client import TcaplusClient
    from reconciler.vendors.tcaplus.emulator import TcaplusEmulator

    password = MANUAL_EXAMPLE_APP_KEY
    emu = TcaplusEmulator(
        app_id=2,
        zone_id=1,
        password=password,
        tables={"game_players": Path(__file__).parent / "tcaplus" / "data" / "game_players.proto"},
    )
    with EmulatorServer(emu) as server:
        client = TcaplusClient(server.url, app_id=2, zone_id=1, password=password, retry=RETRY, max_connections=1)
        keys = [{"player_id": i, "player_name": f"p{i}", "player_email": f"p{i}@example.com"} for i in range(4)]
        try:
            for i, k in enumerate(keys):
                client.add("game_players", {**k, "game_server_id": 100 + i})
            knobs(server.url, late_duplicate_replies=1_000)
            order = [0, 1, 2, 3, 2, 1, 0]
            if way == "threads":
                got = [client.get("game_players", keys[i]) for i in order]
            else:

                async def reads() -> list[Any]:
                    return [await client.aget("game_players", keys[i]) for i in order]

                got = client.run(reads)
        finally:
            client.close()
        assert [r.record["game_server_id"] if r else None for r in got] == [100 + i for i in order]

"""TcaplusClient against the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from reconciler.clients.http import SentRequest
from reconciler.vendors.tcaplus.client import (
    TcaplusAuthError,
    TcaplusClient,
    TcaplusError,
    TcaplusIndexNotFoundError,
    TcaplusInvalidParameterError,
    TcaplusInvalidRequestError,
    TcaplusRecordExistsError,
    TcaplusRecordNotFoundError,
    TcaplusServerError,
    TcaplusTableNotFoundError,
    TcaplusTransportError,
    TcaplusVersionMismatchError,
)
from reconciler.vendors.tcaplus.wire import PartkeyPage, ResultFlag, VersionCheck, VersionedRecord
from reconciler.errors import StaleError, TransportError
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.tcaplus.emulator import TcaplusEmulator
from tests.tcaplus.conftest import APP_ID, NO_WAIT, PASSWORD, PASSWORD_MD5, ZONE_ID

T = "game_players"
KEYS = {"player_id": 7, "player_name": "ann lee", "player_email": "ann@example.com"}
PLAYER = {**KEYS, "game_server_id": 3}


@pytest.fixture
def sent(tcaplus_client: TcaplusClient) -> Iterator[list[SentRequest]]:
    """The requests our client puts on the wire (read from the transport's request observers)."""
    requests: list[SentRequest] = []
    tcaplus_client.transport.on_request.append(requests.append)
    yield requests
    tcaplus_client.transport.on_request.remove(requests.append)


def posts(tcaplus_client: TcaplusClient, method: str) -> int:
    return sum(n for k, n in tcaplus_client.transport.request_counts.items() if k.startswith(method + " "))


# -- wire format -----------------------------------------------------------------------------------


def test_headers_and_percent_encoding(tcaplus_client: TcaplusClient, sent: list[SentRequest]) -> None:
    tcaplus_client.add(T, {**PLAYER, "player_name": "李 雷"})
    record = tcaplus_client.get(T, {**KEYS, "player_name": "李 雷"}, select=["game_server_id", "pay.amount"])
    assert record == VersionedRecord(1, {**KEYS, "player_name": "李 雷", "game_server_id": 3})
    add, get = sent
    assert add.method == "POST" and get.method == "GET"
    assert get.path == f"/ver1.0/apps/{APP_ID}/zones/{ZONE_ID}/tables/{T}/records"
    query = get.query
    assert "+" not in query and "%20" in query
    assert query.startswith("keys=%7B%22player_id%22%3A7%2C") and "&select=%5B%22game_server_id%22%2C%22pay.amount%22%5D" in query
    assert get.headers["x-tcaplus-target"] == "Tcaplus.GetRecord"
    assert add.headers["x-tcaplus-target"] == "Tcaplus.AddRecord"
    for request in sent:
        assert request.headers["x-tcaplus-version"] == "Tcaplus3.32.0"
        assert request.headers["x-tcaplus-idl-type"] == "protobuf"
        assert request.headers["x-tcaplus-pwd-md5"] == PASSWORD_MD5
    assert add.headers["x-tcaplus-result-flag"] == "0" and add.headers["content-type"] == "application/json"


def test_the_event_loop_read_sends_what_the_threaded_read_sends(tcaplus_client: TcaplusClient, sent: list[SentRequest]) -> None:
    """``aget`` builds its query directly; the wire is the one ``get`` writes, with and without select."""
    tcaplus_client.add(T, {**PLAYER, "player_name": "李 雷"})
    keys = {**KEYS, "player_name": "李 雷"}
    for select in (None, ["game_server_id", "pay.amount"], ["game_server_id"]):
        sent.clear()
        threaded = tcaplus_client.get(T, keys, select=select)
        looped = tcaplus_client.run(lambda select=select: tcaplus_client.aget(T, keys, select=select))
        assert threaded == looped is not None
        assert len(sent) == 2 and sent[0] == sent[1], sent
    assert tcaplus_client.run(lambda: tcaplus_client.aget(T, {**KEYS, "player_name": "nobody"})) is None


def test_delete_sends_a_json_body(tcaplus_client: TcaplusClient, sent: list[SentRequest]) -> None:
    tcaplus_client.set(T, PLAYER)
    result = tcaplus_client.delete(T, KEYS, result_flag=ResultFlag.BEFORE, return_values="rv")
    assert (result.version, result.record, result.return_values) == (-1, PLAYER, "rv")
    delete = sent[-1]
    assert delete.method == "DELETE" and b'"Record":{"player_id":7' in delete.content
    assert tcaplus_client.get(T, KEYS) is None


# -- reads -----------------------------------------------------------------------------------------


def test_get_missing_record_is_none(tcaplus_client: TcaplusClient) -> None:
    assert tcaplus_client.get(T, KEYS) is None
    assert tcaplus_client.field_get(T, KEYS, ["level"]) is None


def test_field_get(tcaplus_client: TcaplusClient) -> None:
    tcaplus_client.set(T, {**PLAYER, "level": 4, "pay": {"pay_id": 1, "amount": 9}})
    assert tcaplus_client.field_get(T, KEYS, ["pay.amount"]) == VersionedRecord(1, {**KEYS, "pay": {"amount": 9}})


def test_partkey_pages_and_paging_helper(tcaplus_client: TcaplusClient) -> None:
    for i in range(5):
        tcaplus_client.set(T, {**PLAYER, "player_email": f"p{i}@x"})
    tcaplus_client.set(T, {**PLAYER, "player_id": 8})
    page = tcaplus_client.partkey_get(T, "index_2", {"player_id": 7}, limit=2, offset=2, select=["level"])
    assert [r.record["player_email"] for r in page.records] == ["p2@x", "p3@x"]
    assert (page.remain, page.total) == (1, 5)
    tcaplus_client.transport.request_counts.clear()
    everything = tcaplus_client.partkey_get_all(T, "index_1", {"player_id": 7, "player_name": "ann lee"}, page_size=2)
    assert [r.record["player_email"] for r in everything] == [f"p{i}@x" for i in range(5)]
    assert all(r.version == 1 and r.record["game_server_id"] == 3 for r in everything)
    assert tcaplus_client.transport.total_requests == 3


def test_partkey_without_match_is_an_empty_page(tcaplus_client: TcaplusClient) -> None:
    assert tcaplus_client.partkey_get(T, "index_2", {"player_id": 99}) == PartkeyPage([], 0, 0)
    assert tcaplus_client.partkey_get_all(T, "index_2", {"player_id": 99}) == []


def test_partkey_unknown_index(tcaplus_client: TcaplusClient) -> None:
    with pytest.raises(TcaplusIndexNotFoundError) as info:
        tcaplus_client.partkey_get(T, "index_9", {"player_id": 7})
    assert (info.value.code, info.value.http_status) == (-34565, 404)


# -- writes ----------------------------------------------------------------------------------------


def test_add_then_add_again_fails_without_retry(tcaplus_client: TcaplusClient, tcaplus_server: EmulatorServer) -> None:
    assert tcaplus_client.add(T, PLAYER, result_flag=ResultFlag.REQUEST, return_values="x").record == PLAYER
    tcaplus_client.transport.request_counts.clear()
    with pytest.raises(TcaplusRecordExistsError) as info:
        tcaplus_client.add(T, PLAYER)
    assert (info.value.code, info.value.http_status, info.value.vendor) == (-1293, 400, "tcaplus")
    # vendor, host, operation, cause (code and HTTP status), TcaplusDB's message
    assert str(info.value) == (
        f"tcaplus: 127.0.0.1:{tcaplus_server.port}: AddRecord game_players: code -1293 HTTP 400: The record already exists"
    )
    assert tcaplus_client.transport.total_requests == 1


def test_set_with_version_match(tcaplus_client: TcaplusClient) -> None:
    assert tcaplus_client.set(T, PLAYER).version == 1
    result = tcaplus_client.set(T, {**PLAYER, "level": 2}, check=VersionCheck.MATCH, version=1, result_flag=ResultFlag.LATEST)
    assert (result.version, result.record) == (2, {**PLAYER, "level": 2})
    with pytest.raises(TcaplusVersionMismatchError) as info:
        tcaplus_client.set(T, {**PLAYER, "level": 3}, check=VersionCheck.MATCH, version=1)
    assert isinstance(info.value, StaleError) and info.value.exit_code == 3 and info.value.code == -7949
    assert tcaplus_client.get(T, KEYS) == VersionedRecord(2, {**PLAYER, "level": 2})


def test_set_with_forced_version(tcaplus_client: TcaplusClient) -> None:
    assert tcaplus_client.set(T, PLAYER, check=VersionCheck.OVERWRITE, version=40).version == 40
    assert tcaplus_client.set(T, PLAYER, check=VersionCheck.INCREMENT, version=3).version == 41


def test_field_set_and_field_inc(tcaplus_client: TcaplusClient) -> None:
    tcaplus_client.set(T, {**PLAYER, "level": 1, "pay": {"pay_id": 1, "amount": 10}})
    result = tcaplus_client.field_set(T, {**KEYS, "pay": {"amount": 20}}, ["pay.amount"], result_flag=ResultFlag.LATEST)
    assert result.version == 2 and result.record == {**PLAYER, "level": 1, "pay": {"pay_id": 1, "amount": 20}}
    inc = tcaplus_client.field_inc(T, {**KEYS, "level": 5, "game_server_id": -1})
    assert (inc.version, inc.record) == (3, {**KEYS, "level": 6, "game_server_id": 2})
    inc = tcaplus_client.field_inc(
        T, {**KEYS, "level": 1, "game_server_id": 5}, field_paths=["level"], result_flag=ResultFlag.STATUS_ONLY
    )
    assert (inc.version, inc.record) == (4, None)
    assert tcaplus_client.get(T, KEYS).record["game_server_id"] == 2  # type: ignore[union-attr]


def test_writes_on_missing_records(tcaplus_client: TcaplusClient) -> None:
    with pytest.raises(TcaplusRecordNotFoundError):
        tcaplus_client.field_set(T, {**KEYS, "level": 1}, ["level"])
    with pytest.raises(TcaplusRecordNotFoundError):
        tcaplus_client.field_inc(T, {**KEYS, "level": 1})
    with pytest.raises(TcaplusRecordNotFoundError):
        tcaplus_client.delete(T, KEYS)


def test_invalid_requests(tcaplus_client: TcaplusClient) -> None:
    with pytest.raises(TcaplusInvalidRequestError) as info:
        tcaplus_client.add(T, {**PLAYER, "nick": "x"})
    assert info.value.code == -2579
    tcaplus_client.set(T, PLAYER)
    with pytest.raises(TcaplusInvalidParameterError) as param:
        tcaplus_client.field_inc(T, {**KEYS, "rating": 1.0})
    assert param.value.code == -1811 and isinstance(param.value, TcaplusInvalidRequestError)
    with pytest.raises(TcaplusTableNotFoundError):
        tcaplus_client.get("nope", KEYS)


# -- auth, secrets ---------------------------------------------------------------------------------


def test_wrong_password_raises_auth_error_without_secrets(tcaplus_url: str) -> None:
    wrong = "not-the-password"
    c = TcaplusClient(tcaplus_url, app_id=APP_ID, zone_id=ZONE_ID, password=wrong, retry=NO_WAIT)
    try:
        with pytest.raises(TcaplusAuthError) as info:
            c.get(T, KEYS)
    finally:
        c.close()
    text = str(info.value) + repr(info.value) + repr(c)
    assert (info.value.code, info.value.http_status) == (-279, 401)
    for secret in (wrong, PASSWORD, PASSWORD_MD5, c._headers["x-tcaplus-pwd-md5"]):
        assert secret not in text


# -- retries and unknown outcomes ------------------------------------------------------------------


def test_reads_and_plain_sets_are_retried_after_server_errors(
    tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator
) -> None:
    tcaplus_client.set(T, PLAYER)
    tcaplus_emulator.set_faults({"fail_next": 2})
    tcaplus_client.transport.request_counts.clear()
    assert tcaplus_client.get(T, KEYS) is not None
    assert tcaplus_client.transport.total_requests == 3
    tcaplus_emulator.set_faults({"fail_next": 1})
    assert tcaplus_client.set(T, {**PLAYER, "level": 1}).version == 2


def test_server_errors_end_in_a_retryable_error(tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.set_faults({"fail_next": 10})
    with pytest.raises(TcaplusServerError) as info:
        tcaplus_client.get(T, KEYS)
    assert info.value.retryable and info.value.code == -1037 and info.value.http_status == 500
    assert tcaplus_client.transport.total_requests == NO_WAIT.attempts


def test_add_is_not_repeated_after_a_server_error(tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.set_faults({"fail_next": 1})
    with pytest.raises(TcaplusServerError):
        tcaplus_client.add(T, PLAYER)
    assert tcaplus_client.transport.total_requests == 1
    assert tcaplus_client.get(T, KEYS) is None


def test_lost_reply_of_an_idempotent_write_is_retried(tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.set_faults({"drop_next_writes": 1})
    assert tcaplus_client.set(T, PLAYER).version == 2  # the first attempt was stored; its reply was lost
    assert posts(tcaplus_client, "PUT") == 2
    assert tcaplus_client.get(T, KEYS) == VersionedRecord(2, PLAYER)


def test_lost_reply_of_add_is_an_unknown_outcome(tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator) -> None:
    tcaplus_emulator.set_faults({"drop_next_writes": 1})
    with pytest.raises(TcaplusTransportError) as info:
        tcaplus_client.add(T, PLAYER)
    assert isinstance(info.value, TransportError) and isinstance(info.value, TcaplusError) and info.value.retryable
    assert posts(tcaplus_client, "POST") == 1
    assert tcaplus_client.get(T, KEYS) == VersionedRecord(1, PLAYER)  # the write took effect


def test_lost_reply_of_a_version_matched_set_is_not_repeated(
    tcaplus_client: TcaplusClient, tcaplus_emulator: TcaplusEmulator
) -> None:
    tcaplus_client.set(T, PLAYER)
    tcaplus_emulator.set_faults({"drop_next_writes": 1})
    with pytest.raises(TcaplusTransportError):
        tcaplus_client.set(T, {**PLAYER, "level": 1}, check=VersionCheck.MATCH, version=1)
    assert tcaplus_client.get(T, KEYS) == VersionedRecord(2, {**PLAYER, "level": 1})


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = TcaplusClient(f"http://127.0.0.1:{port}", app_id=APP_ID, zone_id=ZONE_ID, password=PASSWORD, retry=NO_WAIT)
    try:
        with pytest.raises(TcaplusTransportError):
            c.get(T, KEYS)
        assert c.transport.total_requests == NO_WAIT.attempts
    finally:
        c.close()


def test_query_values_are_percent_encoded_as_quote_does() -> None:
    """The fast ASCII path of the query encoder writes what ``quote(text, safe='')`` writes: every
    ASCII character and some non-ASCII text (spaces as %20, never '+')."""
    from urllib.parse import quote

    from reconciler.vendors.tcaplus.wire import _percent, _query

    every_ascii = "".join(chr(c) for c in range(128))
    for text in (every_ascii, '{"player_id":7,"name":"a b+c/d?e&f=g#h%"}', "名前 é", "~._-AZaz09", ""):
        assert _percent(text) == quote(text, safe=""), text
    assert _query(keys={"a": "x y"}, select=["b", "c d"]) == "keys=%7B%22a%22%3A%22x%20y%22%7D&select=%5B%22b%22%2C%22c%20d%22%5D"

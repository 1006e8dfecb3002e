"""The JDB client over real HTTP against the emulator: typed errors, idempotent creates, retries,
lost replies and player binding at the real 50,000 chunk size."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import httpx
import pytest

from reconciler.vendors.jdb.client import (
    EventDraft,
    JdbAuthError,
    JdbClient,
    JdbClockError,
    JdbEventNotFoundError,
    JdbEventStateError,
    JdbParameterError,
    JdbPlayerError,
    JdbTransportError,
    JdbUnavailableError,
    error_for,
)
from reconciler.errors import ApiError, TransportError
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import JdbEmulator

from .conftest import AGENT, SANDBOX_IV, SANDBOX_KEY, Clock


def draft(clock: Clock, **overrides: Any) -> EventDraft:
    start = datetime.fromtimestamp(clock.now, timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    fields: dict[str, Any] = {
        "name": "Spring spins",
        "start": start,
        "end": start + timedelta(days=1),
        "machine_types": (14077,),
        "bet": "2",
        "type": "NORMAL",
        "times": 10,
        "min_withdrawal": "-1",
        "max_withdrawal": "100",
    }
    fields.update(overrides)
    return EventDraft(**fields)


def events(client: JdbClient, clock: Clock) -> list[Any]:
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    return client.search_events(agent=AGENT, start=now - timedelta(days=1), end=now + timedelta(days=10))


def faults(server: EmulatorServer, **knobs: Any) -> None:
    httpx.post(f"{server.url}/_sandbox/faults", json=knobs).raise_for_status()


# -- errors -----------------------------------------------------------------------------------
def test_clock_off_is_explained_and_typed(make_jdb_client: Callable[..., JdbClient], clock: Clock) -> None:
    late = make_jdb_client(clock=lambda: clock.now - 45)
    with pytest.raises(JdbClockError) as info:
        events(late, clock)
    message = str(info.value)
    assert info.value.code == "9005" and "clock" in message
    assert SANDBOX_KEY not in message and SANDBOX_IV not in message


def test_wrong_key_is_an_auth_error_without_secrets(make_jdb_client: Callable[..., JdbClient], clock: Clock) -> None:
    wrong = "0123456789abcdef"
    client = make_jdb_client(key=wrong)
    with pytest.raises(JdbAuthError) as info:
        events(client, clock)
    assert info.value.code == "9006" and wrong not in str(info.value) and SANDBOX_IV not in str(info.value)
    # 9006 means "could not extract parameters from the encrypted data": the key/IV is the likely
    # cause, not the only one (issue 23): the sub-account parent and an altered request are named too
    message = str(info.value)
    assert "Likely: providers.jdb key or iv" in message and "Also possible:" in message
    assert "providers.jdb.parent" in message and "altered the request" in message
    assert wrong not in repr(client)


def test_error_types(jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock) -> None:
    with pytest.raises(JdbPlayerError) as player:
        jdb_client.player_events(agent=AGENT, uid="stranger")
    assert player.value.code == "7501" and isinstance(player.value, ApiError)
    # vendor, host (host:port), the action, JDB's status and text
    assert str(player.value) == f"jdb: 127.0.0.1:{jdb_server.port}: action 71: code 7501: User ID cannot be found."
    with pytest.raises(JdbEventNotFoundError):
        jdb_client.bind_players(agent=AGENT, event_id=1, players=["player00001"])
    with pytest.raises(JdbEventNotFoundError):
        jdb_client.terminate_event(agent=AGENT, event_id=1)
    with pytest.raises(JdbParameterError) as param:
        jdb_client.create_event(agent=AGENT, draft=draft(clock, name=""), transaction_id="t")
    assert "parameter:name" in str(param.value)


def test_every_documented_status_has_a_type() -> None:
    assert type(error_for("9998", "This action cannot be executed as the event status is TERMINATED.")) is JdbEventStateError
    assert type(error_for("9998", "Event not exist.")) is JdbEventNotFoundError
    assert type(error_for("9015", "Event not exist.")) is JdbEventNotFoundError
    assert error_for("9019", "").retryable and not error_for("8000", "x").retryable
    assert str(error_for("1234", "odd")) == "jdb: code 1234: odd"


def test_transport_error_is_both_jdb_and_transport() -> None:
    assert issubclass(JdbTransportError, TransportError) and issubclass(JdbTransportError, ApiError)


# -- idempotent create ------------------------------------------------------------------------
def test_two_creates_with_the_same_transaction_id_give_one_event(jdb_client: JdbClient, clock: Clock) -> None:
    first = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-1", players=["player00001"])
    second = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-1", players=["player00001"])
    assert first.event_id == second.event_id
    assert len(events(jdb_client, clock)) == 1


def test_lost_reply_after_create_is_retried_and_still_gives_one_event(
    jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock
) -> None:
    faults(jdb_server, drop_next_writes=1)
    result = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-2", players=["player00001"])
    assert jdb_client.http.request_counts["POST /apiRequest.do"] == 2
    [event] = events(jdb_client, clock)
    assert event["eventId"] == result.event_id and event["numberOfPlayers"] == 1


def test_a_busy_answer_to_create_is_asked_again_with_the_same_transaction_id(
    jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock
) -> None:
    faults(jdb_server, fail_next=1)
    result = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-busy", players=["player00001"])
    assert jdb_client.action_counts[72] == 2 and result.binding_known
    [event] = events(jdb_client, clock)
    assert event["eventId"] == result.event_id


def test_lost_create_reply_says_the_binding_is_not_known(jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock) -> None:
    faults(jdb_server, drop_next_writes=1)
    result = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-lost", players=["ghost"])
    assert not result.binding_known and result.binding.not_existed == ()  # the repeat's lists say nothing


def test_lost_reply_on_terminate_is_not_retried(jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock) -> None:
    created = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-3")
    faults(jdb_server, drop_next_writes=1)
    with pytest.raises(JdbTransportError):
        jdb_client.terminate_event(agent=AGENT, event_id=created.event_id)
    assert jdb_client.action_counts[73] == 1
    assert events(jdb_client, clock)[0]["status"] == "TERMINATED"  # how the caller resolves it


def test_a_busy_answer_that_outlasts_the_retries_names_host_action_and_http_status(
    jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock
) -> None:
    faults(jdb_server, fail_next=4)  # HTTP 503, status 9999, to every attempt
    with pytest.raises(JdbUnavailableError) as info:
        events(jdb_client, clock)
    assert str(info.value) == (
        f"jdb: 127.0.0.1:{jdb_server.port}: action 76: code 9999 HTTP 503: System busy, please try again later."
    )


def test_reads_are_retried_on_system_errors_with_a_fresh_timestamp(
    jdb_server: EmulatorServer, make_jdb_client: Callable[..., JdbClient], clock: Clock
) -> None:
    seals: list[float] = []

    def counting_clock() -> float:
        seals.append(clock.now)
        return clock.now

    client = make_jdb_client(clock=counting_clock)
    faults(jdb_server, fail_next=2)
    assert events(client, clock) == []
    assert client.http.request_counts["POST /apiRequest.do"] == 3
    assert len(seals) == 3  # the envelope is sealed once per attempt


# -- lost replies: reads are not "unknown outcomes" ----------------------------------------------
def _read(client: JdbClient, clock: Clock, action: int) -> Any:
    now = datetime.fromtimestamp(clock.now, timezone.utc).replace(second=0, microsecond=0)
    if action == 29:
        return client.transactions(agent=AGENT, start=now - timedelta(minutes=10), end=now - timedelta(minutes=5))
    if action == 71:
        return client.player_events(agent=AGENT, uid="player00001")
    return events(client, clock)


@pytest.mark.parametrize("action", [29, 71, 76])
def test_a_read_whose_replies_are_lost_fails_without_an_unknown_outcome(
    jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock, action: int
) -> None:
    faults(jdb_server, drop_next_replies=4)  # every attempt of NO_WAIT is handled and its reply dropped
    with pytest.raises(JdbTransportError) as info:
        _read(jdb_client, clock, action)
    message = str(info.value)
    assert message.startswith(f"jdb: 127.0.0.1:{jdb_server.port}: action {action}: ")
    assert "the connection closed without a reply" in message
    assert "outcome" not in message
    assert jdb_client.action_counts[action] == 1 and jdb_client.http.request_counts["POST /apiRequest.do"] == 4


def test_a_read_whose_reply_is_lost_once_is_asked_again(jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock) -> None:
    faults(jdb_server, drop_next_replies=1)
    assert events(jdb_client, clock) == []
    assert jdb_client.http.request_counts["POST /apiRequest.do"] == 2


def test_a_write_whose_reply_is_lost_says_the_outcome_is_unknown(
    jdb_server: EmulatorServer, jdb_client: JdbClient, clock: Clock
) -> None:
    created = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="fs-lost-write")
    faults(jdb_server, drop_next_replies=1)
    with pytest.raises(JdbTransportError) as info:
        jdb_client.update_event(agent=AGENT, event_id=created.event_id, draft=draft(clock, name="Renamed"))
    assert str(info.value) == (
        f"jdb: 127.0.0.1:{jdb_server.port}: action 77: the connection closed without a reply; the outcome is unknown"
    )
    assert jdb_client.action_counts[77] == 1  # not repeated: the caller reads the event back


@pytest.mark.parametrize("jdb_mode", ["extended"])  # reads undocumented Action 76 fields
def test_update_and_unbind(jdb_client: JdbClient, clock: Clock) -> None:
    created = jdb_client.create_event(
        agent=AGENT, draft=draft(clock), transaction_id="fs-4", players=["player00001", "player00002"]
    )
    jdb_client.update_event(agent=AGENT, event_id=created.event_id, draft=draft(clock, bet="3.5", name="Renamed"))
    jdb_client.unbind_players(agent=AGENT, event_id=created.event_id, players=["player00002"])
    [event] = events(jdb_client, clock)
    assert (event["name"], event["bet"], event["numberOfPlayers"]) == ("Renamed", "3.500", 1)


# -- 50,000 players per call ------------------------------------------------------------------
def test_binding_at_the_real_chunk_size(jdb_emulator: JdbEmulator, jdb_client: JdbClient, clock: Clock) -> None:
    players = [f"bulk{i:06d}" for i in range(60_001)]
    jdb_emulator.register_players(AGENT, players)
    with pytest.raises(ValueError):
        jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="big", players=players)
    created = jdb_client.create_event(agent=AGENT, draft=draft(clock), transaction_id="big", players=players[:50_000])
    result = jdb_client.bind_players(agent=AGENT, event_id=created.event_id, players=players + ["ghost"])
    assert jdb_client.action_counts[74] == 2  # 50,000 + 10,002
    assert result.not_existed == ("ghost",) and result.failed == ()
    assert events(jdb_client, clock)[0]["numberOfPlayers"] == 60_001

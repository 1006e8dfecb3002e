"""Pending is its own state: BestProxy may not list a new account for up to its 5-minute window
(emulator knob ``list_delay_seconds``, with the emulator's clock moved by the test — no real
waiting). A re-apply inside the window plans the account again; its add is refused as existing,
and the account, answered for by a ``proxy-account/change`` that changes nothing, is reported
``pending``: nothing written, no failure, exit 0. After the window it is listed — or, if it is
really gone, created as any absent account. With the knob off nothing is pending; a username held
by a delete made in the last 5 minutes is no pending account (docs/kinds/proxy-account.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.bestproxy.conftest import Workspace, account_doc, bestproxy_workspace

WINDOW = 300.0
NAMES = ["game01", "game02", "game03"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **knobs: float) -> Iterator[Workspace]:
    for ws in bestproxy_workspace(tmp_path, monkeypatch, knobs=dict(knobs)):
        ws.emulator.clock = Clock()
        yield ws


@pytest.fixture
def delayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    yield from workspace(tmp_path, monkeypatch, list_delay_seconds=WINDOW)


@pytest.fixture(params=[0.0, WINDOW], ids=["listed-at-once", "listed-after-5-min"])
def either(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    yield from workspace(tmp_path, monkeypatch, list_delay_seconds=request.param)


def manifests(ws: Workspace) -> None:
    ws.write("manifests/a.yaml", "---\n".join(account_doc(n, trafficLimitGb=2, enabled=n != "game03") for n in NAMES))


def later(ws: Workspace, seconds: float) -> None:
    ws.emulator.clock.now += seconds  # type: ignore[attr-defined]


def rows(ws: Workspace) -> dict[str, dict]:
    """The stored accounts, without the usage counter (server-owned: every list call moves it)."""
    out = {}
    for n in NAMES:
        row = ws.emulator.account_record(n)
        if row:
            out[n] = {k: v for k, v in row.items() if k != "usage_flow"}
    return out


def test_a_re_apply_inside_the_window_reports_pending_and_writes_nothing(either: Workspace) -> None:
    ws = either
    manifests(ws)
    first = ws.cli("apply", "--auto-approve")
    assert first.exit_code == 0, first.stdout + first.stderr
    made = rows(ws)
    assert sorted(made) == NAMES and {r["limit_flow"] for r in made.values()} == {2}

    again = ws.cli("apply", "--auto-approve")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "FAILED" not in again.stdout and "5 minutes" not in again.stderr
    if ws.emulator.list_delay_seconds:
        for n in NAMES:
            assert (
                f"PENDING create ProxyAccount/{n}: BestProxy answers that the account exists but does not "
                "list it yet" in again.stdout
            )
        assert "Pending: 3" in again.stdout
    else:
        assert "PENDING" not in again.stdout and "No changes" in again.stdout
    assert rows(ws) == made  # nothing was written: same rows, same passwords, limits and status

    later(ws, WINDOW + 1)
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "No changes" in plan.stdout


def test_after_the_window_an_unlisted_account_is_a_real_absence(delayed: Workspace) -> None:
    ws = delayed
    manifests(ws)
    assert ws.cli("apply", "--auto-approve").exit_code == 0
    later(ws, WINDOW + 1)
    ws.api("/gateway/whitelist-account/delete", accounts="game02")  # gone for real
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "ok      create ProxyAccount/game02" in res.stdout and "PENDING" not in res.stdout
    assert ws.emulator.account_record("game02") is not None


def test_a_username_held_by_a_recent_delete_is_not_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for ws in workspace(tmp_path, monkeypatch, settle_seconds=WINDOW):
        manifests(ws)
        assert ws.cli("apply", "--auto-approve").exit_code == 0
        ws.api("/gateway/whitelist-account/delete", accounts="game02")
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "FAILED  create ProxyAccount/game02" in res.stdout and "PENDING" not in res.stdout
        assert "retry after 5 minutes" in res.stdout
        later(ws, WINDOW + 1)
        assert ws.cli("apply", "--auto-approve").exit_code == 0
        assert ws.emulator.account_record("game02") is not None


def test_a_lost_add_reply_inside_the_window_is_pending_then_finished(delayed: Workspace) -> None:
    """The add's reply is lost; reading back cannot see the accounts yet, the add sent again is
    refused as existing: pending, not failed, and nothing made twice. The next apply after the
    window sets what the follow-up calls would have set."""
    ws = delayed
    manifests(ws)
    ws.emulator.set_faults({"drop_next_writes": 1})
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.count("PENDING create ProxyAccount/") == 3 and "FAILED" not in res.stdout
    assert sorted(rows(ws)) == NAMES
    later(ws, WINDOW + 1)
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert {r["limit_flow"] for r in rows(ws).values()} == {2} and rows(ws)["game03"]["status"] == 0
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0

"""Money guardrails (issue 27): every plan states the promotional exposure its free-spin changes
grant (players x spins x bet, and the withdrawal ceiling), totals per connection and currency come
first, and trusted budgets gate it like a threshold until approved. Every test runs the real CLI
against the JDB emulator over HTTP; figures are checked against a hand computation with Decimal."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.render import MARKDOWN_LIMIT

from .conftest import AGENT, JdbWorkspace
from .test_free_spin_event import apply, event_doc

PLAYERS = ["player00001", "player00002", "player00003"]


def _config(ws: JdbWorkspace, budgets: str = "", currency: str = "RB", secrets: str = "secrets") -> str:
    """The workspace's reconciler.yaml with providers.jdb.currency (a YAML scalar) and budgets."""
    return (
        f"apiVersion: reconciler/v1\nkind: Config\nproviders:\n  jdb:\n    base_url: {ws.server.url}\n"
        f"    dc: sbx\n    key: file:{secrets}/jdb_key\n    iv: file:{secrets}/jdb_iv\n"
        f"    retry_wait_initial: 0\n    currency: {currency}\n"
        + (f"settings:\n  exposure_budgets:\n{budgets}" if budgets else "")
    )


def _use(ws: JdbWorkspace, budgets: str = "", currency: str = "RB") -> None:
    (ws.root / "reconciler.yaml").write_text(_config(ws, budgets, currency), encoding="utf-8")


BUDGET = """\
    default:
      RB:
        max_stake_per_apply: "10000"
        max_stake_per_event: "5000"
        allow_unbounded_withdrawal: false
"""


def _plan_json(ws: JdbWorkspace, *flags: str) -> dict[str, Any]:
    res = ws.cli("plan", "--format", "json", *flags)
    assert res.exit_code == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert isinstance(data, dict)
    return data


def test_two_new_events_match_a_hand_computation(ws: JdbWorkspace) -> None:
    _use(ws)
    ws.write(
        "manifests/events.yaml",
        event_doc(ws)
        + "---\n"
        + event_doc(
            ws, "autumn", name="Autumn spins", times=20, bet="0.125", players=["player00004", "player00005"], maxWithdrawal="-1"
        ),
    )
    data = _plan_json(ws)
    by = {c["key"]: c["exposure"] for c in data["changes"]}
    # spring: 3 players x 10 spins x 2.5 = 75; ceiling 3 x 100 = 300. autumn: 2 x 20 x 0.125 = 5; no cap
    assert by["spring"] == {
        "currency": "RB",
        "players_before": 0,
        "players_after": 3,
        "stake_before": "0",
        "stake_after": "75",
        "stake_added": "75",
        "ceiling_before": "0",
        "ceiling_after": "300",
        "upper_bounds": [],
    }
    assert (by["autumn"]["stake_after"], by["autumn"]["ceiling_after"]) == ("5", "unbounded")
    [total] = data["exposure"]["totals"]
    assert (total["connection"], total["currency"], total["events"]) == ("default", "RB", 2)
    assert (total["stake_added"], total["stake_after"], total["ceiling_after"]) == ("80", "80", "unbounded")
    text = ws.cli("plan").stdout
    lines = text.splitlines()
    head = lines.index(next(x for x in lines if x.startswith("Exposure RB on jdb/default")))
    assert head < next(i for i, x in enumerate(lines) if x.startswith("+ create"))  # totals before the changes
    assert "Exposure RB on jdb/default: 2 event(s); stake 0 -> 80, adds 80; withdrawal ceiling after unbounded" in text
    assert "exposure RB: stake 0 -> 75 (adds 75); withdrawal ceiling 0 -> 300; players 0 -> 3" in text
    md = ws.cli("plan", "--format", "markdown").stdout
    # the first thing after the title is the money
    assert html.unescape(md.splitlines()[2]).startswith("**Exposure RB on jdb/default: 2 event(s); stake 0 -> 80"), md[:300]
    assert "<summary>+ create <code>FreeSpinEvent/spring</code> — 3 player(s) — stake 75 RB</summary>" in html.unescape(md)


def _bound_event(ws: JdbWorkspace) -> None:
    """An event bound to three players, applied from a saved plan (base.json: the last applied one,
    which a pull-request plan names with --last-applied to see fields JDB does not return)."""
    _use(ws, BUDGET)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS))
    assert ws.cli("plan", "--out", "base.json").exit_code == 0
    apply(ws, "base.json")


def test_raising_times_10_to_1000_is_refused_over_budget_and_applied_with_approval(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000, allowReplace=True))
    plan = ws.cli("plan", "--out", "plan.json")
    # 3 players x 1,000 spins x 2.5 = 7,500 > 5,000 per event (a replace is a whole new grant)
    assert "unsafe: settings.exposure_budgets.default.RB.max_stake_per_event 5,000 RB: 1 event(s) over it" in plan.stdout
    assert "FreeSpinEvent/spring 7,500 RB" in plan.stdout
    assert (
        "exposure RB: stake unknown -> 7,500 (adds 7,500)" in plan.stdout
        or "exposure RB: stake 75 -> 7,500 (adds 7,500)" in plan.stdout
    )
    refused = ws.cli("apply", "--auto-approve")
    assert refused.exit_code == 1 and "max_stake_per_event 5,000 RB" in refused.stderr
    assert [e["times"] for e in ws.live()] == [10]
    refused = ws.cli("apply", "--auto-approve", "plan.json")
    assert refused.exit_code == 1 and "max_stake_per_event 5,000 RB" in refused.stderr
    assert [e["times"] for e in ws.live()] == [10]
    # approval at plan time: recorded in the saved plan, under its signature
    approved = ws.cli("plan", "--out", "approved.json", "--approve-exposure")
    assert approved.exit_code == 0 and "approved over budget: settings.exposure_budgets.default.RB" in approved.stdout
    saved = json.loads(Path("approved.json").read_text(encoding="utf-8"))
    assert saved["approve_exposure"] is True and saved["exposure"]["approved"] is True
    tampered = dict(saved, approve_exposure=False)
    Path("tampered.json").write_text(json.dumps(tampered), encoding="utf-8")
    assert "signature does not match" in ws.cli("apply", "--auto-approve", "tampered.json").stderr
    Path("forged.json").write_text(
        json.dumps(dict(json.loads(Path("plan.json").read_text()), approve_exposure=True)), encoding="utf-8"
    )
    forged = ws.cli("apply", "--auto-approve", "forged.json")
    assert forged.exit_code == 1 and "signature does not match" in forged.stderr
    assert [e["times"] for e in ws.live()] == [10]
    done = ws.cli("apply", "--auto-approve", "approved.json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert [e["times"] for e in ws.live()] == [1000]


def test_approval_on_apply_from_manifests(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000, allowReplace=True))
    assert ws.cli("apply", "--auto-approve").exit_code == 1
    apply(ws, "--approve-exposure")
    assert [e["times"] for e in ws.live()] == [1000]


def test_a_removed_cap_shows_unbounded_and_is_refused_where_not_allowed(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, maxWithdrawal="-1"))
    plan = ws.cli("plan", "--last-applied", "base.json", "--out", "pr.json")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert re.search(r"exposure RB: stake \S+ -> 75 \(adds [^)]*\); withdrawal ceiling \S+ -> unbounded", plan.stdout), (
        plan.stdout
    )
    assert (
        "unsafe: settings.exposure_budgets.default.RB.allow_unbounded_withdrawal is false: withdrawal ceiling "
        'unbounded (maxWithdrawal "-1") for FreeSpinEvent/spring'
    ) in plan.stdout
    saved = json.loads(Path("pr.json").read_text(encoding="utf-8"))
    assert saved["changes"][0]["exposure"]["ceiling_after"] == "unbounded"
    assert saved["exposure"]["over_budget"] and saved["exposure"]["approved"] is False
    refused = ws.cli("apply", "--auto-approve", "pr.json")
    assert refused.exit_code == 1 and "allow_unbounded_withdrawal is false" in refused.stderr
    assert [e["maxWithdrawal"] for e in ws.live()] == ["100.000"]
    # where the trusted budget allows it, the same change passes
    _use(ws, BUDGET.replace("allow_unbounded_withdrawal: false", "allow_unbounded_withdrawal: true"))
    plan = ws.cli("plan", "--last-applied", "base.json", "--out", "pr.json")
    assert "unsafe:" not in plan.stdout and "-> unbounded" in plan.stdout
    apply(ws, "pr.json")
    assert [e["maxWithdrawal"] for e in ws.live()] == ["-1"]


def test_no_budget_no_gate_but_figures_still_shown(ws: JdbWorkspace) -> None:
    _use(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000))
    res = ws.cli("plan")
    assert "unsafe:" not in res.stdout and "stake 0 -> 7,500" in res.stdout


def test_a_currency_without_a_budget_on_a_budgeted_connection_is_refused(ws: JdbWorkspace) -> None:
    _use(ws, BUDGET, currency="TB")
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS))
    res = ws.cli("plan")
    assert "unsafe: settings.exposure_budgets.default has no budget for currency TB" in res.stdout
    text = _config(ws, BUDGET).replace("    currency: RB\n", "")  # no currency anywhere: unknown
    (ws.root / "reconciler.yaml").write_text(text, encoding="utf-8")
    res = ws.cli("plan")
    assert "exposure (currency unknown): stake 0 -> 75" in res.stdout
    assert "unsafe: settings.exposure_budgets.default has no budget for currency unknown" in res.stdout


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_an_unreturned_bet_makes_the_before_figure_unknown_not_zero(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, bet="3"))
    data = _plan_json(ws, "--last-applied", "base.json")
    e = data["changes"][0]["exposure"]
    # documented Action 76 carries no bet: the stake before is unknown, the increase at most the stake after
    assert e["stake_before"] is None and e["stake_after"] == "90" and e["stake_added"] == "90"
    assert "stake_added" in e["upper_bounds"]
    assert data["exposure"]["totals"][0]["unknown"] == {"stake_before": 1}
    assert "stake unknown -> 90 (adds at most 90)" in ws.cli("plan", "--last-applied", "base.json").stdout


def _many(ws: JdbWorkspace, n: int) -> tuple[str, Decimal, Decimal]:
    """n events with 1..3 players, spins 1..50 and bets with 3 decimals; the expected totals."""
    docs, stake, ceiling = [], Decimal(0), Decimal(0)
    for i in range(n):
        players = [f"player{(i % 90000) + 1 + k:05d}" for k in range(i % 3 + 1)]
        times, bet, cap = i % 50 + 1, Decimal(i % 997 + 1) / 1000 + 1, Decimal(i % 7 + 1) * 10
        stake += len(players) * times * bet
        ceiling += len(players) * cap
        docs.append(
            event_doc(ws, f"e{i:05d}", name=f"Event {i}", times=times, bet=str(bet), players=players, maxWithdrawal=str(cap))
        )
    return "---\n".join(docs), stake, ceiling


@pytest.mark.parametrize("jdb_mode", ["documented"])
@pytest.mark.parametrize("n", [2, 2000])
def test_totals_match_a_hand_computation_and_stay_readable(ws: JdbWorkspace, n: int) -> None:
    ws.clock.tick()  # 2,000 events on a loaded machine may take longer than JDB's 30 s ts window
    _use(ws, BUDGET.replace('"10000"', '"1"'))
    text, stake, ceiling = _many(ws, n)
    ws.write("manifests/events.yaml", text)
    data = _plan_json(ws)
    [total] = data["exposure"]["totals"]
    assert Decimal(total["stake_added"]) == stake and Decimal(total["stake_after"]) == stake
    assert Decimal(total["ceiling_after"]) == ceiling and total["events"] == n
    assert sum(Decimal(c["exposure"]["stake_after"]) for c in data["changes"]) == stake
    plan = ws.cli("plan")
    lines = plan.stdout.splitlines()
    first = next(i for i, x in enumerate(lines) if x.startswith("Exposure RB"))
    assert first < 12, lines[:15]  # totals first
    assert len(lines) < 400  # per-event lines bounded as the changes are
    assert sum("max_stake_per_apply 1 RB" in x for x in lines) == 1
    md = ws.cli("plan", "--format", "markdown").stdout
    assert len(md) < MARKDOWN_LIMIT and "**Exposure RB on jdb/default" in md.split("Plan:")[0]
    assert f"{n:,} event(s); stake 0 -> " in html.unescape(md)


def test_a_pull_request_cannot_loosen_its_budget(ws: JdbWorkspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The budgets are trusted settings: with RECONCILER_CONNECTIONS_FROM they come from the
    trusted file, and a reconciler.yaml that raises them gets the 'changes trusted setting' warning."""
    _bound_event(ws)
    trusted = tmp_path.parent / f"{tmp_path.name}-trusted.yaml"
    trusted.write_text(_config(ws, BUDGET, secrets=f"{ws.root}/secrets"), encoding="utf-8")
    _use(ws, BUDGET.replace('"5000"', '"9999999"'))
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000, allowReplace=True))
    monkeypatch.setenv("RECONCILER_CONNECTIONS_FROM", str(trusted))
    plan = ws.cli("plan")
    assert "reconciler.yaml changes trusted setting settings.exposure_budgets; the trusted value is used" in plan.stdout
    assert "unsafe: settings.exposure_budgets.default.RB.max_stake_per_event 5,000 RB" in plan.stdout
    assert ws.cli("apply", "--auto-approve").exit_code == 1
    assert [e["times"] for e in ws.live()] == [10]


def test_values_in_exposure_lines_are_one_line(ws: JdbWorkspace) -> None:
    """A connection or currency is printed through the one-line escaping like every value."""
    _use(ws, currency='"R\\u2028B"')
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS))
    out = ws.cli("plan").stdout
    assert "Exposure R\\u2028B on jdb/default" in out and "\u2028" not in out
    assert AGENT


def test_drift_reports_live_exposure_against_the_budgets(ws: JdbWorkspace, jdb_mode: str) -> None:
    _bound_event(ws)
    _use(ws, BUDGET.replace('"5000"', '"50"'))
    res = ws.cli("plan", "--drift", "--baseline", "base.json", "--format", "json")
    # no drift; in documented mode the bet cannot be compared, so the check is incomplete (exit 5)
    assert res.exit_code == (5 if jdb_mode == "documented" else 0), res.stdout + res.stderr
    live = json.loads(res.stdout)["live_exposure"]
    # 3 players x 10 spins x 2.5 = 75 stake, 3 x 100 = 300 ceiling (fields JDB does not return come
    # from the last applied plan, and the report says so)
    [total] = live["totals"]
    assert (total["stake"], total["ceiling"], total["events"]) == ("75", "300", 1)
    assert live["over_budget"] == [
        "settings.exposure_budgets.default.RB.max_stake_per_event 50 RB: live FreeSpinEvent/spring 75 RB"
    ]
    text = ws.cli("plan", "--drift", "--baseline", "base.json")
    assert "Live exposure RB on jdb/default: 1 event(s); stake 75; withdrawal ceiling 300" in text.stderr
    assert "Live over budget: settings.exposure_budgets.default.RB.max_stake_per_event 50 RB" in text.stderr


@pytest.mark.parametrize("jdb_mode", ["documented"])
def test_drift_without_a_baseline_says_unknown_where_jdb_returns_no_bet(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    res = ws.cli("plan", "--drift")
    assert (
        "Live exposure RB on jdb/default: 1 event(s); stake 0; withdrawal ceiling 0 (ceiling unknown for 1, "
        "stake unknown for 1: not in these sums)" in res.stderr
    )
    assert "live stake unknown for FreeSpinEvent/spring" in res.stderr


def test_show_carries_the_figures_and_the_schema_documents_them(ws: JdbWorkspace) -> None:
    _use(ws, BUDGET)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000))
    assert ws.cli("plan", "--out", "plan.json").exit_code == 0
    shown = ws.cli("show", "plan.json")
    assert "Exposure RB on jdb/default: 1 event(s); stake 0 -> 7,500, adds 7,500" in shown.stdout
    assert "exposure RB: stake 0 -> 7,500 (adds 7,500)" in shown.stdout
    md = html.unescape(ws.cli("show", "plan.json", "--format", "markdown").stdout)
    assert md.splitlines()[2].startswith("**Exposure RB on jdb/default: 1 event(s); stake 0 -> 7,500")
    data = json.loads(ws.cli("show", "plan.json", "--format", "json").stdout)
    assert data["exposure"]["totals"][0]["stake_added"] == "7500"
    assert data["exposure"]["over_budget"][0].startswith("settings.exposure_budgets.default.RB.max_stake_per_event")
    schema = json.loads(ws.cli("schema", "plan").stdout)
    change = schema["$defs"]["ChangeExposureModel"]["properties"]
    assert {"stake_before", "stake_after", "stake_added", "ceiling_before", "ceiling_after", "currency"} <= set(change)
    assert "unknown" in schema["$defs"]["ChangeExposureModel"]["description"]
    assert {"totals", "budgets", "over_budget", "approved"} <= set(schema["$defs"]["ExposureModel"]["properties"])
    import jsonschema

    jsonschema.validate(json.loads(Path("plan.json").read_text(encoding="utf-8")), schema)


def test_a_float_budget_is_refused(ws: JdbWorkspace) -> None:
    _use(ws, "    default:\n      RB:\n        max_stake_per_event: 100.5\n")
    res = ws.cli("validate")
    assert res.exit_code == 1 and "settings.exposure_budgets.default.RB.max_stake_per_event" in res.stderr


def test_force_passes_a_budget_as_it_passes_a_threshold(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000, allowReplace=True))
    out = apply(ws, "--force")
    assert "unsafe: settings.exposure_budgets.default.RB.max_stake_per_event" in out
    assert [e["times"] for e in ws.live()] == [1000]


def test_apply_json_states_the_exposure_it_refuses(ws: JdbWorkspace) -> None:
    _bound_event(ws)
    ws.write("manifests/events.yaml", event_doc(ws, players=PLAYERS, times=1000, allowReplace=True))
    res = ws.cli("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 1
    first = json.loads(res.stdout.splitlines()[0])
    assert first["type"] == "plan" and first["exposure"]["totals"][0]["stake_added"] == "7500"
    assert first["unsafe"][0].startswith("settings.exposure_budgets.default.RB.max_stake_per_event 5,000 RB")

"""Signed means all of it (issue #21 item 5): everything apply uses to make its fresh plan — the
baseline included — is under the plan's signature; ``--last-applied`` and ``--baseline`` files are
signature-checked; a plan made for one environment or connection set does not apply to another.
Each test runs the real CLI against the emulators and compares their whole state before and after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import (
    TCAPLUS_PROTOS,
    Emulators,
    Repo,
    account,
    config_text,
    event_doc,
)
from tests.security.test_saved_plans import _state


def _ws(repo: Repo, em: Emulators) -> Repo:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(em))
    return repo


def _edit(path: Path, **fields: Any) -> None:
    plan = json.loads(path.read_text(encoding="utf-8"))
    plan.update(fields)
    path.write_text(json.dumps(plan), encoding="utf-8")


def test_a_forged_baseline_on_a_reviewed_no_changes_plan_is_refused(repo: Repo, emulators: Emulators) -> None:
    """The reviewed plan says "no changes". A baseline is added to it in the artifact store (one
    that claims the event's unreturned fields were different, so a fresh plan would update it),
    with the changes that fresh plan would make: apply refuses it and writes nothing."""
    ws = _ws(repo, emulators)
    ws.write("manifests/e.yaml", event_doc())
    assert ws.run("apply", "--auto-approve").code == 0
    assert ws.run("plan", "--out", "applied.json").code == 0  # the state the event is in
    assert ws.run("plan", "--out", "plan.json").code == 0
    reviewed = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))
    assert reviewed["changes"] == [] and reviewed["signature"].startswith("hmac-sha256:")
    before = _state(emulators)
    resource = "FreeSpinEvent/pr-event"
    forged_baseline = {"resources": {resource: "sha256:" + "0" * 32}, "desired": {resource: {"times": 99, "name": "forged"}}}
    # with the changes a fresh plan against that baseline would hold, and without them
    for extra in (
        {},
        {
            "changes": [
                dict(c, action="update") for c in json.loads((ws.root / "applied.json").read_text(encoding="utf-8"))["changes"]
            ]
        },
    ):
        _edit(ws.root / "plan.json", **reviewed)
        _edit(ws.root / "plan.json", baseline=forged_baseline, **extra)
        r = ws.run("apply", "plan.json")
        assert r.code == 1, r.output
        assert "its signature does not match how it says it was made" in r.stderr and "baseline" in r.stderr, r.stderr
        assert _state(emulators) == before
        ws.assert_no_secret(r)
    # positive control: the plan as reviewed applies (nothing to do)
    _edit(ws.root / "plan.json", **{**reviewed, "baseline": None})
    ok = ws.run("apply", "plan.json")
    assert ok.code == 0, ok.output


@pytest.mark.parametrize("flag", ["--last-applied", "--baseline"])
def test_a_tampered_last_applied_or_baseline_file_is_refused(repo: Repo, emulators: Emulators, flag: str) -> None:
    ws = _ws(repo, emulators)
    ws.write("manifests/bp.yaml", account())
    assert ws.run("plan", "--out", "applied.json").code == 0
    assert ws.run("apply", "applied.json").code == 0
    extra = ["--drift"] if flag == "--baseline" else []
    ok = ws.run("plan", *extra, flag, "applied.json")
    assert ok.code == 0, ok.output  # positive control: the file as it was signed is accepted
    applied = json.loads((ws.root / "applied.json").read_text(encoding="utf-8"))
    tampered = [
        {"resources": {**applied["resources"], "ProxyAccount/pr01": "sha256:" + "1" * 32}},
        {
            "changes": [
                dict(c, data=dict(c["data"], desired=dict(c["data"]["desired"], remark="forged"))) for c in applied["changes"]
            ]
        },
        {"baseline": {"resources": {}, "desired": {"ProxyAccount/pr01": {"remark": "forged"}}}},
        {"signature": None},
    ]
    for edit in tampered:
        path = ws.root / "edited.json"
        path.write_text(json.dumps({**applied, **edit}), encoding="utf-8")
        r = ws.run("plan", *extra, flag, "edited.json")
        assert r.code == 1, (edit, r.output)
        assert "edited.json: its signature does not match" in r.stderr, r.stderr
        assert "give the plan file that was applied, or none" in r.stderr
        ws.assert_no_secret(r)


def test_an_edited_desired_payload_in_a_last_applied_file_is_refused(repo: Repo, emulators: Emulators) -> None:
    """The desired payloads a baseline contributes (fields the vendor does not return are compared
    against them) are signed with the plan: an edited one refuses the file."""
    ws = _ws(repo, emulators)
    ws.write("manifests/bp.yaml", account())
    assert ws.run("plan", "--out", "applied.json").code == 0
    assert ws.run("apply", "applied.json").code == 0
    applied = json.loads((ws.root / "applied.json").read_text(encoding="utf-8"))
    edited = [dict(c, data=dict(c["data"], desired=dict(c["data"]["desired"], dailyLimitGb=77))) for c in applied["changes"]]
    (ws.root / "edited.json").write_text(json.dumps({**applied, "changes": edited}), encoding="utf-8")
    for args in (
        ["plan", "--last-applied", "edited.json"],
        ["plan", "--drift", "--baseline", "edited.json"],
        ["apply", "edited.json"],
    ):
        r = ws.run(*args)
        assert r.code == 1 and "edited.json: its signature does not match" in r.stderr, (args, r.output)


ENVIRONMENTS = """\
connections:
  bestproxy:
    staging: {{base_url: {staging}, app_key: env:BESTPROXY_APP_KEY, retry_attempts: 1}}
    production: {{base_url: {production}, app_key: env:BESTPROXY_APP_KEY, retry_attempts: 1}}
environments:
  staging: {{connections: {{bestproxy: staging}}}}
  production: {{connections: {{bestproxy: production}}}}
"""


def test_a_plan_for_one_environment_is_refused_for_another(repo: Repo, emulators: Emulators) -> None:
    url = emulators.bestproxy.url
    ws = repo
    ws.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    ws.write("reconciler.yaml", config_text(emulators, extra=ENVIRONMENTS.format(staging=url, production=url)))
    ws.write("manifests/bp.yaml", account())
    assert ws.run("plan", "--env", "staging", "--out", "plan.json").code == 0
    before = _state(emulators)
    r = ws.run("--env", "production", "apply", "plan.json")
    assert r.code == 1 and "was planned for environment staging" in r.stderr, r.output
    # the plan file edited to say production: its signature no longer matches
    reviewed = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))
    _edit(
        ws.root / "plan.json",
        environment="production",
        connections=["bestproxy/production"],
        changes=[dict(c, connection="production") for c in reviewed["changes"]],
    )
    r = ws.run("apply", "plan.json")
    assert r.code == 1 and "its signature does not match" in r.stderr, r.output
    assert _state(emulators) == before
    ws.assert_no_secret(r)


def test_a_plan_for_one_connection_set_is_refused_on_another(repo: Repo, emulators: Emulators) -> None:
    """The same environment name and config file, but the trusted connections (the target branch's
    file) now send "staging" somewhere else: the plan was made for other connections, refused."""
    url = emulators.bestproxy.url
    other = url.replace("127.0.0.1", "127.0.0.2")  # loopback too, another address: another connection set
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    config = config_text(emulators, extra=ENVIRONMENTS.format(staging=url, production=url))
    repo.write("reconciler.yaml", config)
    repo.write("manifests/bp.yaml", account())
    trusted = repo.ci / "trusted.yaml"
    trusted.write_text(config, encoding="utf-8")
    assert repo.run("plan", "--env", "staging", "--out", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted)).code == 0
    before = _state(emulators)
    trusted.write_text(config_text(emulators, extra=ENVIRONMENTS.format(staging=other, production=url)), encoding="utf-8")
    r = repo.run("apply", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 1, r.output
    assert "plan.json: made for other connection settings than this run's (environment staging: bestproxy/staging" in r.stderr, (
        r.stderr
    )
    assert _state(emulators) == before
    # positive control: with the connections it was made for, it applies
    trusted.write_text(config, encoding="utf-8")
    ok = repo.run("apply", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert ok.code == 0, ok.output
    repo.assert_no_secret(r, ok)

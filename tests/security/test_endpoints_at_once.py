"""Issue 23: every unapproved endpoint of a run is reported at once (one line each), before any
request — not one per run, fixed and re-run."""

from __future__ import annotations

from tests.security.conftest import (
    TCAPLUS_PROTOS,
    Attacker,
    Emulators,
    Repo,
    account,
    config_text,
    event_doc,
    players_record,
    records_doc,
)


def test_every_unapproved_endpoint_is_reported_at_once(repo: Repo, emulators: Emulators, attacker: Attacker) -> None:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    url = f"http://attacker.test:{attacker.port}"
    repo.write("reconciler.yaml", config_text(emulators, bestproxy=url, tcaplus=url, jdb=url))
    repo.write("manifests/accounts.yaml", account())
    repo.write("manifests/records.yaml", records_doc("pr-records", [players_record(1)]) + "\n")
    repo.write("manifests/events.yaml", event_doc())
    r = repo.run_process("plan", attacker=attacker)
    assert r.code == 1, r.output
    lines = [line for line in r.stderr.splitlines() if "is not an approved" in line]
    assert len(lines) == 3, r.stderr
    for vendor in ("bestproxy", "tcaplus", "jdb"):
        assert any(
            f"Config providers.{vendor}.base_url: host attacker.test is not an approved {vendor} endpoint" in line
            for line in lines
        ), r.stderr
    assert attacker.requests == []
    repo.assert_no_secret(r)

"""A trusted configuration (issue #21 items 2 and 3): with ``RECONCILER_CONNECTIONS_FROM`` (the
target branch's ``reconciler.yaml``) a pull request may change what is declared, never what the job
trusts — connections, tables, which connection an environment targets, the fingerprint key,
``manifest_secret_env`` and the thresholds. A changed trusted part gets a warning and its trusted
value; reads stay inside what the trusted side lists; endpoint approvals are per vendor and plain
``http://`` is approved only explicitly; no plan holds a secret-dependent value an attacker can
test offline. Every test runs the real CLI against the emulators and searches its output and every
file it wrote for the canary secrets."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.manifest.secrets import Fingerprinter
from tests.security.conftest import (
    BP_APP_KEY,
    MANIFEST_PW,
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

KNOWN_KEY = "a-key-the-pull-request-knows"
TRUSTED_KEY = "CanaryTrustedFingerprintKey9"


def _ws(repo: Repo, em: Emulators, **config: Any) -> Path:
    """The pull request's checkout, and the target branch's config written outside it."""
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(em, **config))
    trusted = repo.ci / "target-branch.yaml"
    trusted.write_text(config_text(em), encoding="utf-8")
    return trusted


def _requests(em: Emulators) -> dict[str, int]:
    out: dict[str, int] = {}
    for server in (em.bestproxy, em.tcaplus, em.jdb):
        for path, n in httpx.get(server.url + "/_sandbox/stats").json().items():
            if "/_sandbox/" not in path:
                out[path] = out.get(path, 0) + n
    return out


def _accounts(em: Emulators) -> list[dict[str, Any]]:
    return list(
        httpx.get(em.bestproxy.url + "/gateway/whitelist-account/list", params={"app_key": BP_APP_KEY}).json()["data"]["list"]
    )


PR_SETTINGS = """\
settings:
  fingerprint_key: file:fp.txt
  manifest_secret_env: ["*"]
  max_change_ratio: 1.0
  threshold_min_existing: 1000
"""


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_a_pull_request_changing_trusted_settings_gets_a_warning_and_the_trusted_values(
    repo: Repo, emulators: Emulators, fmt: str
) -> None:
    trusted = _ws(
        repo,
        emulators,
        extra=PR_SETTINGS,
        tables="game_players: {proto: tables/game_players.proto}\n      extra_table: {proto: tables/game_players.proto, message: game_players}",
    )
    repo.write("fp.txt", KNOWN_KEY)
    repo.write("manifests/bp.yaml", account())
    r = repo.run_process("plan", "--out", "plan.json", "--format", fmt, RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 0, r.output
    shown = html.unescape(r.stdout) if fmt == "markdown" else r.stdout
    for part in (
        "settings.fingerprint_key",
        "settings.manifest_secret_env",
        "settings.max_change_ratio",
        "settings.threshold_min_existing",
        "providers.tcaplus.tables.extra_table",
    ):
        line = f"reconciler.yaml changes trusted setting {part}; the trusted value is used"
        assert line in shown, (part, shown)
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    assert any("settings.fingerprint_key" in w for w in plan["warnings"])
    # the fingerprint key the pull request chose is not used: its HMAC of the password is nowhere
    known = Fingerprinter(KNOWN_KEY.encode())(MANIFEST_PW)
    assert known not in r.output and known.encode() not in repo.written_bytes()
    assert plan["changes"][0]["data"]["password_fingerprint"].startswith("hmac-sha256:")
    repo.assert_no_secret(r)


def test_the_trusted_fingerprint_key_and_secret_scope_are_used(repo: Repo, emulators: Emulators) -> None:
    """Positive control: the fingerprint in the plan is the trusted key's (RECONCILER_FINGERPRINT_KEY
    wins); the widened manifest_secret_env of the pull request lets no other variable through."""
    trusted = _ws(repo, emulators, extra=PR_SETTINGS)
    repo.write("fp.txt", KNOWN_KEY)
    repo.write("manifests/bp.yaml", account())
    r = repo.run_process(
        "plan", "--out", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted), RECONCILER_FINGERPRINT_KEY=TRUSTED_KEY
    )
    assert r.code == 0, r.output
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    assert plan["changes"][0]["data"]["password_fingerprint"] == Fingerprinter(TRUSTED_KEY.encode())(MANIFEST_PW)
    repo.write("manifests/bp.yaml", account(password="env:OTHER_JOB_SECRET"))
    r = repo.run_process("plan", RECONCILER_CONNECTIONS_FROM=str(trusted), OTHER_JOB_SECRET="JobSecret123")
    assert r.code == 1, r.output
    assert "manifests may reference only environment variables matching settings.manifest_secret_env (RECONCILER_*)" in r.stderr
    assert "JobSecret123" not in r.output
    assert _accounts(emulators) == []


def test_a_table_the_trusted_side_does_not_list_is_an_error_before_any_request(repo: Repo, emulators: Emulators) -> None:
    """The pull request adds a table (and a prune over all of it) to its own reconciler.yaml: the
    trusted side does not list it, so nothing is read — not one request reaches any emulator."""
    trusted = _ws(
        repo,
        emulators,
        tables="game_players: {proto: tables/game_players.proto}\n"
        "      never_managed: {proto: tables/game_players.proto, message: game_players}",
    )
    doc = json.loads(records_doc("grab", [players_record(1)], prune={"index": "index_2", "keys": {"player_id": 1}}))
    doc["spec"]["table"] = "never_managed"
    repo.write("manifests/r.yaml", json.dumps(doc))
    r = repo.run_process("plan", "--format", "markdown", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 1, r.output
    assert re.search(
        r"manifests/r\.yaml:\d+:\d+: TcaplusRecords/grab spec\.table: table 'never_managed' is not in "
        r"providers\.tcaplus\.tables \(known: game_players\)",
        r.stderr,
    ), r.stderr
    assert _requests(emulators) == {}
    repo.assert_no_secret(r)


def _tcaplus_set(em: Emulators, record: dict[str, Any]) -> None:
    from reconciler.vendors.tcaplus.client import TcaplusClient
    from tests.security.conftest import TC_PASSWORD

    client = TcaplusClient(em.tcaplus.url, app_id=2, zone_id=1, password=TC_PASSWORD)
    try:
        client.set("game_players", record)
    finally:
        client.close()


def test_pull_request_markdown_shows_prune_candidates_as_keys_and_counts(repo: Repo, emulators: Emulators) -> None:
    """A prune over rows nobody declared: the pull-request comment names them and counts their
    fields, but no live value reaches it (the trusted run's JSON plan keeps them)."""
    trusted = _ws(repo, emulators)
    _tcaplus_set(emulators, players_record(7, game_server_id=987654321))  # a live value (not part of the key)
    repo.write("manifests/r.yaml", records_doc("r", [], prune={"index": "index_2", "keys": {"player_id": 7}}))
    pr = repo.run_process("plan", "--format", "markdown", "--out", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert pr.code == 0, pr.output
    assert "delete" in pr.stdout and "not shown in a pull-request plan" in pr.stdout, pr.stdout
    assert "987654321" not in pr.stdout
    assert "p7" in pr.stdout  # the key is shown
    shown = repo.run_process("show", "plan.json", "--format", "markdown")
    assert "not shown in a pull-request plan" in shown.stdout and "987654321" not in shown.stdout
    # the text plan (the job's log) and `show` of the saved plan likewise
    for text in (repo.run_process("plan", RECONCILER_CONNECTIONS_FROM=str(trusted)), repo.run_process("show", "plan.json")):
        assert text.code == 0 and "- delete" in text.stdout, text.output
        assert "not shown in a pull-request plan" in text.stdout and "987654321" not in text.stdout, text.stdout
    # the same plan run by the trusted side (no config under review) shows the values
    trusted_run = repo.run_process("plan", "--format", "markdown")
    assert trusted_run.code == 0 and "987654321" in trusted_run.stdout, trusted_run.output
    assert "987654321" in repo.run_process("plan").stdout


def test_credentials_refused_as_resource_values_come_from_the_trusted_side(repo: Repo, emulators: Emulators) -> None:
    """The pull request drops the JDB connection from its config and widens manifest_secret_env: the
    JDB key (a credential of the trusted config) is still refused as a proxy password."""
    trusted = _ws(repo, emulators, extra='settings: {manifest_secret_env: ["*"]}\n')
    text = (repo.root / "reconciler.yaml").read_text(encoding="utf-8")
    repo.write("reconciler.yaml", text[: text.index("  jdb:")] + 'settings: {manifest_secret_env: ["*"]}\n')
    repo.write("manifests/bp.yaml", account(password="env:JDB_KEY"))
    r = repo.run_process("plan", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 1, r.output
    assert "secret reference env:JDB_KEY: JDB_KEY holds a provider credential" in r.stderr, r.stderr
    assert _requests(emulators) == {}
    repo.assert_no_secret(r)


@pytest.mark.parametrize(
    "name",
    [
        "GH_TOKEN",
        "GITHUB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "RUNNER_TEMP",
        "NPM_TOKEN",
        "SOME_VENDOR_API_KEY",
        "OTHER_APP_KEY",
        "JDB_KEY",
        "STAGING_JDB_IV",
        "PRODUCTION_BESTPROXY_TOTP_SECRET",
    ],
)
def test_ci_and_provider_tokens_are_never_a_manifest_secret(repo: Repo, emulators: Emulators, name: str) -> None:
    """Without a trusted source a pull request may widen manifest_secret_env to "*": a CI token or
    another provider's credential variable is still refused, and no request is made."""
    _ws(repo, emulators, extra='settings: {manifest_secret_env: ["*"]}\n')
    repo.write("manifests/bp.yaml", account(password=f"env:{name}"))
    r = repo.run_process("plan", **{name: "CanaryToken0001"})
    assert r.code == 1, r.output
    assert f"secret reference env:{name}" in r.stderr and "manifests cannot use it" in r.stderr, r.stderr
    assert "CanaryToken0001" not in r.output
    assert _requests(emulators) == {}


def test_a_job_credential_is_refused_by_value_whatever_the_config_under_review_lists(repo: Repo, emulators: Emulators) -> None:
    """No trusted source; the pull request drops the JDB connection from its config and commits a
    file holding the JDB key (as if it had learnt it): the value is still refused as a password,
    because the job's credential variables are refused by value whatever the config lists."""
    _ws(repo, emulators)
    text = (repo.root / "reconciler.yaml").read_text(encoding="utf-8")
    repo.write("reconciler.yaml", text[: text.index("  jdb:")])
    repo.write("pw.txt", "CanaryJdbKey0001")  # == JDB_KEY of the job
    repo.write("manifests/bp.yaml", account(password="file:../pw.txt"))
    r = repo.run_process("plan")
    assert r.code == 1, r.output
    assert "secret reference file:../pw.txt: its value is a provider credential" in r.stderr, r.stderr
    assert _accounts(emulators) == []
    repo.assert_no_secret(r)


def test_in_ci_a_config_chosen_fingerprint_key_is_refused_without_a_trusted_source(repo: Repo, emulators: Emulators) -> None:
    _ws(repo, emulators, extra="settings: {fingerprint_key: file:fp.txt}\n")
    repo.write("fp.txt", KNOWN_KEY)
    repo.write("manifests/bp.yaml", account())
    r = repo.run_process("plan", "--out", "plan.json", CI="true")
    assert r.code == 1, r.output
    assert re.search(
        r"^error: reconciler\.yaml:\d+:\d+: Config settings\.fingerprint_key: a fingerprint key the "
        r"config chooses \(file:fp\.txt\) is refused in CI",
        r.stderr,
        re.M,
    ), r.stderr
    assert _requests(emulators) == {} and not (repo.root / "plan.json").exists()
    # RECONCILER_FINGERPRINT_KEY (a CI secret) is the key whatever the config says: the run works, and warns
    ok = repo.run_process("plan", "--out", "plan.json", CI="true", RECONCILER_FINGERPRINT_KEY=TRUSTED_KEY)
    assert ok.code == 0, ok.output
    assert "settings.fingerprint_key (file:fp.txt) is not used: RECONCILER_FINGERPRINT_KEY is set" in ok.stdout
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    assert plan["changes"][0]["data"]["password_fingerprint"] == Fingerprinter(TRUSTED_KEY.encode())(MANIFEST_PW)
    repo.assert_no_secret(r, ok)


# -- a guessed password ------------------------------------------------------------------------------


def _live_account(em: Emulators, name: str, password: str) -> None:
    body = {"app_key": BP_APP_KEY, "product_type": 9, "accounts": f"{name}:{password}", "remark": "from a PR"}
    got = httpx.post(em.bestproxy.url + "/gateway/whitelist-account/add", json=body).json()
    assert got["code"] == 200, got


@pytest.mark.parametrize("guess_right", [True, False])
def test_a_pull_request_plan_does_not_reveal_whether_a_guessed_password_is_right(
    repo: Repo, emulators: Emulators, guess_right: bool
) -> None:
    """The pull request commits a guess of a live password (a file: reference) and declares the
    account as it is live. The plan is the same byte for byte (but dates) whether the guess is right
    or wrong: the password is not compared, and the plan says so."""
    live = "LivePw1234"
    _live_account(emulators, "pr01", live)
    trusted = _ws(repo, emulators)
    repo.write("guess.txt", live if guess_right else "WrongPw999")
    repo.write("manifests/bp.yaml", account(password="file:../guess.txt"))
    r = repo.run_process("plan", "--out", "plan.json", "--format", "json", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 0, r.output
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    assert plan["changes"] == [] and plan["noops"]["ProxyAccount"] == 1
    assert any("not compared in an untrusted plan" in w for w in plan["warnings"])
    # and the same with another field changed: the update carries no password diff, and a note
    repo.write("manifests/bp.yaml", account(password="file:../guess.txt", remark="edited"))
    r = repo.run_process("plan", "--out", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted))
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    (change,) = plan["changes"]
    assert [d["path"] for d in change["diffs"]] == ["remark"]
    assert "password: (secret; not compared in an untrusted plan)" in change["notes"]
    assert "not compared in an untrusted plan" in r.stdout
    # the live password is in the precondition only under a key derived apart from the one that
    # fingerprints the desired (guessed) value: the two never match, right guess or not
    desired_fp = change["data"]["password_fingerprint"]
    assert desired_fp not in json.dumps(change["precondition"])


def test_a_review_plan_never_writes_an_uncompared_password(repo: Repo, emulators: Emulators) -> None:
    """The saved pull-request plan did not compare the password (a file: reference); applied by the
    trusted job after merge, whose fresh plan does see the password differ, the change is stale:
    nothing is written that the reviewed plan did not show."""
    _live_account(emulators, "pr01", "LivePw1234")
    trusted = _ws(repo, emulators)
    repo.write("guess.txt", "OtherPw999")
    repo.write("manifests/bp.yaml", account(password="file:../guess.txt", remark="edited"))
    assert repo.run_process("plan", "--out", "plan.json", RECONCILER_CONNECTIONS_FROM=str(trusted)).code == 0
    validate = repo.run_process("validate", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert validate.code == 0 and "warning:" not in validate.stderr  # the config under review changes nothing trusted
    r = repo.run_process("apply", "plan.json")
    assert r.code == 3, r.output
    assert "STALE" in r.stdout and "the change would differ from the reviewed plan" in r.stdout, r.stdout
    (live,) = _accounts(emulators)
    assert live["remark"] == "from a PR"  # nothing written
    repo.assert_no_secret(r)


def test_validate_reports_a_changed_trusted_setting(repo: Repo, emulators: Emulators) -> None:
    trusted = _ws(repo, emulators, extra="settings: {max_change_ratio: 1.0}\n")
    repo.write("manifests/bp.yaml", account())
    r = repo.run_process("validate", RECONCILER_CONNECTIONS_FROM=str(trusted))
    assert r.code == 0, r.output
    assert (
        "warning: reconciler.yaml changes trusted setting settings.max_change_ratio; the trusted value is used "
        "(RECONCILER_CONNECTIONS_FROM)"
    ) in r.stderr, r.stderr


def test_a_trusted_plan_still_compares_passwords(repo: Repo, emulators: Emulators) -> None:
    """Positive control: without a config under review the same file: reference is compared."""
    _live_account(emulators, "pr01", "LivePw1234")
    _ws(repo, emulators)
    repo.write("guess.txt", "WrongPw999")
    repo.write("manifests/bp.yaml", account(password="file:../guess.txt"))
    r = repo.run_process("plan", "--out", "plan.json")
    assert r.code == 0, r.output
    plan = json.loads((repo.root / "plan.json").read_text(encoding="utf-8"))
    assert [d["path"] for d in plan["changes"][0]["diffs"]] == ["password"]


# -- endpoint approvals per vendor -------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["tcaplus", "jdb"])
def test_an_approval_for_one_vendor_does_not_send_another_vendors_credentials(
    repo: Repo, emulators: Emulators, attacker: Attacker, vendor: str
) -> None:
    """The attacker's host is approved for BestProxy (say, a proxy gateway); a pull request points
    JDB or TcaplusDB at it: refused at the base_url line, and the listener sees nothing."""
    _ws(repo, emulators, **{vendor: f"http://attacker.test:{attacker.port}"})
    repo.write("manifests/pr.yaml", {"tcaplus": records_doc("pr-records", [players_record(1)]), "jdb": event_doc()}[vendor])
    r = repo.run_process(
        "plan", attacker=attacker, RECONCILER_ALLOWED_ENDPOINTS=f"bestproxy=http://attacker.test:{attacker.port}"
    )
    assert r.code == 1, r.output
    assert f"Config providers.{vendor}.base_url: host attacker.test is not an approved {vendor} endpoint" in r.stderr
    assert "it is approved for bestproxy only, and approvals are per vendor" in r.stderr, r.stderr
    assert attacker.requests == []
    repo.assert_no_secret(r)


def test_plain_http_must_be_approved_explicitly(repo: Repo, emulators: Emulators, attacker: Attacker) -> None:
    """An approval without a scheme (or with https://) covers HTTPS only: the credentials would go in
    clear text over http://, so the error says so and nothing is sent."""
    _ws(repo, emulators, jdb=f"http://attacker.test:{attacker.port}")
    repo.write("manifests/pr.yaml", event_doc())
    for approval in (f"jdb=attacker.test:{attacker.port}", f"jdb=https://attacker.test:{attacker.port}"):
        r = repo.run_process("plan", attacker=attacker, RECONCILER_ALLOWED_ENDPOINTS=approval)
        assert r.code == 1, r.output
        assert (
            "host attacker.test is approved for jdb over HTTPS only: plain http:// sends the credentials in clear "
            f"text and must be approved explicitly (jdb=http://attacker.test:{attacker.port}"
        ) in r.stderr, r.stderr
        assert attacker.requests == []
        repo.assert_no_secret(r)
    # positive control: approved as http:// for jdb, the listener does receive the request
    ok = repo.run_process("plan", attacker=attacker, RECONCILER_ALLOWED_ENDPOINTS=f"jdb=http://attacker.test:{attacker.port}")
    assert attacker.requests, ok.output


def test_an_approval_naming_no_vendor_is_an_error(repo: Repo, emulators: Emulators, attacker: Attacker) -> None:
    _ws(repo, emulators, bestproxy=f"http://attacker.test:{attacker.port}")
    repo.write("manifests/pr.yaml", account())
    r = repo.run_process("plan", attacker=attacker, RECONCILER_ALLOWED_ENDPOINTS=f"http://attacker.test:{attacker.port}")
    assert r.code == 1, r.output
    assert "name the vendor it approves (bestproxy=HOST, tcaplus=HOST, jdb=HOST)" in r.stderr, r.stderr
    assert attacker.requests == []


@pytest.mark.parametrize("count", [2, 2000])
def test_keys_only_markdown_at_scale_holds_no_live_value(count: int) -> None:
    """2 and 2,000 prune candidates: the pull-request comment stays under its limit, names the
    objects it shows by key, and carries none of their live values."""
    from reconciler.engine.render import MARKDOWN_LIMIT, render_markdown
    from reconciler.model import Action, Change, FieldDiff, Plan

    changes = [
        Change(
            kind="TcaplusRecords",
            vendor="tcaplus",
            key=f"game_players|{i}",
            action=Action.DELETE,
            source="PruneScope/all",
            summary=f"live summary LiveValue{i:05d}",
            diffs=[FieldDiff("player_email", f"LiveValue{i:05d}@example.com", None), FieldDiff("level", 900_000 + i, None)],
            notes=[f"note with LiveValue{i:05d}"],
        )
        for i in range(count)
    ]
    plan = Plan(changes=changes)
    text = render_markdown(plan, keys_only=True)
    assert len(text) < MARKDOWN_LIMIT
    assert "LiveValue" not in text and "900000" not in text
    assert "game&#95;players&#124;0" in text or "game_players|0" in html.unescape(text)
    assert "2 field(s)" in html.unescape(text)
    assert "LiveValue00000" in render_markdown(plan)  # positive control: a trusted comment shows them

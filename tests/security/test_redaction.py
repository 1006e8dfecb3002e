"""``--debug`` shows HTTP logs and tracebacks, never a credential: the BestProxy ``app_key`` (a query
parameter of every GET), the TOTP secret and code, the TcaplusDB password and its MD5 header, the
JDB key and IV, manifest passwords — all pass through the one redaction point
(``reconciler/clients/redact.py``)."""

from __future__ import annotations

import logging

import httpx
import pyotp

from reconciler.clients import redact
from tests.security.conftest import (
    BP_APP_KEY,
    BP_TOTP,
    TCAPLUS_PROTOS,
    Emulators,
    Repo,
    account,
    config_text,
    event_doc,
    players_record,
    records_doc,
)

IPS = """\
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: egress}
spec:
  productType: 14
  exclusive: true
  entries: [203.0.113.10]
"""


def test_debug_logs_of_plan_and_apply_on_all_vendors_hold_no_credential(repo: Repo, emulators: Emulators) -> None:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(emulators))
    repo.write("manifests/bp.yaml", account() + "---\n" + IPS)
    repo.write("manifests/tc.yaml", records_doc("r", [players_record(1), players_record(2)]))
    repo.write("manifests/jdb.yaml", event_doc())
    # an address to remove: the delete needs a TOTP code computed from the secret
    r = httpx.post(
        emulators.bestproxy.url + "/gateway/proxy-ip/add",
        json={"app_key": BP_APP_KEY, "ips": "198.51.100.99", "product_type": 14, "remark": ""},
    )
    assert r.json()["code"] == 200, r.text
    totp = pyotp.TOTP(BP_TOTP)
    codes = {totp.now()}

    plan = repo.run_process("--debug", "plan", "--out", "plan.json", "--format", "markdown")
    assert plan.code == 0, plan.output
    apply = repo.run_process("--debug", "apply", "plan.json")
    codes.add(totp.now())
    assert apply.code == 0, apply.output
    assert "Apply: 5 applied" in apply.stdout or "applied" in apply.stdout

    logs = plan.stderr + apply.stderr
    # not vacuous: the HTTP request log is there, with the credential masked
    assert "HTTP Request: GET" in logs and "app_key=***" in logs, logs[:2000]
    assert "apiRequest.do" in logs and "/ver1.0/apps/2/zones/1/tables/game_players/records" in logs
    repo.assert_no_secret(plan, apply)
    for code in codes:
        assert code not in logs


def test_a_debug_traceback_is_redacted(repo: Repo, emulators: Emulators) -> None:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(emulators).replace(emulators.bestproxy.url, "http://127.0.0.1:9"))
    repo.write("manifests/bp.yaml", account())
    r = repo.run_process("--debug", "plan")  # nothing listens on port 9: a transport error with a traceback
    assert r.code == 1 and "Traceback" in r.stderr, r.output
    repo.assert_no_secret(r)


def test_redaction_covers_registered_values_and_credential_names(caplog: object) -> None:
    redact.register("S3cretValue/with+chars")
    text = (
        'GET https://h/x?app_key=S3cretValue%2Fwith%2Bchars&n=1 body={"password": "Other1"} '
        "headers=[(b'x-tcaplus-pwd-md5', b'0123abcd')] verify_code=123456 x=AbCdEf"
    )
    out = redact.redact(text)
    for secret in ("S3cretValue", "Other1", "0123abcd", "123456", "AbCdEf"):
        assert secret not in out, out
    assert "n=1" in out
    redact.install()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("httpx.test-redaction")
    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.info("HTTP Request: %s %s", "GET", "https://h/?app_key=S3cretValue/with+chars")
    finally:
        log.removeHandler(handler)
    assert records and "S3cretValue" not in records[0].getMessage()

"""Secret values never reach stdout, stderr, JSON or Markdown output, saved plans or errors."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.bestproxy.conftest import APP_KEY, PASSWORD, TOTP_SECRET, Workspace, account_doc

SECRETS = (APP_KEY, PASSWORD, TOTP_SECRET, "OutOfBand99")


def _assert_clean(*texts: str | bytes) -> None:
    for text in texts:
        blob = text.decode() if isinstance(text, bytes) else text
        for s in SECRETS:
            assert s not in blob


def test_no_secret_in_any_output(bestproxy_ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bestproxy_ws.write(
        "manifests/a.yaml",
        account_doc("game01")
        + "---\n"
        + """
apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {name: dc}
spec: {productType: 14, exclusive: true, entries: [10.0.0.1]}
""",
    )
    bestproxy_ws.api("/gateway/proxy-ip/add", ips="10.0.0.9", product_type=14, remark="")  # forces a verified removal
    outputs = []
    for args in (
        ["plan"],
        ["plan", "--format", "json"],
        ["plan", "--format", "markdown"],
        ["plan", "--out", "plan.json"],
        ["apply", "--auto-approve"],
        ["--debug", "plan"],
    ):
        res = bestproxy_ws.cli(*args)
        assert res.exit_code == 0, (args, res.stderr)
        outputs += [res.stdout, res.stderr]
    bestproxy_ws.api("/gateway/whitelist-account/change-password", account="game01", password="OutOfBand99")
    for args in (["plan"], ["plan", "--format", "json"], ["apply", "--auto-approve"]):
        res = bestproxy_ws.cli(*args)
        outputs += [res.stdout, res.stderr]
    _assert_clean(*outputs, (bestproxy_ws.root / "plan.json").read_bytes(), caplog.text)
    assert '"(sensitive)"' in outputs[0]


def test_invalid_app_key_error_names_no_key(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("secrets/app_key", "WrongKey" * 4)
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    res = bestproxy_ws.cli("plan")
    assert res.exit_code == 1
    host = bestproxy_ws.url.removeprefix("http://")
    assert f"bestproxy: {host}: GET /gateway/whitelist-account/list: code 3" in res.stderr
    assert "WrongKey" not in res.stderr + res.stdout
    _assert_clean(res.stderr, res.stdout)


def test_password_literal_in_manifest_is_not_echoed(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01", password="LiteralSecret99"))
    res = bestproxy_ws.cli("validate")
    assert res.exit_code == 1 and "LiteralSecret99" not in res.stderr + res.stdout


def test_lost_reply_error_text_has_no_credentials(bestproxy_ws: Workspace) -> None:
    from reconciler.vendors.bestproxy.client import BestProxyClient
    from reconciler.clients.http import RetryPolicy
    from reconciler.errors import TransportError

    client = BestProxyClient(bestproxy_ws.url, app_key=APP_KEY, retry=RetryPolicy(attempts=1, wait_initial=0))
    httpx.post(bestproxy_ws.url + "/_sandbox/faults", json={"drop_next_writes": 1})
    with pytest.raises(TransportError) as info:
        client.add_accounts([("game05", PASSWORD)], product_type=9)
    _assert_clean(str(info.value), repr(info.value))
    assert "outcome is unknown" in str(info.value)
    client.close()

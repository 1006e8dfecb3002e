"""Environments: `--env NAME` picks the connections and the `${var.NAME}` values declared once in
reconciler.yaml; every error still points at the file:line:col where the value was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import CliWorkspace

CONFIG = """
apiVersion: reconciler/v1
kind: Config
connections:
  bestproxy:
    staging: {base_url: "http://127.0.0.1:9", app_key: env:STG_KEY}
    production: {base_url: "http://127.0.0.1:9", app_key: env:PRD_KEY}
environments:
  staging:
    connections: {bestproxy: staging}
    vars:
      prefix: stg
      limit: 10
      remark: staging
  production:
    connections: {bestproxy: production}
    vars:
      prefix: prd
      limit: -5
      remark: production
"""

ACCOUNT = """
apiVersion: reconciler/v1
kind: ProxyAccount
metadata: {name: ops}
spec:
  username: ${var.prefix}ops01
  password: file:pw.txt
  productType: 9
  trafficLimitGb: ${var.limit}
  remark: "${var.remark} / $${var.prefix}"
"""


@pytest.fixture
def variables_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliWorkspace:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STG_KEY", "stg-key-canary-1")
    monkeypatch.setenv("PRD_KEY", "prd-key-canary-2")
    w = CliWorkspace(tmp_path)
    w.write("reconciler.yaml", CONFIG)
    w.write("manifests/pw.txt", "Passw0rd99")
    w.write("manifests/a.yaml", ACCOUNT)
    return w


def test_an_environment_fills_in_the_variables(variables_ws: CliWorkspace) -> None:
    res = variables_ws.cli("plan", "--sandbox", "--env", "staging", "--format", "json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    (change,) = plan["changes"]
    assert change["key"] == "stgops01" and change["connection"] == "staging"
    after = {d["path"]: d["after"] for d in change["diffs"]}
    assert after["trafficLimitGb"] == 10  # a whole reference keeps the variable's type
    assert after["remark"] == "staging / ${var.prefix}"  # $${ writes a literal ${
    assert plan["environment"] == "staging" and plan["connections"] == ["bestproxy/staging"]


def test_an_invalid_value_is_reported_where_the_variable_was_written(variables_ws: CliWorkspace) -> None:
    res = variables_ws.cli("validate", "--env", "production")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "error: reconciler.yaml:18:14: ProxyAccount/ops spec.trafficLimitGb: Input should be greater than or equal "
        "to 0 (${var.limit} of environment production, used at manifests/a.yaml:8:19)"
    ]
    assert variables_ws.cli("validate", "--env", "staging").exit_code == 0


def test_an_unknown_variable_points_at_its_use(variables_ws: CliWorkspace) -> None:
    variables_ws.write("manifests/a.yaml", ACCOUNT.replace("${var.limit}", "${var.limt}"))
    res = variables_ws.cli("validate", "--env", "staging")
    assert res.exit_code == 1
    assert (
        "manifests/a.yaml:8:19: spec.trafficLimitGb: ${var.limt}: environment staging has no such variable "
        "(its vars: limit, prefix, remark)"
    ) in res.stderr


def test_variables_need_an_environment(variables_ws: CliWorkspace) -> None:
    res = variables_ws.cli("validate")
    assert res.exit_code == 1
    assert (
        "manifests/a.yaml:5:13: spec.username: ${var.prefix} needs an environment: choose one with --env (production, staging)"
    ) in res.stderr


def test_an_unknown_environment_or_connection_is_a_config_error(variables_ws: CliWorkspace) -> None:
    res = variables_ws.cli("validate", "--env", "qa")
    assert res.exit_code == 1
    assert "reconciler.yaml:7:1: Config environments: --env qa: no such environment (known: production, staging)" in res.stderr
    variables_ws.write(
        "reconciler.yaml", CONFIG.replace("connections: {bestproxy: production}", "connections: {bestproxy: prod}")
    )
    res = variables_ws.cli("validate", "--env", "staging")
    assert res.exit_code == 1
    assert (
        "reconciler.yaml:15:30: Config environments.production.connections.bestproxy: no bestproxy connection "
        "named 'prod' (known: production, staging)"
    ) in res.stderr
    for canary in ("stg-key-canary-1", "prd-key-canary-2", "Passw0rd99"):
        assert canary not in res.output

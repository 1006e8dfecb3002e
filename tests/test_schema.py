"""`reconciler schema` output is valid JSON Schema, accepts the shipped manifests and rejects a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _schema(what: str) -> dict:
    res = CliRunner().invoke(cli, ["schema", what])
    assert res.exit_code == 0, res.stderr
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_manifest_schema_accepts_shipped_manifests() -> None:
    validator = jsonschema.Draft202012Validator(_schema("manifest"))
    docs = [d for f in sorted((ROOT / "manifests").rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert docs
    for d in docs:
        errors = list(validator.iter_errors(d))
        assert not errors, (d["metadata"], errors[:1])


def test_manifest_schema_rejects_unknown_field() -> None:
    validator = jsonschema.Draft202012Validator(_schema("manifest"))
    bad = {"apiVersion": "reconciler/v1", "kind": "ProxyAccount", "metadata": {"name": "x"},
           "spec": {"username": "x1", "password": "env:X", "productType": 9, "bogus": 1}}
    assert not validator.is_valid(bad)


def test_config_schema_accepts_shipped_config() -> None:
    jsonschema.validate(yaml.safe_load((ROOT / "reconciler.yaml").read_text()), _schema("config"))

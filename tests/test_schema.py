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
    bad = {
        "apiVersion": "reconciler/v1",
        "kind": "ProxyAccount",
        "metadata": {"name": "x"},
        "spec": {"username": "x1", "password": "env:X", "productType": 9, "bogus": 1},
    }
    assert not validator.is_valid(bad)


def test_config_schema_accepts_shipped_config() -> None:
    jsonschema.validate(yaml.safe_load((ROOT / "reconciler.yaml").read_text()), _schema("config"))


def test_manifest_schema_branches_on_kind_and_names_the_exact_field() -> None:
    schema = _schema("manifest")
    assert "oneOf" not in schema
    assert all(set(b) == {"if", "then"} for b in schema["allOf"])
    validator = jsonschema.Draft202012Validator(schema)
    typo = {
        "apiVersion": "reconciler/v1",
        "kind": "ProxyAccount",
        "metadata": {"name": "x"},
        "spec": {"username": "x1", "password": "env:X", "productType": 9, "trafficLimit": 5},
    }
    errors = list(validator.iter_errors(typo))
    assert len(errors) == 1, [e.message for e in errors]
    assert list(errors[0].absolute_path) == ["spec"] and "'trafficLimit' was unexpected" in errors[0].message
    wrong = dict(typo, spec={"username": "x1", "password": "env:X", "productType": 7})
    (err,) = validator.iter_errors(wrong)
    assert list(err.absolute_path) == ["spec", "productType"]
    unknown = dict(typo, kind="ProxyAcount")
    (err,) = validator.iter_errors(unknown)
    assert list(err.absolute_path) == ["kind"] and "ProxyAccount" in err.message

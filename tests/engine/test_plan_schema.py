"""The saved plan is a versioned JSON document that validates against its published JSON Schema
(`reconciler schema plan`), and carries everything the issue lists."""

from __future__ import annotations

import json

import jsonschema
import pytest

from reconciler import __version__
from reconciler.engine.planfile import FORMAT_VERSION
from tests.engine.conftest import Workspace, accounts_file


@pytest.fixture
def schema(bp: Workspace) -> dict:
    r = bp.cli("schema", "plan")
    assert r.exit_code == 0
    s = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(s)
    return s


def _rich_plan(bp: Workspace) -> None:
    accounts_file(bp, ["game01", "game02"], remark="v1")
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    accounts_file(bp, ["game01", "game03"], remark="v2")
    bp.write(
        "manifests/scope.yaml",
        """
        apiVersion: reconciler/v1
        kind: PruneScope
        metadata: {name: games}
        spec: {target: ProxyAccount, match: {usernamePrefix: game}}
        """,
    )
    bp.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: datacenter}
        spec: {productType: 14, entries: [10.0.0.1, {ip: 10.0.0.2, remark: office}]}
        """,
    )
    bp.api("/gateway/whitelist-account/add", accounts="stray1:abcdef1", product_type=9)


def test_saved_plan_validates_against_the_published_schema(bp: Workspace, schema: dict) -> None:
    _rich_plan(bp)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    data = json.loads((bp.root / "plan.json").read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)

    assert data["format_version"] == FORMAT_VERSION == 1 and data["tool_version"] == __version__
    assert data["digest"]["manifests"].startswith("sha256:") and data["digest"]["config"].startswith("sha256:")
    assert {(c["kind"], c["key"], c["action"]) for c in data["changes"]} == {
        ("ProxyAccount", "game01", "update"),
        ("ProxyAccount", "game03", "create"),
        ("ProxyAccount", "game02", "delete"),
        ("IpAllowlist", "14", "create"),
    }
    for c in data["changes"]:
        assert c["precondition"] and c["calls"] and c["diffs"]
    update = next(c for c in data["changes"] if c["key"] == "game01")
    assert update["diffs"] == [{"path": "remark", "before": "v1", "after": "v2", "sensitive": False}]
    assert update["precondition"]["fingerprint"].startswith("sha256:")
    assert next(c for c in data["changes"] if c["key"] == "game03")["precondition"] == {"exists": False}
    assert data["unmanaged"] == [
        {
            "kind": "ProxyAccount",
            "vendor": "bestproxy",
            "key": "stray1",
            "reason": "not declared; outside every prune scope",
            "connection": "default",
        }
    ]
    assert set(data["resources"]) == {"ProxyAccount/game01", "ProxyAccount/game03", "IpAllowlist/datacenter", "PruneScope/games"}


def test_plan_format_json_validates_too(bp: Workspace, schema: dict) -> None:
    _rich_plan(bp)
    r = bp.cli("plan", "--format", "json")
    jsonschema.validate(json.loads(r.stdout), schema, cls=jsonschema.Draft202012Validator)


def test_schema_rejects_what_apply_rejects(bp: Workspace, schema: dict) -> None:
    accounts_file(bp, ["game01"])
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    data = json.loads((bp.root / "plan.json").read_text())
    for broken in (
        {**data, "format_version": 2},
        {**data, "surprise": True},
        {**data, "changes": [{**data["changes"][0], "action": "destroy"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)
        (bp.root / "broken.json").write_text(json.dumps(broken))
        assert bp.cli("apply", "broken.json").exit_code == 1


def test_a_plan_is_signed_over_what_its_whole_dump_gives(bp: Workspace) -> None:
    # signing and checking dump only the signed fields and the changes with a desired payload: the
    # signed bytes are those of the whole plan as the schema reads it back (changes with desired
    # payloads, one document changed twice, a prune without a resource)
    from reconciler.engine.planfile import PlanFile, _signed_content, _signed_view

    _rich_plan(bp)
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    pf = PlanFile.model_validate_json((bp.root / "plan.json").read_text())
    assert any("desired" in c.data for c in pf.changes) and any(not c.resource for c in pf.changes)
    whole = _signed_content(pf.model_dump(mode="json"))
    assert _signed_content(_signed_view(pf)) == whole and b'"desired":{' in whole

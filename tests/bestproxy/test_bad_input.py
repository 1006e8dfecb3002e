"""One small manifest per bad-input case (tests/bestproxy/bad/): one clear line naming
file:line:col, the resource, the field and the rule; exit 1; no API call; no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bestproxy.conftest import Workspace

BAD = Path(__file__).parent / "bad"

# file -> (line:col, expected fragments of the error line)
CASES: dict[str, tuple[str, list[str]]] = {
    "yaml_syntax.yaml": ("4:5", ["YAML syntax error"]),
    "duplicate_key.yaml": ("8:3", ["duplicate key 'productType'", "first at line 7"]),
    "unknown_kind.yaml": ("2:7", ["ProxyAcount/x", "kind", "unknown kind 'ProxyAcount'", "ProxyAccount"]),
    "unknown_field.yaml": ("8:3", ["ProxyAccount/uf", "spec.trafficLimit", "unknown field"]),
    "wrong_type.yaml": ("8:19", ["ProxyAccount/wt", "spec.trafficLimitGb", "valid integer"]),
    "bad_username.yaml": ("5:13", ["ProxyAccount/bu", "spec.username", "pattern"]),
    "literal_password.yaml": ("6:13", ["ProxyAccount/lp", "spec.password", "reference (env:NAME or file:PATH), not a literal"]),
    "unresolvable_secret.yaml": ("6:13", ["ProxyAccount/us", "spec.password", "env:RECONCILER_TEST_UNSET_VAR", "is not set"]),
    "short_password.yaml": ("6:13", ["ProxyAccount/sp", "spec.password", "6-16 characters"]),
    "long_remark.yaml": ("8:11", ["ProxyAccount/lr", "spec.remark", "at most 64"]),
    "long_cjk_remark.yaml": ("8:11", ["ProxyAccount/lc", "spec.remark", "at most 32 when it contains Chinese"]),
    "bad_product_type.yaml": ("7:16", ["ProxyAccount/pt", "spec.productType", "9, 11, 14 or 25"]),
    "limit_too_large.yaml": ("8:19", ["ProxyAccount/ll", "spec.trafficLimitGb", "less than or equal to 102400"]),
    "udp_wrong_product.yaml": ("5:3", ["ProxyAccount/ud", "spec", "udp is only available for product types 14, 25"]),
    "duplicate_identity.yaml": (
        "13:13",
        ["ProxyAccount/second", "spec.username", "duplicate identity 'same1'", "ProxyAccount/first"],
    ),
    "yaml11_boolean.yaml": ("8:12", ["ProxyAccount/yb", "spec.enabled", "use true or false"]),
    "boolean_for_string.yaml": ("8:11", ["ProxyAccount/bs", "spec.remark", "valid string", "quote it"]),
    "bad_ip.yaml": ("8:7", ["IpAllowlist/bi", "spec.entries[1]", "not an IPv4 or IPv6 address or CIDR block"]),
    "bad_cidr.yaml": ("8:7", ["IpAllowlist/bc", "spec.entries[1]", "10.0.0.1/24 has host bits set", "10.0.0.0/24"]),
    "duplicate_ip.yaml": ("8:7", ["IpAllowlist/di", "spec.entries[1]", "duplicate address 10.0.0.1"]),
    "type11_without_user_product.yaml": ("5:3", ["IpAllowlist/t11", "userProductId is required for product type 11"]),
    "wrong_api_version.yaml": ("1:13", ["ProxyAccount/av", "apiVersion", "unsupported apiVersion"]),
    "missing_name.yaml": ("3:11", ["metadata.name", "required field is missing"]),
}


# cases only a resolved secret value shows: an offline `validate` passes them, `--resolve-secrets` not
SECRET_VALUE_CASES = {"unresolvable_secret.yaml", "short_password.yaml"}


def test_every_bad_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_manifest_is_rejected_before_any_call(bestproxy_ws: Workspace, name: str) -> None:
    bestproxy_ws.write("secrets/pw", "GoodPass123")
    bestproxy_ws.write("secrets/short", "abc12")
    target = bestproxy_ws.root / "manifests" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BAD / name, target)
    where, fragments = CASES[name]
    validate = ["validate", "--resolve-secrets"] if name in SECRET_VALUE_CASES else ["validate"]
    if name in SECRET_VALUE_CASES:
        offline = bestproxy_ws.cli("validate")
        assert offline.exit_code == 0, offline.stderr
    for command in (validate, ["plan"], ["apply", "--auto-approve"]):
        res = bestproxy_ws.cli(*command)
        assert res.exit_code == 1, (command, res.stdout, res.stderr)
        lines = [line for line in res.stderr.splitlines() if line]
        assert len(lines) == 1, res.stderr
        line = lines[0]
        assert line.startswith(f"error: manifests/{name}:{where}: "), line
        for fragment in fragments:
            assert fragment in line, (fragment, line)
        assert "Traceback" not in res.stderr
    assert bestproxy_ws.stats() == {}, "no API call may be made for bad input"


def test_all_problems_of_a_run_are_reported_at_once(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("secrets/pw", "GoodPass123")
    for name in ("unknown_field.yaml", "bad_ip.yaml", "long_remark.yaml"):
        shutil.copy(
            BAD / name,
            (bestproxy_ws.root / "manifests").joinpath(name)
            if (bestproxy_ws.root / "manifests").exists()
            else _mk(bestproxy_ws, name),
        )
    res = bestproxy_ws.cli("plan")
    assert res.exit_code == 1
    assert len(res.stderr.strip().splitlines()) == 3
    assert bestproxy_ws.stats() == {}


def _mk(bestproxy_ws: Workspace, name: str) -> Path:
    (bestproxy_ws.root / "manifests").mkdir(exist_ok=True)
    return bestproxy_ws.root / "manifests" / name


def test_unquoted_no_stays_a_string(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("secrets/pw", "GoodPass123")
    bestproxy_ws.write(
        "manifests/a.yaml",
        """
        apiVersion: reconciler/v1
        kind: ProxyAccount
        metadata: {name: norway}
        spec:
          username: norway1
          password: file:../secrets/pw
          productType: 9
          remark: NO
        """,
    )
    res = bestproxy_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stderr
    assert bestproxy_ws.accounts()["norway1"]["remark"] == "NO"


def test_removal_without_verification_is_a_plan_time_error(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.api("/gateway/proxy-ip/add", ips="10.9.9.9", product_type=14, remark="")
    cfg = (bestproxy_ws.root / "reconciler.yaml").read_text()
    bestproxy_ws.write("reconciler.yaml", cfg.split("    ip_delete_verification:")[0])
    bestproxy_ws.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: strict}
        spec:
          productType: 14
          exclusive: true
          entries: [10.0.0.1]
        """,
    )
    for command in (["plan"], ["apply", "--auto-approve"]):
        res = bestproxy_ws.cli(*command)
        assert res.exit_code == 1
        assert (
            "manifests/ips.yaml:7:3: IpAllowlist/strict spec.entries: removing 1 address(es) needs BestProxy's verification"
            in res.stderr
        )
    assert bestproxy_ws.ips(14) == {"10.9.9.9": ""}

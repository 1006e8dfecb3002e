"""IP allowlists as they are in the real world (issue 22, item 6), against each answer the BestProxy
emulator can give where the document is silent:

- ``ip_forms``: the API takes IPv4 only, or also IPv6 and CIDR (live lists may hold them either
  way: the back office);
- ``ip_product_types``: one address under several product types, or under one only;
- ``batches``: a batch with a bad item is refused whole, or applied but for that item;
- ``totp_reuse``: a TOTP code may be used twice, or once only.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import yaml

from reconciler.vendors.bestproxy.ip_allowlist import totp as totp_codes
from tests.bestproxy.conftest import Workspace, bestproxy_workspace


class SimClock:
    """A clock shared by the emulator's TOTP check and the client's wait: sleeping moves it."""

    def __init__(self, start: float = 1_750_000_010.0):
        self.now = start
        self.slept = 0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += 1
        self.now += max(seconds, 0.0)


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **knobs: str) -> Iterator[tuple[Workspace, SimClock]]:
    clock = SimClock()
    monkeypatch.setattr(totp_codes, "clock", clock.time)
    monkeypatch.setattr(totp_codes, "sleep", clock.sleep)
    for ws in bestproxy_workspace(tmp_path, monkeypatch, knobs=knobs):
        ws.emulator.clock = clock.time
        yield ws, clock


def allowlist(
    ws: Workspace, name: str, product_type: int, entries: list[str], *, exclusive: bool = True, upid: int | None = None
) -> None:
    lines = "\n".join(f"    - {e}" for e in entries) if entries else "    []"
    extra = f"  userProductId: {upid}\n" if upid else ""
    ws.write(
        f"manifests/{name}.yaml",
        f"""apiVersion: reconciler/v1
kind: IpAllowlist
metadata: {{name: {name}}}
spec:
  productType: {product_type}
{extra}  exclusive: {str(exclusive).lower()}
  entries:
{lines}
""".replace("  entries:\n    []", "  entries: []"),
    )


def listed(ws: Workspace) -> list[tuple[str, int, str]]:
    data = ws.api("/gateway/proxy-ip/list")["data"]["list"]
    return sorted((i["ip"], i["product_type"], i["remark"]) for i in data)


FORMS_BATCHES = list(itertools.product(("ipv4", "any"), ("whole", "partial")))


@pytest.fixture(params=FORMS_BATCHES, ids=[f"{f}-{b}" for f, b in FORMS_BATCHES])
def forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[Workspace, SimClock]]:
    ip_forms, batches = request.param
    yield from _workspace(tmp_path, monkeypatch, ip_forms=ip_forms, batches=batches)


# -- live IPv6 and CIDR entries ------------------------------------------------------------------


def test_live_ipv6_and_cidr_entries_are_read_and_shown(forms: tuple[Workspace, SimClock]) -> None:
    ws, _ = forms
    for ip in ("2001:DB8::1", "10.0.0.0/24", "203.0.113.9"):
        ws.emulator.back_office_add_ip(ip, 14, "console")
    ws.emulator.back_office_add_ip("2001:db8::/48", 25)
    ws.emulator.back_office_add_ip("198.51.100.7", 0)  # added without a product type
    allowlist(ws, "dc", 14, ["{ip: 2001:db8::1, remark: console}", "{ip: 203.0.113.9, remark: console}"], exclusive=False)
    for args in (("plan", "--detailed-exitcode"), ("plan", "--drift", "--detailed-exitcode")):
        res = ws.cli(*args)
        assert res.exit_code == 0, res.stdout + res.stderr  # 2001:DB8::1 is the declared 2001:db8::1
        assert "Traceback" not in res.stderr and "internal error" not in res.stderr.lower()
    plan = ws.cli("plan").stdout
    assert "IpAllowlist/14/10.0.0.0/24: address not declared" in plan
    assert "IpAllowlist/25/2001:db8::/48: no manifest declares" in plan
    assert "IpAllowlist/0/198.51.100.7: listed under product type 0" in plan
    assert "1 unchanged" in plan


def test_live_ipv6_and_cidr_entries_are_pruned_or_named(forms: tuple[Workspace, SimClock]) -> None:
    """An exclusive allowlist removes them where BestProxy's delete takes them; where it does
    not, the apply is partial (exit 4), names them, and the IPv4 removal is done anyway."""
    ws, _ = forms
    for ip in ("2001:DB8::1", "10.0.0.0/24", "203.0.113.9", "203.0.113.10"):
        ws.emulator.back_office_add_ip(ip, 14)
    allowlist(ws, "dc", 14, ["203.0.113.10"])
    plan = ws.cli("plan")
    assert plan.exit_code == 0 and "+0 -3 ~0 of 4" in plan.stdout, plan.stdout + plan.stderr
    res = ws.cli("apply", "--auto-approve")
    if ws.emulator.ip_forms == "any":
        assert res.exit_code == 0, res.stdout + res.stderr
        assert listed(ws) == [("203.0.113.10", 14, "")]
        assert ws.cli("plan", "--detailed-exitcode").exit_code == 0
    else:
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "FAILED" in res.stdout and "2 address(es) not done (10.0.0.0/24, 2001:DB8::1)" in res.stdout
        assert listed(ws) == [("10.0.0.0/24", 14, ""), ("2001:DB8::1", 14, ""), ("203.0.113.10", 14, "")]


def test_declared_ipv6_and_cidr_entries(forms: tuple[Workspace, SimClock]) -> None:
    """Declaring IPv6 and CIDR entries: the document is silent, so the plan says they may be
    refused; a BestProxy that takes them converges, one that refuses them fails just them."""
    ws, _ = forms
    allowlist(ws, "dc", 14, ["203.0.113.9", "2001:db8::7", "2001:db8:1::/48", "198.51.100.0/24"])
    plan = ws.cli("plan")
    assert "shows IPv4 addresses only" in plan.stdout and "2001:db8::7" in plan.stdout
    res = ws.cli("apply", "--auto-approve")
    if ws.emulator.ip_forms == "any":
        assert res.exit_code == 0, res.stdout + res.stderr
        assert ws.cli("plan", "--detailed-exitcode").exit_code == 0
    else:
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "3 address(es) not done (198.51.100.0/24, 2001:db8::7, 2001:db8:1::/48)" in res.stdout
        assert listed(ws) == [("203.0.113.9", 14, "")]  # IPv4 apart: never held back by them


# -- TOTP: one code per delete -------------------------------------------------------------------


@pytest.fixture(params=["accepted", "refused"])
def totp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[tuple[Workspace, SimClock]]:
    yield from _workspace(tmp_path, monkeypatch, totp_reuse=request.param)


def test_a_delete_sent_again_after_an_unknown_outcome_gets_a_new_code(totp: tuple[Workspace, SimClock]) -> None:
    ws, clock = totp
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.1,10.0.0.2,10.0.0.3", product_type=14)
    allowlist(ws, "dc", 14, ["10.0.0.3"])
    # the first delete is answered 500 without being done: the client reads back, sends it again
    httpx.post(ws.url + "/_sandbox/faults", json={"fail_next_writes": 1})
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert listed(ws) == [("10.0.0.3", 14, "")]
    assert ws.stats()["POST /gateway/proxy-ip/delete"] == 2
    assert clock.slept == 1  # the second code waited for the next time step


def test_two_deletes_in_one_run_never_share_a_code(totp: tuple[Workspace, SimClock]) -> None:
    """Under batches=whole, an entry the delete refuses (IPv6 where the API takes IPv4 only)
    splits the batch in halves until it stands alone: five delete calls in one apply, each with a
    code of its own."""
    ws, clock = totp
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.1,10.0.0.2", product_type=14)
    ws.emulator.back_office_add_ip("2001:db8::1", 14)
    allowlist(ws, "dc", 14, [])
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "1 address(es) not done (2001:db8::1)" in res.stdout
    assert "invalid verification code" not in res.stdout
    assert listed(ws) == [("2001:db8::1", 14, "")]
    assert ws.stats()["POST /gateway/proxy-ip/delete"] == 5
    assert clock.slept == 4


def test_allowlists_of_two_product_types_are_removed_in_one_verified_delete(totp: tuple[Workspace, SimClock]) -> None:
    ws, _ = totp
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.1,10.0.0.2", product_type=14)
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.3,10.0.0.4", product_type=25)
    allowlist(ws, "dc", 14, ["10.0.0.1"])
    allowlist(ws, "res", 25, ["10.0.0.3"])
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert ws.stats()["POST /gateway/proxy-ip/delete"] == 1
    assert listed(ws) == [("10.0.0.1", 14, ""), ("10.0.0.3", 25, "")]


# -- one address under several product types -----------------------------------------------------


@pytest.fixture(params=list(itertools.product(("many", "one"), ("whole", "partial"))), ids=lambda p: "-".join(p))
def shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[Workspace, SimClock]]:
    types, batches = request.param
    yield from _workspace(tmp_path, monkeypatch, ip_product_types=types, batches=batches)


def test_a_remark_change_on_a_shared_address_converges_in_one_apply(shared: tuple[Workspace, SimClock]) -> None:
    """proxy-ip/delete takes no product type: replacing 10.0.0.5's remark under type 9 removes it
    from types 14 and 25 too. It is added back there in the same apply."""
    ws, _ = shared
    if ws.emulator.ip_product_types == "one":
        pytest.skip("an address under several product types cannot exist when BestProxy holds it under one")
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.5", product_type=9, remark="old")
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.5,10.0.0.6", product_type=14, remark="dc")
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.5", product_type=25, remark="not declared")
    allowlist(ws, "home", 9, ["{ip: 10.0.0.5, remark: new}"])
    allowlist(ws, "dc", 14, ["{ip: 10.0.0.5, remark: dc}", "{ip: 10.0.0.6, remark: dc}"])
    plan = ws.cli("plan")
    assert "added back right after: 10.0.0.5 (14), 10.0.0.5 (25)" in plan.stdout, plan.stdout
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert listed(ws) == [
        ("10.0.0.5", 9, "new"),
        ("10.0.0.5", 14, "dc"),
        ("10.0.0.5", 25, "not declared"),
        ("10.0.0.6", 14, "dc"),
    ]
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_an_address_moved_between_product_types_converges_in_one_apply(shared: tuple[Workspace, SimClock]) -> None:
    ws, _ = shared
    ws.api("/gateway/proxy-ip/add", ips="10.0.0.5,10.0.0.6", product_type=9)
    allowlist(ws, "home", 9, ["10.0.0.6"])
    allowlist(ws, "dc", 14, ["10.0.0.5"])
    res = ws.cli("apply", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert listed(ws) == [("10.0.0.5", 14, ""), ("10.0.0.6", 9, "")]
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_an_address_declared_under_two_product_types(shared: tuple[Workspace, SimClock]) -> None:
    """Where BestProxy allows it, one apply converges; where it holds an address under one product
    type only, the second add fails for that address alone (exit 4, named) and the plan warned."""
    ws, _ = shared
    allowlist(ws, "home", 9, ["10.0.0.5", "10.0.0.7"])
    assert ws.cli("apply", "--auto-approve").exit_code == 0
    allowlist(ws, "dc", 14, ["10.0.0.5", "10.0.0.8"])
    plan = ws.cli("plan")
    assert "already allowlisted for another product type" in plan.stdout and "10.0.0.5 (9)" in plan.stdout
    res = ws.cli("apply", "--auto-approve")
    if ws.emulator.ip_product_types == "many":
        assert res.exit_code == 0, res.stdout + res.stderr
        assert ws.cli("plan", "--detailed-exitcode").exit_code == 0
    else:
        assert res.exit_code == 4, res.stdout + res.stderr
        assert "FAILED  update IpAllowlist/14" in res.stdout or "FAILED  create IpAllowlist/14" in res.stdout
        assert "1 address(es) not done (10.0.0.5)" in res.stdout
        assert ("10.0.0.8", 14, "") in listed(ws) and ("10.0.0.5", 14, "") not in listed(ws)


def test_a_shared_address_of_type_11_without_its_user_product_is_named_in_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ws, _ in _workspace(tmp_path, monkeypatch):
        ws.emulator.user_product_ids = {11: [1101]}
        ws.api("/gateway/proxy-ip/add", ips="10.0.0.5", product_type=11, user_product_id=1101)
        ws.api("/gateway/proxy-ip/add", ips="10.0.0.5", product_type=14)
        allowlist(ws, "dc", 14, [])
        plan = ws.cli("plan")
        assert "no IpAllowlist of type 11 gives the userProductId to add them back: 10.0.0.5" in plan.stdout
        allowlist(ws, "dyn", 11, ["10.0.0.5"], exclusive=False, upid=1101)
        plan = ws.cli("plan")
        assert "added back right after: 10.0.0.5 (11)" in plan.stdout
        assert ws.cli("apply", "--auto-approve").exit_code == 0
        assert listed(ws) == [("10.0.0.5", 11, "")]


def test_export_writes_live_ipv6_and_cidr_entries_that_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for ws, _ in _workspace(tmp_path, monkeypatch, ip_forms="any"):
        for ip in ("2001:DB8::1", "10.0.0.0/24", "203.0.113.9", "10.0.1.1/24", "1.2.3.*"):
            ws.emulator.back_office_add_ip(ip, 14, "console")
        allowlist(ws, "home", 9, [], exclusive=False)
        res = ws.cli("export", "manifests", "--out", "backup")
        assert res.exit_code == 0, res.stdout + res.stderr
        text = (ws.root / "backup/bestproxy/allowlists.yaml").read_text()
        docs = {d["spec"]["productType"]: d for d in yaml.safe_load_all(text)}
        assert [e["ip"] for e in docs[14]["spec"]["entries"]] == ["10.0.0.0/24", "203.0.113.9", "2001:db8::1"]
        assert "live entries left out" in text and "10.0.1.1/24" in text and "1.2.3.*" in text
        assert ws.cli("validate", "backup").exit_code == 0
        ws.emulator.wipe()
        restored = ws.cli("apply", "backup", "--auto-approve")
        assert restored.exit_code == 0, restored.stdout + restored.stderr
        assert listed(ws) == [("10.0.0.0/24", 14, "console"), ("2001:db8::1", 14, "console"), ("203.0.113.9", 14, "console")]


def test_reads_are_one_list_per_product_type_and_one_unfiltered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for ws, _ in _workspace(tmp_path, monkeypatch):
        allowlist(ws, "dc", 14, ["10.0.0.1"])
        httpx.post(ws.url + "/_sandbox/stats/reset")
        assert ws.cli("plan").exit_code == 0
        assert ws.stats()["GET /gateway/proxy-ip/list"] == 5


def test_split_batches_are_bounded_and_a_refused_verification_is_not_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ws, _ in _workspace(tmp_path, monkeypatch):
        for n in range(8):
            ws.emulator.back_office_add_ip(f"2001:db8::{n + 1}", 14)
        allowlist(ws, "dc", 14, [])
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4 and "8 address(es) not done" in res.stdout, res.stdout
        assert ws.stats()["POST /gateway/proxy-ip/delete"] == 5  # the batch and 4 more calls at most
        assert "not tried on its own" in res.stdout
        # a verification BestProxy refuses is no item's fault: one call, every address named
        ws.emulator.wipe()
        ws.api("/gateway/proxy-ip/add", ips="10.0.0.1,10.0.0.2,10.0.0.3", product_type=14)
        ws.write("secrets/totp", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")  # not the secret BestProxy holds
        httpx.post(ws.url + "/_sandbox/stats/reset")
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4 and "3 address(es) not done" in res.stdout, res.stdout
        assert res.stdout.count("Parameter error (rejected: verify_code)") == 4  # the line and each address
        assert ws.stats()["POST /gateway/proxy-ip/delete"] == 1


def test_refused_addresses_at_scale_are_named_in_bounded_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for ws, _ in _workspace(tmp_path, monkeypatch, batches="partial"):
        entries = [f"2001:db8::{n:x}" for n in range(1, 2001)] + ["10.0.0.1"]
        allowlist(ws, "dc", 14, entries)
        plan = ws.cli("plan")
        assert "and 1990 more" in plan.stdout and len(plan.stdout.splitlines()) < 2100
        res = ws.cli("apply", "--auto-approve")
        assert res.exit_code == 4
        assert "2000 address(es) not done (2001:db8::1, 2001:db8::2" in res.stdout and "and 1990 more" in res.stdout
        assert len(res.stdout.splitlines()) < 2200  # the plan's 2,001 diff lines, 50 detail lines
        assert listed(ws) == [("10.0.0.1", 14, "")]
        assert ws.stats()["POST /gateway/proxy-ip/add"] == 1 + 1 + 32  # IPv4; the IPv6 batch and 32 more at most

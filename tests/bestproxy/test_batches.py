"""Comma-joined batches (accounts, IPs): whether BestProxy refuses a batch with one bad item whole or
applies the rest is not documented (emulator knob ``batches``). Under either answer each item's
true outcome is reported: the others are applied, the apply is partial (exit 4) and names the
item that failed."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.bestproxy.conftest import PASSWORD, Workspace, account_doc, bestproxy_workspace


@pytest.fixture(params=["whole", "partial"])
def batch_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    yield from bestproxy_workspace(tmp_path, monkeypatch, knobs={"batches": request.param})


def test_one_refused_account_in_an_add_batch_fails_alone(batch_ws: Workspace) -> None:
    # game01 was deleted out of band a moment ago: BestProxy holds its username for 5 minutes
    batch_ws.emulator.settle_seconds = 300
    batch_ws.api("/gateway/whitelist-account/add", accounts="game01:Seeded123", product_type=9)
    batch_ws.api("/gateway/whitelist-account/delete", accounts="game01")
    batch_ws.write("manifests/a.yaml", "---\n".join(account_doc(f"game{i:02d}", enabled=False) for i in range(1, 6)))
    res = batch_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "FAILED  create ProxyAccount/game01" in res.stdout
    assert res.stdout.count("FAILED") == 1
    live = batch_ws.accounts()
    assert sorted(live) == ["game02", "game03", "game04", "game05"]
    assert all(a["status"] == 0 for a in live.values())  # their follow-up (disable) was made too
    assert "Seeded123" not in res.stdout + res.stderr and PASSWORD not in res.stdout + res.stderr
    batch_ws.emulator.settle_seconds = 0
    batch_ws.emulator._settling.clear()  # the window has passed
    assert batch_ws.cli("apply", "--auto-approve").exit_code == 0
    assert batch_ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_one_refused_address_in_an_add_batch_fails_alone(batch_ws: Workspace) -> None:
    """An address the API refuses (IPv6, where it takes IPv4 only) next to IPv4 addresses with the
    same remark: under either answer the IPv4 ones are added and only it is named."""
    batch_ws.write(
        "manifests/ips.yaml",
        """
        apiVersion: reconciler/v1
        kind: IpAllowlist
        metadata: {name: dc}
        spec:
          productType: 14
          entries: [10.0.0.1, 10.0.0.2, "2001:db8::5", 10.0.0.3]
        """,
    )
    res = batch_ws.cli("apply", "--auto-approve")
    assert res.exit_code == 4, res.stdout + res.stderr
    assert "1 address(es) not done (2001:db8::5)" in res.stdout
    assert set(batch_ws.ips(14)) == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}

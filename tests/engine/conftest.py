"""Fixtures for the GitOps/CI contract tests: a BestProxy emulator on 127.0.0.1 (port 0) and a
working folder whose ``reconciler.yaml`` points at it with ``file:`` secret references, shaped like
``Sandbox.providers()`` does it. Commands run through click's ``CliRunner``; out-of-band changes go
through the emulator's own HTTP API with plain httpx (as another operator would make them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.bestproxy.conftest import Workspace as BaseWorkspace
from tests.bestproxy.conftest import bestproxy_workspace

# test-only credentials; distinctive so a leak is easy to find in bytes
APP_KEY = "EngineTestAppKeyQ7w8e9r0t1y2u3i4"
TOTP_SECRET = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BK"
PASSWORD = "PwEngine7731"
OTHER_PASSWORD = "PwOutOfBand99"


class Workspace(BaseWorkspace):
    """The BestProxy workspace; here the emulator's own API must succeed."""

    def api(self, path: str, **body: Any) -> dict[str, Any]:
        data = super().api(path, **body)
        assert data.get("code") == 200, data
        return data


def account_doc(name: str, *, remark: str = "", product_type: int = 9, protected: bool = False, **spec: Any) -> str:
    lines = [
        "apiVersion: reconciler/v1",
        "kind: ProxyAccount",
        "metadata:",
        f"  name: {name}",
    ]
    if protected:
        lines.append("  protected: true")
    lines += [
        "spec:",
        f"  username: {name}",
        "  password: file:secrets/pw",
        f"  productType: {product_type}",
        f"  remark: {json.dumps(remark, ensure_ascii=False)}",
    ]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


def accounts_file(ws: Workspace, names: list[str], *, remark: str = "", rel: str = "manifests/accounts.yaml", **kw: Any) -> Path:
    return ws.write(rel, "---\n".join(account_doc(n, remark=remark, **kw) for n in names))


@pytest.fixture
def bp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    yield from bestproxy_workspace(
        tmp_path, monkeypatch, cls=Workspace, app_key=APP_KEY, totp_secret=TOTP_SECRET, password=PASSWORD
    )  # type: ignore[misc]

"""Fixtures for the GitOps/CI contract tests: a BestProxy emulator on 127.0.0.1 (port 0) and a
working folder whose ``reconciler.yaml`` points at it with ``file:`` secret references, shaped like
``Sandbox.providers()`` does it. Commands run through click's ``CliRunner``; out-of-band changes go
through the emulator's own HTTP API with plain httpx (as another operator would make them)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from reconciler.cli import cli
from reconciler.sandbox.base import EmulatorServer
from reconciler.sandbox.bestproxy import BestProxyEmulator

# test-only credentials; distinctive so a leak is easy to find in bytes
APP_KEY = "EngineTestAppKeyQ7w8e9r0t1y2u3i4"
TOTP_SECRET = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BK"
PASSWORD = "PwEngine7731"
OTHER_PASSWORD = "PwOutOfBand99"


@dataclass
class Workspace:
    root: Path
    url: str
    emulator: BestProxyEmulator

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return p

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    # -- the emulator's own API (out-of-band changes) --------------------------------------
    def api(self, path: str, **body: Any) -> dict[str, Any]:
        if path.endswith("/list"):
            r = httpx.get(self.url + path, params={"app_key": APP_KEY, **body})
        else:
            r = httpx.post(self.url + path, json={"app_key": APP_KEY, **body})
        data = r.json()
        assert data.get("code") == 200, data
        return data

    def accounts(self) -> dict[str, dict[str, Any]]:
        return {a["username"]: a for a in self.api("/gateway/whitelist-account/list")["data"]["list"]}

    def ips(self, product_type: int) -> dict[str, str]:
        rows = self.api("/gateway/proxy-ip/list", product_type=product_type)["data"]["list"]
        return {i["ip"]: i["remark"] for i in rows}


def account_doc(name: str, *, remark: str = "", product_type: int = 9, protected: bool = False,
                **spec: Any) -> str:
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


def accounts_file(ws: Workspace, names: list[str], *, remark: str = "", rel: str = "manifests/accounts.yaml",
                  **kw: Any) -> Path:
    return ws.write(rel, "---\n".join(account_doc(n, remark=remark, **kw) for n in names))


@pytest.fixture
def bp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    emu = BestProxyEmulator(None, app_key=APP_KEY, totp_secret=TOTP_SECRET)
    server = EmulatorServer(emu).start()
    ws = Workspace(tmp_path, server.url, emu)
    ws.write("secrets/app_key", APP_KEY)
    ws.write("secrets/totp", TOTP_SECRET)
    ws.write("manifests/secrets/pw", PASSWORD)
    ws.write(
        "reconciler.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Config
        providers:
          bestproxy:
            base_url: {server.url}
            app_key: file:secrets/app_key
            retry_wait_initial: 0
            ip_delete_verification:
              type: totp
              totp_secret: file:secrets/totp
        """,
    )
    monkeypatch.chdir(tmp_path)
    yield ws
    server.stop()

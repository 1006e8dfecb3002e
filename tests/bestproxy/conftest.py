"""A BestProxy emulator on 127.0.0.1 (port 0) and a working folder whose reconciler.yaml points at
it, with secrets as file: references: ``bestproxy_workspace`` and its answer sets; the fixture
``bestproxy_ws`` that runs a test against each set is in tests/conftest.py (tests outside this
folder use it too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Any

import httpx
import pyotp
import pytest

from tests.support import CliWorkspace
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import BestProxyEmulator

APP_KEY = "TestOnlyAppKey0123456789abcdefAB"
TOTP_SECRET = pyotp.random_base32()
PASSWORD = "TestOnlyPw42"


@dataclass
class Workspace(CliWorkspace):
    url: str
    emulator: BestProxyEmulator
    app_key: str = APP_KEY

    def api(self, path: str, **body: object) -> dict:
        """Call the emulator's own API (out-of-band changes), as another operator would."""
        if path.endswith("/list"):
            r = httpx.get(self.url + path, params={"app_key": self.app_key, **body})
        else:
            r = httpx.post(self.url + path, json={"app_key": self.app_key, **body})
        return r.json()

    def accounts(self) -> dict[str, dict]:
        return {a["username"]: a for a in self.api("/gateway/whitelist-account/list")["data"]["list"]}

    def ips(self, product_type: int) -> dict[str, str]:
        data = self.api("/gateway/proxy-ip/list", product_type=product_type)["data"]["list"]
        return {i["ip"]: i["remark"] for i in data}

    def stats(self) -> dict[str, int]:
        return httpx.get(self.url + "/_sandbox/stats").json()

    def answered(self) -> dict[str, int]:
        """Requests answered so far (``stats`` counts them as they arrive)."""
        return httpx.get(self.url + "/_sandbox/stats/answered").json()


def bestproxy_workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    cls: type[Workspace] = Workspace,
    app_key: str = APP_KEY,
    totp_secret: str = TOTP_SECRET,
    password: str = PASSWORD,
    knobs: dict[str, Any] | None = None,
) -> Iterator[Workspace]:
    """A BestProxy emulator and a working folder (cwd) with a config pointing at it."""
    emu = BestProxyEmulator(None, app_key=app_key, totp_secret=totp_secret, **(knobs or {}))
    server = EmulatorServer(emu).start()
    ws = cls(tmp_path, server.url, emu, app_key)
    ws.write("secrets/app_key", app_key)
    ws.write("secrets/totp", totp_secret)
    ws.write("manifests/secrets/pw", password)
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


# Where the document is silent the emulator's answer is a knob: the product runs against both.
BESTPROXY_ANSWERS = {
    "documented": {},
    "strict": {
        "add_product_type": "required",
        "password_length": "everywhere",
        "ip_add_product_type": "required",
        "ip_product_types": "one",
        "batches": "partial",
        "udp_other_types": "ignored",
    },
}


def account_doc(name: str, **spec: object) -> str:
    fields = {"username": name, "password": "file:secrets/pw", "productType": 9, **spec}
    body = "\n".join(
        f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {str(v).lower() if isinstance(v, bool) else v}"
        for k, v in fields.items()
    )
    return f"apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata:\n  name: {name}\nspec:\n{body}\n"

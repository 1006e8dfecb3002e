"""Helpers to run the BestProxy emulator in tests (import from a conftest or a test module)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.bestproxy.emulator import SANDBOX_VERIFY_CODE, BestProxyEmulator

APP_KEY = "sandbox-only-app-key-not-a-secret"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32, 160 bits, test-only
USER_PRODUCT_IDS = {11: [1101, 1102]}

__all__ = [
    "APP_KEY",
    "SANDBOX_VERIFY_CODE",
    "TOTP_SECRET",
    "USER_PRODUCT_IDS",
    "BestProxyApi",
    "running_bestproxy",
]


@contextmanager
def running_bestproxy(state_dir: Path | str | None = None, **kwargs: Any) -> Iterator[EmulatorServer]:
    """A started BestProxy emulator on 127.0.0.1, port 0; stopped on exit."""
    kwargs.setdefault("app_key", APP_KEY)
    kwargs.setdefault("totp_secret", TOTP_SECRET)
    kwargs.setdefault("user_product_ids", USER_PRODUCT_IDS)
    server = EmulatorServer(BestProxyEmulator(state_dir, **kwargs)).start()
    try:
        yield server
    finally:
        server.stop()


class BestProxyApi:
    """Bare HTTP helper for emulator tests — deliberately not the product's client."""

    def __init__(self, base_url: str, app_key: str = APP_KEY):
        self.http = httpx.Client(base_url=base_url, timeout=5.0)
        self.app_key = app_key

    def get(self, path: str, **params: Any) -> httpx.Response:
        params.setdefault("app_key", self.app_key)
        return self.http.get(path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, **fields: Any) -> httpx.Response:
        """POST a JSON body with the app_key in it."""
        fields.setdefault("app_key", self.app_key)
        return self.http.post(path, json=fields)

    def post_form(self, path: str, **fields: Any) -> httpx.Response:
        fields.setdefault("app_key", self.app_key)
        return self.http.post(path, data={k: str(v) for k, v in fields.items()})

    def accounts(self) -> dict[str, dict[str, Any]]:
        body = self.get("/gateway/whitelist-account/list").json()
        assert body["code"] == 200, body
        return {a["username"]: a for a in body["data"]["list"]}

    def ips(self, product_type: int | None = None) -> list[tuple[str, int, str]]:
        body = self.get("/gateway/proxy-ip/list", product_type=product_type).json()
        assert body["code"] == 200, body
        return [(e["ip"], e["product_type"], e["remark"]) for e in body["data"]["list"]]

    def faults(self, **knobs: Any) -> dict[str, Any]:
        r = self.http.post("/_sandbox/faults", json=knobs)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.http.close()

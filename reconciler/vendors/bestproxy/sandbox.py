"""BestProxy in the embedded sandbox: its emulator and the connection that points at it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.serve import alnum, base32
from reconciler.vendor import VendorSandbox


class BestProxySandbox(VendorSandbox):
    credentials = {"app_key": alnum(32), "totp_secret": base32}

    def emulator(self, state_dir: Path, creds: Mapping[str, str], options: Mapping[str, Any]) -> Any:
        from reconciler.vendors.bestproxy.emulator import BestProxyEmulator

        return BestProxyEmulator(state_dir, app_key=creds["app_key"], totp_secret=creds["totp_secret"])

    def connection(self, url: str, ref: Callable[[str], str], options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "base_url": url,
            "app_key": ref("app_key"),
            "ip_delete_verification": {"type": "totp", "totp_secret": ref("totp_secret")},
        }

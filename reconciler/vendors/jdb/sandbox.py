"""JDB in the embedded sandbox: its emulator (one agent) and the connection that points at it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.serve import alnum
from reconciler.vendor import VendorSandbox

SANDBOX_JDB_DC = "sbx"
SANDBOX_JDB_AGENT = "sandboxag"


class JdbSandbox(VendorSandbox):
    credentials = {"key": alnum(16), "iv": alnum(16)}

    def emulator(self, state_dir: Path, creds: Mapping[str, str], options: Mapping[str, Any]) -> Any:
        from reconciler.vendors.jdb.emulator import JdbEmulator

        return JdbEmulator(state_dir, dc=SANDBOX_JDB_DC, key=creds["key"], iv=creds["iv"], agents=[SANDBOX_JDB_AGENT])

    def connection(self, url: str, ref: Callable[[str], str], options: Mapping[str, Any]) -> dict[str, Any]:
        return {"base_url": url, "dc": SANDBOX_JDB_DC, "key": ref("key"), "iv": ref("iv")}

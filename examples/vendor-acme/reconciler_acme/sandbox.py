"""Acme Edge in the embedded sandbox (``--sandbox``, ``reconciler sandbox serve``): its emulator,
serving the zone the user's config names, and the connection that points at it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reconciler.sandbox.serve import alnum
from reconciler.vendor import VendorSandbox

SANDBOX_ZONE = "sandbox"


class AcmeSandbox(VendorSandbox):
    # made once per sandbox state folder, kept there, handed over as a file: reference
    credentials = {"api_token": alnum(40)}
    # an option Sandbox(...) forwards to this vendor: the zone to serve (vendor-prefixed: options share one namespace)
    options = ("acme_zone",)

    def emulator(self, state_dir: Path, creds: Mapping[str, str], options: Mapping[str, Any]) -> Any:
        from reconciler_acme.emulator import AcmeEmulator  # loaded only when the sandbox starts

        return AcmeEmulator(state_dir, zones={options.get("acme_zone") or SANDBOX_ZONE: creds["api_token"]})

    def connection(self, url: str, ref: Callable[[str], str], options: Mapping[str, Any]) -> dict[str, Any]:
        return {"base_url": url, "api_token": ref("api_token"), "zone": options.get("acme_zone") or SANDBOX_ZONE}

    def options_from_config(self, section: Any, base_dir: Path) -> dict[str, Any]:
        return {"acme_zone": section.zone} if section is not None else {}

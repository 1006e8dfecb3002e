"""BestProxy's entry in the vendor registry (entry point ``reconciler.vendors: bestproxy``)."""

from __future__ import annotations

from typing import Any

from reconciler.vendor import VendorSpec
from reconciler.vendors.bestproxy.config import BestProxyProvider
from reconciler.vendors.bestproxy.sandbox import BestProxySandbox


def _kinds() -> tuple[type[Any], ...]:
    from reconciler.vendors.bestproxy.ip_allowlist import IpAllowlistKind
    from reconciler.vendors.bestproxy.proxy_account import ProxyAccountKind

    return (ProxyAccountKind, IpAllowlistKind)


VENDOR = VendorSpec(
    name="bestproxy",
    title="BestProxy",
    order=10,
    connection=BestProxyProvider,
    kinds=_kinds,
    # the seed's "Base URLs" is empty; the one public client of the documented /gateway/ endpoints
    # uses https://api.bestproxy.com (reference/bestproxy.md §2.1)
    documented_hosts=frozenset({"api.bestproxy.com"}),
    credential_fields=("app_key", "ip_delete_verification.totp_secret", "ip_delete_verification.code"),
    key_fields=("app_key",),
    secret_env_patterns=("BESTPROXY_*",),
    sandbox=BestProxySandbox(),
)

"""Acme Edge's entry in the vendor registry: the one object the core reads.

``pyproject.toml`` of this distribution exposes it as the entry point ``acme`` of the group
``reconciler.vendors``; the core finds it through ``importlib.metadata`` once the distribution is
installed, and names no vendor itself."""

from __future__ import annotations

from typing import Any

from reconciler.vendor import VendorSpec
from reconciler_acme.config import AcmeConnection
from reconciler_acme.sandbox import AcmeSandbox


def _kinds() -> tuple[type[Any], ...]:
    from reconciler_acme.cache_rule import CacheRuleKind  # imported explicitly: a typo fails at import

    return (CacheRuleKind,)


VENDOR = VendorSpec(
    name="acme",  # the config key (providers.acme) and the entry point's name
    title="Acme Edge",
    order=40,  # after the shipped vendors in listings and sandbox ports
    connection=AcmeConnection,
    kinds=_kinds,
    documented_hosts=frozenset({"api.acme-edge.example"}),  # API.md "Base URL": approved over HTTPS
    credential_fields=("api_token",),  # never a resource value, never exported
    key_fields=("api_token",),  # keys fingerprints and plan signatures (without settings.fingerprint_key)
    secret_env_patterns=("ACME_*",),  # the job's variables that hold Acme credentials: never a manifest's secret
    refused_codes=frozenset({"overloaded"}),  # 503 overloaded: refused, nothing written (API.md "Errors")
    sandbox=AcmeSandbox(),
)

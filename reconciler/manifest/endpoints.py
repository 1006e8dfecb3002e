"""Credentials go only to approved endpoints (DESIGN.md principle 7).

A provider connection carries credentials (BestProxy ``app_key`` in every query or body, the
TcaplusDB password hash header, the JDB key and IV that seal every request). In a pull request
the author controls ``reconciler.yaml``, so its ``base_url`` decides nothing by itself: a
connection is used only when the host *as written* (never judged by what it resolves to) is

- the vendor's documented API host (:func:`documented_hosts`, HTTPS only),
- a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``: the sandbox and tests), or
- approved outside the repository **for that vendor**: the environment variable
  ``RECONCILER_ALLOWED_ENDPOINTS`` and/or ``--allow-endpoint`` (comma- or space-separated
  ``VENDOR=ENTRY``, ENTRY being ``host``, ``host:port`` or ``scheme://host[:port]``). An approval
  names its vendor (``jdb=https://jdb-api.example.com``): an approval of a host for BestProxy does
  not send JDB's key and IV there. An entry without a scheme approves HTTPS only; plain HTTP must
  be approved as ``http://host[:port]`` (credentials in clear text is a choice the trusted side
  makes explicitly).

Otherwise the run stops with an error at the ``base_url`` line of the config before any request.
URLs with user information (``https://user:pw@host``) are refused outright: they can make one
parser see a different host from another. The HTTP transport connects to the host that
:func:`split_base_url` returns — the same parse this check judges — so no URL can be approved as
one host and sent to another.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import NamedTuple

# the URL parse lives in the bottom layer (reconciler/urls.py): the transport connects to the host it
# returns; re-exported here, where the endpoint check judges the same parse
from reconciler.urls import BaseUrl as BaseUrl, split_base_url as split_base_url
from reconciler.errors import InputError, Problem, UsageError
from reconciler.manifest.config import LoadedConfig

ENV = "RECONCILER_ALLOWED_ENDPOINTS"


def documented_hosts(vendor: str) -> frozenset[str]:
    """The hosts a vendor's documents name (``VendorSpec.documented_hosts``): approved over HTTPS."""
    from reconciler.vendor import vendor as vendor_spec

    spec = vendor_spec(vendor)
    return spec.documented_hosts if spec is not None else frozenset()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Approval(NamedTuple):
    vendor: str
    scheme: str  # "https" unless the entry says http://
    host: str
    port: int | None  # None: any port


class ApprovalError(ValueError):
    pass


def parse_approvals(text: str | None) -> list[Approval]:
    """One :class:`Approval` per ``VENDOR=ENTRY`` of an approval list; :class:`ApprovalError` for
    an entry that names no known vendor or is not a host."""
    from reconciler.manifest.config import vendor_names

    known = vendor_names()
    out = []
    for raw in re.split(r"[\s,]+", text or ""):
        if not raw:
            continue
        shown = raw if len(raw) <= 100 and raw.isprintable() else repr(raw[:100])
        vendor, eq, entry = raw.partition("=")
        vendor = vendor.strip().lower()
        if not eq or vendor not in known:
            raise ApprovalError(
                f"endpoint approval {shown}: name the vendor it approves ({', '.join(f'{v}=HOST' for v in known)}); "
                "an approval for one vendor never sends another vendor's credentials there"
            )
        scheme = "https"
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
            scheme = scheme.lower()
            if scheme not in ("http", "https"):
                raise ApprovalError(f"endpoint approval {shown}: only http:// and https:// hosts can be approved")
        entry = entry.split("/", 1)[0]
        m = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+)(?::(\d{1,5}))?", entry)
        if not m:
            raise ApprovalError(f"endpoint approval {shown}: not a host, host:port or scheme://host[:port]")
        host = m.group(1).strip("[]").lower().rstrip(".")
        out.append(Approval(vendor, scheme, host, int(m.group(2)) if m.group(2) else None))
    return out


def endpoint_problem(url: str, vendor: str, approvals: list[Approval]) -> str | None:
    """Why credentials may not be sent to ``url`` (``None``: they may)."""
    try:
        parsed = split_base_url(url)
    except ValueError as exc:
        return str(exc)
    host, port = parsed.host, parsed.port
    if _is_loopback(host):
        return None
    if host in documented_hosts(vendor) and parsed.scheme == "https":
        return None
    mine = [a for a in approvals if a.vendor == vendor and a.host == host and (a.port is None or a.port == port)]
    if any(a.scheme == parsed.scheme for a in mine):
        return None
    if mine and parsed.scheme == "http":
        return (
            f"host {host} is approved for {vendor} over HTTPS only: plain http:// sends the credentials in clear "
            f"text and must be approved explicitly ({vendor}=http://{host}:{port} in {ENV} or --allow-endpoint)"
        )
    others = sorted({a.vendor for a in approvals if a.vendor != vendor and a.host == host})
    documented = ", ".join(sorted(documented_hosts(vendor))) or "none documented"
    why = (
        f"host {host} is not an approved {vendor} endpoint: credentials are sent only to the "
        f"vendor's documented host ({documented}), a loopback address, or a host approved for {vendor} outside "
        f"the repository ({ENV} or --allow-endpoint, as {vendor}=HOST)"
    )
    if others:
        why += f"; it is approved for {', '.join(others)} only, and approvals are per vendor"
    return why


def check_endpoint(config: LoadedConfig, vendor: str, *, allowed: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` at the ``base_url`` line unless ``vendor``'s connection is approved."""
    provider = getattr(config.providers, vendor, None)
    if provider is None:
        return
    try:
        approvals = parse_approvals(os.environ.get(ENV)) + parse_approvals(" ".join(allowed))
    except ApprovalError as exc:
        raise UsageError(f"{ENV} / --allow-endpoint: {exc}") from None
    message = endpoint_problem(provider.base_url, vendor, approvals)
    if message is None:
        return
    bound = getattr(config, "connection", None)  # (vendor, name) of a named connection's view
    if bound and bound[1] != "default":
        where: tuple[str, ...] = ("connections", vendor, bound[1], "base_url")
    else:
        where = ("providers", vendor, "base_url")
    doc = config.connection_doc
    if doc is not None:
        problem = doc.problem(where, message, resource="Config")
    else:
        problem = Problem(str(config.path or "<config>"), 1, 1, "Config", ".".join(where), message)
    raise InputError([problem])

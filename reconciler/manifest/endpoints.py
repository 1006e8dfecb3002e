"""Credentials go only to approved endpoints (DESIGN.md principle 7).

A provider connection carries credentials (BestProxy ``app_key`` in every query or body, the
TcaplusDB password hash header, the JDB key and IV that seal every request). In a pull request
the author controls ``reconciler.yaml``, so its ``base_url`` decides nothing by itself: a
connection is used only when the host *as written* (never judged by what it resolves to) is

- the vendor's documented API host (:data:`DOCUMENTED_HOSTS`, HTTPS only),
- a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``: the sandbox and tests), or
- approved outside the repository: the environment variable ``RECONCILER_ALLOWED_ENDPOINTS``
  and/or ``--allow-endpoint`` (comma- or space-separated ``host``, ``host:port`` or
  ``scheme://host[:port]`` entries).

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
from urllib.parse import urlsplit

from reconciler.errors import InputError, Problem
from reconciler.manifest.config import LoadedConfig

ENV = "RECONCILER_ALLOWED_ENDPOINTS"

# BestProxy: the seed's "Base URLs" is empty; the one public client of the documented /gateway/
# endpoints uses https://api.bestproxy.com (reference/bestproxy.md §2.1). JDB gives the host to
# each operator privately ("JDB API Environment Setting.pdf") and TcaplusDB's REST endpoint is per
# cluster: neither has a documented public host, so they need loopback or an approval.
DOCUMENTED_HOSTS: dict[str, frozenset[str]] = {
    "bestproxy": frozenset({"api.bestproxy.com"}),
    "tcaplus": frozenset(),
    "jdb": frozenset(),
}


class BaseUrl(NamedTuple):
    scheme: str  # http or https
    host: str  # lower case, no trailing dot, IPv6 without brackets
    port: int  # explicit or the scheme's default
    explicit_port: bool
    path: str  # without a trailing slash ("" for none)


_HOST = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")


def split_base_url(url: str) -> BaseUrl:
    """The parts of a ``base_url``; ``ValueError`` (with the reason) for anything but a plain
    ``http(s)://host[:port][/path]``: no user information, query, fragment or odd host characters."""
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise ValueError("not a valid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if "@" in parts.netloc:
        raise ValueError("a base_url may not carry user information (user:password@)")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise ValueError("not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("a base_url may not carry a query or a fragment")
    if not _HOST.fullmatch(host):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("not a valid URL") from None
    return BaseUrl(scheme, host, port or (443 if scheme == "https" else 80), port is not None, parts.path.rstrip("/"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_approvals(text: str | None) -> list[tuple[str | None, str, int | None]]:
    """``(scheme, host, port)`` per entry of an approval list (scheme/port ``None`` = any)."""
    out = []
    for entry in re.split(r"[\s,]+", text or ""):
        if not entry:
            continue
        scheme = None
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
            scheme = scheme.lower()
        entry = entry.split("/", 1)[0]
        port: int | None = None
        m = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+))?", entry)
        if not m:
            continue
        host = m.group(1).strip("[]").lower().rstrip(".")
        if m.group(2):
            port = int(m.group(2))
        out.append((scheme, host, port))
    return out


def endpoint_problem(url: str, vendor: str, approvals: list[tuple[str | None, str, int | None]]) -> str | None:
    """Why credentials may not be sent to ``url`` (``None``: they may)."""
    try:
        parsed = split_base_url(url)
    except ValueError as exc:
        return str(exc)
    host, port = parsed.host, parsed.port
    if _is_loopback(host):
        return None
    if host in DOCUMENTED_HOSTS.get(vendor, frozenset()) and parsed.scheme == "https":
        return None
    for scheme, h, p in approvals:
        if h == host and (scheme is None or scheme == parsed.scheme) and (p is None or p == port):
            return None
    documented = ", ".join(sorted(DOCUMENTED_HOSTS.get(vendor, ()))) or "none documented"
    return (f"host {host} is not an approved {vendor} endpoint: credentials are sent only to the "
            f"vendor's documented host ({documented}), a loopback address, or a host approved outside "
            f"the repository ({ENV} or --allow-endpoint)")


def check_endpoint(config: LoadedConfig, vendor: str, *, allowed: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` at the ``base_url`` line unless ``vendor``'s connection is approved."""
    provider = getattr(config.providers, vendor, None)
    if provider is None:
        return
    approvals = parse_approvals(os.environ.get(ENV)) + parse_approvals(" ".join(allowed))
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

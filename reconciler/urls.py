"""Splitting a ``base_url`` into scheme, host, port and path: one parse for the endpoint check
(reconciler/manifest/endpoints.py judges the host it returns) and the HTTP transport (which
connects to that host), so no URL can be approved as one host and sent to another.

It sits in the bottom layer and imports nothing of reconciler's, so the transport
(``reconciler.clients``) needs nothing of ``reconciler.manifest`` (pydantic, YAML, the config
models): the import-linter contracts in pyproject.toml say so.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit


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

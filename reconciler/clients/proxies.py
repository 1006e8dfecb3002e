"""The proxy of the HTTP transport (:mod:`reconciler.clients.http`): read from the environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, as urllib reads them) once per base URL, never
from a file.
"""

from __future__ import annotations

import base64
from urllib.request import getproxies, proxy_bypass

from yarl import URL


def env_proxy(scheme: str, host: str) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy the environment names for ``scheme://host`` and its ``Proxy-Authorization``
    header, or ``(None, None)``: ``HTTPS_PROXY`` / ``HTTP_PROXY`` (lower case first, as urllib
    reads them), unless ``NO_PROXY`` lists the host (exactly, or as a domain suffix; ``*`` for
    every host). The same reading as aiohttp's ``trust_env`` (``get_env_proxy_for_url``), done
    once per base URL and without its ``.netrc`` look-up. Loopback is not special: a proxy is used
    for ``127.0.0.1`` too unless ``NO_PROXY`` names it (``NO_PROXY=127.0.0.1,localhost``)."""
    if proxy_bypass(host):
        return None, None
    value = getproxies().get(scheme)
    if not value:
        return None, None
    url = URL(value)
    if url.user is None:
        return url, None
    token = base64.b64encode(f"{url.user}:{url.password or ''}".encode("utf-8")).decode("ascii")
    return url.with_user(None), {"Proxy-Authorization": f"Basic {token}"}

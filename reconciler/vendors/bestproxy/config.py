"""A BestProxy connection in ``reconciler.yaml`` (``providers.bestproxy``, ``connections.bestproxy.<name>``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reconciler.manifest.config import Connection, Strict
from reconciler.manifest.secrets import SecretRef


class IpDeleteVerification(Strict):
    """How removals from an IP allowlist are verified (``/gateway/proxy-ip/delete``).

    ``totp``: the code is computed at apply time from the base32 secret behind ``totp_secret``.
    ``phone``/``email``/``wechat``: a one-time code must be supplied through ``code`` (a reference,
    typically ``env:NAME`` set just before the run).
    """

    type: Literal["totp", "phone", "email", "wechat"]
    totp_secret: SecretRef | None = None
    code: SecretRef | None = None


class BestProxyProvider(Connection):
    app_key: SecretRef
    concurrency: int = Field(default=2, ge=1, le=16)
    ip_delete_verification: IpDeleteVerification | None = None

"""What the two BestProxy kinds share: the client factory and the documented text rules."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, StrictStr

from reconciler.clients.bestproxy import BestProxyClient
from reconciler.errors import UsageError
from reconciler.kinds.base import RunContext

PRODUCT_TYPES = (9, 11, 14, 25)
ProductType = Literal[9, 11, 14, 25]
UDP_PRODUCT_TYPES = (14, 25)  # the seed names 14, 16, 21, 25; only 14 and 25 are account product types
MAX_LIMIT_GB = 102400
ALNUM = re.compile(r"^[A-Za-z0-9]+$")


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def check_remark(value: str) -> str:
    """At most 64 characters, or 32 when the remark contains Chinese (wide) characters."""
    if any(_is_cjk(ch) for ch in value):
        if len(value) > 32:
            raise ValueError(f"remark is {len(value)} characters; at most 32 when it contains Chinese characters")
    elif len(value) > 64:
        raise ValueError(f"remark is {len(value)} characters; at most 64")
    return value


Remark = Annotated[StrictStr, AfterValidator(check_remark)]


def make_client(ctx: RunContext) -> BestProxyClient:
    p = ctx.config.providers.bestproxy
    if p is None:
        raise UsageError("providers.bestproxy is not configured in the config file")
    return BestProxyClient(
        p.base_url,
        app_key=ctx.config_secret(p.app_key),
        timeout=p.timeout,
        retry=ctx.retry_policy(p),
        max_connections=p.concurrency,
        requests_per_second=p.requests_per_second,
    )


def provider_problem(ctx: RunContext, resources: list[Any]) -> list[Any]:
    """A document of a BestProxy kind with no provider configured is an input error."""
    if ctx.config.providers.bestproxy is None and resources:
        r = resources[0]
        return [r.doc.problem(("kind",), "providers.bestproxy is not configured in the config file", resource=r.ref)]
    if ctx.config.providers.bestproxy is not None and resources:
        p = ctx.config.providers.bestproxy
        doc = ctx.config.doc
        if doc is not None:
            ctx.resolve_secret(doc, ("providers", "bestproxy", "app_key"), p.app_key, resource="Config")
        else:
            try:
                ctx.config_secret(p.app_key)
            except Exception as exc:  # noqa: BLE001 - a SecretError with a safe message
                r = resources[0]
                return [r.doc.problem(("kind",), str(exc), resource=r.ref)]
    return []

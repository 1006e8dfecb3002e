"""What the two BestProxy kinds share: the client factory and the documented text rules."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, StrictStr

from reconciler.vendors.bestproxy.client import BestProxyClient, BestProxyParameterError
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.context import RunContext
from reconciler.kinds.writes import settle_batch

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


# -- batches whose outcome is per item ----------------------------------------------------------
# BestProxy's batch calls (comma-joined accounts or IPs) answer one code for the whole batch, and
# the document does not say whether a batch with one bad item is refused whole or applied but for
# that item. Either way each item's true outcome is found by reading back: items that took effect
# are done; when none did, the batch is split in halves and tried again until each refused item
# is found alone (bounded by ``budget`` extra calls), so one bad item never holds back the others.
ITEM_FIELDS = frozenset({"accounts", "ips"})
K = TypeVar("K")


def write_each(
    keys: Sequence[K], write: Callable[[list[K]], None], done: Callable[[list[K]], set[K]], *, what: str, budget: int = 32
) -> dict[K, str]:
    """Write ``keys`` in as few batch calls as the vendor allows; the keys that did not take effect,
    each with the vendor's reason (empty when all did). Unknown outcomes are settled by
    :func:`settle_batch` (read back, no blind repeat). A refusal naming a field other than the
    batch's items (a verification code, a remark, the app key), or any other error, fails the
    whole batch at once: splitting cannot help it."""
    failed: dict[K, str] = {}
    queue: list[list[K]] = [list(keys)] if keys else []
    calls = 0
    while queue:
        batch = queue.pop(0)
        if calls >= 1 + budget:
            failed.update((k, f"not tried on its own: {what} was refused for a batch holding it") for k in batch)
            continue
        calls += 1
        try:
            settle_batch(batch, write, done, what=what)
            continue
        except BestProxyParameterError as exc:
            refusal: ReconcilerError = exc
            splittable = not (set(exc.fields) - ITEM_FIELDS)
        except ReconcilerError as exc:
            refusal, splittable = exc, False
        try:
            have = done(batch)
        except ReconcilerError:
            have = set()
        rest = [k for k in batch if k not in have]
        if len(rest) <= 1 or not splittable or len(rest) < len(batch):
            # alone, not about the items, or the vendor applied the rest: these are refused
            failed.update((k, str(refusal)) for k in rest)
            continue
        half = len(rest) // 2
        queue += [rest[:half], rest[half:]]
    return failed


def failed_items(failed: dict[Any, str], keys: Sequence[Any], *, shown: int = 10) -> str:
    """One line naming the failed ones of ``keys`` and the first reason."""
    bad = [k for k in keys if k in failed]
    names = ", ".join(str(k) for k in bad[:shown]) + (f" and {len(bad) - shown} more" if len(bad) > shown else "")
    return f"{len(bad)} of {len(keys)} failed ({names}): {failed[bad[0]]}"

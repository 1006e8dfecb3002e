"""The retry policy of the HTTP transport (:mod:`reconciler.clients.http`): its limits
(:class:`RetryPolicy`), its clocks (:class:`Clock`), the wait a ``Retry-After`` asks for
(:func:`retry_after_seconds`) and stamina's retry context (:func:`retry_context`), loaded on
first use. The transport's retry hook (``HttpTransport._retry_hook``) decides each retry.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable


_stamina_quiet = False


def retry_context(**kwargs: Any) -> Any:
    """``stamina.retry_context(**kwargs)``. stamina and tenacity (21 modules, ~10 ms) are imported
    on first use: a run whose requests all succeed at once never loads them."""
    global _stamina_quiet
    import stamina

    if not _stamina_quiet:
        # stamina logs every scheduled retry as a warning; ours are one debug line per attempt
        # (shown with --debug) in HttpTransport.send, naming the vendor, host, operation and cause
        stamina.instrumentation.set_on_retry_hooks([])
        _stamina_quiet = True
    return stamina.retry_context(**kwargs)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    timeout: float = 60.0
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.2


@dataclass(frozen=True)
class Clock:
    """The clocks and sleeps of the retry waits (tests give a fake one: nothing really waits)."""

    monotonic: Callable[[], float] = time.monotonic  # the retry budget
    wall: Callable[[], float] = time.time  # "now" for a Retry-After given as an HTTP date
    sleep: Callable[[float], None] = time.sleep  # a wait outside an event loop (kept for callers; the transport awaits asleep)
    asleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # a Retry-After wait, on the request's event loop
    # a fraction in [0, 1) of RetryPolicy.wait_jitter added to a Retry-After wait, and to the waits
    # between a vendor's busy answers to a write: clients told the same wait do not come back together
    jitter: Callable[[], float] = random.random


REAL_CLOCK = Clock()


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """The wait a ``Retry-After`` value asks for, in seconds from ``now`` (epoch seconds): its
    delta-seconds, or its HTTP date minus ``now`` (0 for a date past); ``None`` when there is none
    or it is neither (the usual backoff applies then)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the date is UTC, as HTTP dates always are
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        return max(0.0, when.timestamp() - now)
    except (OverflowError, OSError, ValueError):
        return None

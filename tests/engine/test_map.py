"""``RunContext.map``: order kept, bounded concurrency, the earliest failure raised, and nothing new
started after a failure."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reconciler.kinds.base import RunContext


def test_results_in_order_with_at_most_the_concurrency_in_flight() -> None:
    lock = threading.Lock()
    now = peak = 0

    def work(x: int) -> int:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.001 * (x % 3))
        with lock:
            now -= 1
        return x * x

    assert RunContext.map(work, range(200), concurrency=4) == [x * x for x in range(200)]
    assert 1 < peak <= 4


def test_the_earliest_failure_is_raised_and_no_item_starts_after_one() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(x: int) -> int:
        with lock:
            started.append(x)
        if x in (5, 7):
            time.sleep(0.05 if x == 5 else 0)  # 7 fails first in time, 5 comes first in order
            raise ValueError(f"item {x}")
        time.sleep(0.01)
        return x

    with pytest.raises(ValueError, match="item 5"):
        RunContext.map(work, range(1000), concurrency=4)
    assert len(started) < 30  # stopped soon after the failure, not all 1,000


# -- RunContext.amap: the same rules on one event loop -------------------------------------------


def test_amap_results_in_order_with_at_most_the_concurrency_in_flight() -> None:
    now = peak = 0

    async def work(x: int) -> int:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.001 * (x % 3))
        now -= 1
        return x * x

    assert asyncio.run(RunContext.amap(work, range(200), concurrency=4)) == [x * x for x in range(200)]
    assert 1 < peak <= 4


def test_amap_raises_the_earliest_failure_and_starts_nothing_after_one() -> None:
    started: list[int] = []

    async def work(x: int) -> int:
        started.append(x)
        if x in (5, 7):
            await asyncio.sleep(0.05 if x == 5 else 0)  # 7 fails first in time, 5 comes first in order
            raise ValueError(f"item {x}")
        await asyncio.sleep(0.01)
        return x

    with pytest.raises(ValueError, match="item 5"):
        asyncio.run(RunContext.amap(work, range(1000), concurrency=4))
    assert len(started) < 30  # stopped soon after the failure, not all 1,000


def test_amap_reports_progress_for_every_item() -> None:
    seen: list[tuple[str, int, int | None]] = []
    ctx = RunContext.__new__(RunContext)
    ctx.on_progress = lambda what, done, total: seen.append((what, done, total))

    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert asyncio.run(RunContext.amap(work, range(5), concurrency=2, progress=(ctx, "reading"))) == list(range(5))
    assert seen == [("reading", n, 5) for n in range(1, 6)]

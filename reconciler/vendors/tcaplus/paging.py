"""Every record under a TcaplusDB index key, read page by page (PartkeyGetRecord ``limit``/``offset``).

The first page tells the total and how many records fit in one answer; the other pages are then
asked for together (up to ``concurrency`` at a time). A page that comes back shorter than the room
left before the next one (the 256 KB cap) leaves a gap, read in the next round; a page that comes
back empty (records deleted meanwhile) ends its range. The pages are read through the callable the
client gives (``read(limit, offset)``): this module knows the paging, not the wire.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

from reconciler.vendors.tcaplus.wire import PartkeyPage, VersionedRecord


def read_all(read: Callable[[int, int], PartkeyPage], page_size: int, concurrency: int) -> list[VersionedRecord]:
    """Every record ``read(limit, offset)`` pages through; the gaps of a round read in up to
    ``concurrency`` threads."""
    first = read(page_size, 0)
    pages: dict[int, list[VersionedRecord]] = {0: first.records}
    gaps = _first_gaps(first)
    while gaps:

        def read_gap(gap: tuple[int, int]) -> list[VersionedRecord]:
            start, stop = gap
            return read(stop - start, start).records

        if concurrency > 1 and len(gaps) > 1:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(gaps))) as pool:
                results = list(pool.map(read_gap, gaps))
        else:
            results = [read_gap(g) for g in gaps]
        gaps = _next_gaps(gaps, list(results), pages)
    return [vr for offset in sorted(pages) for vr in pages[offset]]


async def aread_all(
    read: Callable[[int, int], Awaitable[PartkeyPage]], page_size: int, concurrency: int
) -> list[VersionedRecord]:
    """:func:`read_all` on the running event loop: the same pages, the same gap rounds."""
    first = await read(page_size, 0)
    pages: dict[int, list[VersionedRecord]] = {0: first.records}
    gaps = _first_gaps(first)
    slots = asyncio.Semaphore(max(1, concurrency))
    while gaps:

        async def read_gap(gap: tuple[int, int]) -> list[VersionedRecord]:
            start, stop = gap
            async with slots:
                page = await read(stop - start, start)
            return page.records

        results = await asyncio.gather(*(read_gap(g) for g in gaps))
        gaps = _next_gaps(gaps, list(results), pages)
    return [vr for offset in sorted(pages) for vr in pages[offset]]


def _first_gaps(first: PartkeyPage) -> list[tuple[int, int]]:
    """The ranges left after the first page, each as long as the first page was."""
    step = len(first.records)
    if first.remain <= 0 or step == 0:
        return []
    end = step + first.remain
    return [(o, min(o + step, end)) for o in range(step, end, step)]


def _next_gaps(
    gaps: list[tuple[int, int]], results: list[list[VersionedRecord]], pages: dict[int, list[VersionedRecord]]
) -> list[tuple[int, int]]:
    """Store a round's pages; what a short page left of its range is read in the next round."""
    out = []
    for (start, stop), records in zip(gaps, results, strict=True):
        pages[start] = records
        if records and start + len(records) < stop:
            out.append((start + len(records), stop))
    return out

"""The cyclic garbage collector during a run.

A 1x no-op plan loads 2,212 documents and 20,000 records, then reads 10,010 records; with the
collector's defaults it spent 0.4 s of its 3 s of CPU (13%) collecting, most of it in five full
collections that walked every object the load had made (up to 216,000 of them), and found a few
dozen cycles. What a load makes lives until the run ends: the collector is paused while it is
made (:func:`long_lived`), and, in a process that runs one command (``reconciler``, see
:func:`one_run`), frozen after it (``gc.freeze``): later collections no longer walk it. Reference
counting frees objects as before; a cycle made during the load is collected after it, or, once
frozen, at exit. Measured in ``docs/performance.md`` ("The garbage collector").
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze_after_load = False


def one_run() -> None:
    """This process runs one command and exits (the ``reconciler`` entry point): freeze what has
    been made so far (the imported modules) and, from now on, what every load makes."""
    global _freeze_after_load
    _freeze_after_load = True
    gc.freeze()


@contextmanager
def long_lived() -> Iterator[None]:
    """Make objects that live for the rest of the run: no cyclic collection meanwhile; frozen
    after it in a process that runs one command (elsewhere, such as the tests or a library's
    caller, they are left to the collector)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _freeze_after_load:
            gc.freeze()
        if enabled:
            gc.enable()

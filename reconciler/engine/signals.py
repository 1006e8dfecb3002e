"""SIGINT/SIGTERM during an apply (DESIGN.md: interrupts never leave a write half-known).

The first signal stops the run: no new write starts, calls in flight finish (bounded), what was
done is reported and journaled, exit 130/143; a second Ctrl-C exits at once. Before the writes
begin, a signal simply ends the run (:class:`Interrupted`, nothing was written).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from reconciler.engine.journal import Journal
from reconciler.errors import ReconcilerError


class Interrupted(ReconcilerError):
    """SIGINT/SIGTERM before any write started (128 + the signal number)."""

    def __init__(self, signum: int):
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name}); nothing was written")


class ApplySignals:
    """The signal handlers of one apply (installed on the main thread only): ``ctx.stop`` is set by
    the first signal; ``applying`` says whether the writes have begun; ``journal`` is fsynced
    when a signal interrupts them. The handler's own lines go straight to file descriptor 2 (a
    signal handler must not take the locks of Python's streams)."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.signum: int | None = None
        self.applying = False
        self.journal: Journal | None = None  # fsynced when a signal interrupts the writes
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "ApplySignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.signum is not None:
            return  # stopping: a further Ctrl-C during the clean-up still exits at once
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                sys.stdout.flush()
                if self.journal is not None:
                    self.journal.sync_now()
                os.write(2, b"interrupted again: exiting now; writes in flight have an unknown outcome\n")
                os._exit(130)
            return
        self.signum = signum
        self.ctx.stop.set()
        if not self.applying:
            raise Interrupted(signum)
        if self.journal is not None:
            self.journal.sync_now()
        os.write(
            2,
            f"{signal.Signals(signum).name}: stopping - no new writes; waiting for the calls in "
            "flight (Ctrl-C again to exit at once)\n".encode(),
        )

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

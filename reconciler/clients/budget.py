"""The rate budget of the HTTP transport (:mod:`reconciler.clients.http`): at most
``requests_per_second`` requests per transport, spread evenly (a connection's ``requests_per_second``;
a planset's shard runs within its share of it). Every attempt, retries included, takes a slot.
"""

from __future__ import annotations

import threading
import time


class _Budget:
    """At most ``rate`` requests per second: each attempt takes the next free slot, 1/rate seconds
    after the one before (threads and event loops of one transport share the budget)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Seconds to wait before sending; the slot is taken."""
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
            return at - now

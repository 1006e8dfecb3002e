"""The TOTP codes that verify ``proxy-ip/delete``: one time step per code within a run."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from reconciler.errors import ReconcilerError
from reconciler.vendors.bestproxy.client import BestProxyClient

# Whether BestProxy takes a TOTP code twice is not documented (RFC 6238 §5.2 says a verifier should
# not): every delete of a run gets a code of a time step no earlier call of the run used, waiting for
# the next step when needed. ``clock`` and ``sleep`` are what the wait reads and does (tests replace
# both with a simulated clock the emulator shares).
clock: Callable[[], float] = time.time
sleep: Callable[[float], None] = time.sleep


def next_totp_code(secret: str, client: BestProxyClient) -> str:
    """A TOTP code for ``secret`` of a time step no earlier code made with ``client`` (one run's
    connection) used; the wait is at most one step (30 s)."""
    import pyotp  # loaded only when a TOTP code is computed

    totp = pyotp.TOTP(secret)
    key = hashlib.sha256(secret.encode()).hexdigest()
    with client.verify_lock:
        for _ in range(4):  # bounded: one wait reaches the next step of a clock that moves
            now = clock()
            step = int(now // totp.interval)
            last = client.verify_steps.get(key)
            if last is None or step > last:
                client.verify_steps[key] = step
                return totp.at(int(now))
            sleep((last + 1) * totp.interval - now + 0.05)
    raise ReconcilerError("proxy-ip/delete: the clock did not reach a new TOTP time step; no code was sent")

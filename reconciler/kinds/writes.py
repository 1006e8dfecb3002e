"""Writes whose outcome may be unknown, settled by reading back before any retry (DESIGN principle 2).

A write's reply can be lost after the vendor applied it (timeout, connection closed, a 5xx from
a proxy in front of the API). Repeating such a write blindly could fail against its own success
or duplicate it; not repeating it leaves the run unfinished. These helpers do what every kind
needs: on an unknown outcome, read the objects back by key, and write again only what did not
happen — a bounded number of times, in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from reconciler.errors import ApiError, ReconcilerError, TransportError

K = TypeVar("K")
ATTEMPTS = 3


def refused(vendor: str, code: object) -> bool:
    """Whether a 5xx answer's vendor ``code`` says the request was refused, not executed: a definite
    failure of the write (it fails; the next apply makes it), not an unknown outcome
    (``VendorSpec.refused_codes``)."""
    from reconciler.vendor import vendor as vendor_spec

    spec = vendor_spec(vendor)
    return spec is not None and code in spec.refused_codes


def unknown_outcome(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` may nevertheless have taken effect: no reply at all
    (timeout, connection closed), or a server error (5xx) that does not say it refused."""
    if isinstance(exc, TransportError):
        return True
    if not isinstance(exc, ApiError) or exc.http_status is None or exc.http_status < 500:
        return False
    return not refused(exc.vendor, exc.code)


class UnsettledError(ReconcilerError):
    """A write kept losing its reply and reading back shows it did not happen."""


def settle_batch(
    keys: Sequence[K], write: Callable[[list[K]], None], done: Callable[[list[K]], set[K]], *, what: str, attempts: int = ATTEMPTS
) -> None:
    """Write ``keys`` in one call; after an unknown outcome, ``done(keys)`` reads back which of
    them are in the desired state and only the rest are written again. Errors that say the write
    did not happen (a rejected parameter) are raised at once; so are read-back failures."""
    todo = list(keys)
    last: ReconcilerError | None = None
    for _ in range(attempts):
        try:
            write(todo)
            return
        except ReconcilerError as exc:
            if not unknown_outcome(exc):
                # a definite refusal — unless it refuses a repeat of a write that already
                # happened (the transport repeats state-setting writes after a lost reply, and
                # BestProxy answers "parameter error" to deleting a deleted account): read back
                try:
                    finished = not set(todo) - done(todo)
                except ReconcilerError:
                    finished = False
                if not finished:
                    raise
                return
            last = exc
        have = done(todo)
        todo = [k for k in todo if k not in have]
        if not todo:
            return
    raise UnsettledError(
        f"{what}: {len(todo)} of {len(keys)} not done after {attempts} attempts whose outcome was unknown (last: {last})"
    )


def settle_one(write: Callable[[], None], done: Callable[[], bool], *, what: str, attempts: int = ATTEMPTS) -> None:
    """:func:`settle_batch` for a single object."""
    settle_batch([0], lambda _k: write(), lambda _k: {0} if done() else set(), what=what, attempts=attempts)


# -- creates a killed run left half-finished ----------------------------------------------------
# A create that takes more than one call (BestProxy: ``add``, then ``proxy-account/change`` for the
# limits and a ``disable``) and is killed between them leaves an object the next plan sees as an
# existing one to update. Such an update finishes a create; the safety thresholds, which guard
# existing objects against mass updates, do not count it (``Change.impact`` 0) when the kind can
# tell from live state alone that it is one: created a short while ago (the vendor's own creation
# time), with this manifest's secret, and with nothing but what the create's later calls set still
# at a new object's values. With ``--journal``, ``--resume`` knows it from the journal instead.
UNFINISHED_CREATE_WINDOW = timedelta(hours=1)
UNFINISHED_CREATE_NOTE = (
    "finishes a create made less than an hour ago (the object still has a new one's values "
    "for what the create's later calls set): not counted by the safety thresholds"
)


def created_recently(created: datetime | None, now: datetime) -> bool:
    """Whether an object the vendor says was created at ``created`` is within
    :data:`UNFINISHED_CREATE_WINDOW` of ``now`` (a creation time ahead of ``now`` — clock skew —
    counts as recent; an unknown one does not)."""
    return created is not None and created >= now - UNFINISHED_CREATE_WINDOW

"""The partition of a sharded run (issue 26, DESIGN principle 13): which shard owns an object.

An object belongs to shard ``blake2b(tag, canonical identity) mod N + 1``. The identity is the
*unit* of its kind (:meth:`reconciler.kinds.base.Kind.shard_unit`: one vendor object is never
split, e.g. an IP allowlist is one unit) together with the kind and the named connection, so the
same key on two connections (two accounts) is two units. The hash is BLAKE2b with a fixed
personalisation tag, never Python's salted ``hash()``: every process, machine and Python version
agrees on it, which is what lets N independent CI jobs or Kubernetes pods split one run without
talking to each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reconciler.errors import UsageError

# recorded in every shard plan and planset: shards that hash differently never merge
ALGORITHM = "blake2b-64/reconciler-shard-v1"
_TAG = b"reconciler-shard"  # BLAKE2b personalisation (16 bytes): the "tag" of the partition
MAX_SHARDS = 1024


def canonical_identity(kind: str, connection: str, unit: str) -> bytes:
    """The bytes hashed for one unit: kind, named connection and unit, NUL-separated (none of
    them can hold a NUL: names are validated, keys come from JSON text)."""
    return f"{kind}\0{connection}\0{unit}".encode("utf-8", "surrogatepass")


def owner(kind: str, connection: str, unit: str, n: int) -> int:
    """The shard (1..n) owning ``unit`` of ``kind`` on ``connection``."""
    digest = hashlib.blake2b(canonical_identity(kind, connection, unit), digest_size=8, person=_TAG).digest()
    return int.from_bytes(digest, "big") % n + 1


@dataclass(frozen=True)
class Shard:
    """Shard ``k`` of ``n`` (1-based, as ``--shard K/N`` writes it)."""

    k: int
    n: int

    def __post_init__(self) -> None:
        if not (1 <= self.n <= MAX_SHARDS and 1 <= self.k <= self.n):
            raise UsageError(f"shard {self.k}/{self.n}: K/N needs 1 <= K <= N <= {MAX_SHARDS}")

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def owns(self, kind: str, connection: str, unit: str) -> bool:
        return owner(kind, connection, unit, self.n) == self.k


def parse_shard(text: str, *, source: str = "--shard") -> Shard:
    """``K/N`` (1-based) as written on the command line or in ``RECONCILER_SHARD``."""
    k, sep, n = text.strip().partition("/")
    if not sep or not k.isdigit() or not n.isdigit():
        raise UsageError(f"{source} {text!r}: expected K/N with whole numbers, e.g. 2/4 (shard 2 of 4, 1-based)")
    return Shard(int(k), int(n))

"""``--target KIND/NAME``: checked against the manifests before any API call.

A target names a manifest document (``KIND/NAME``) or an object identity a document declares
(``KIND/KEY``, e.g. a username or ``items|1001``; ``KIND/KEY@CONNECTION`` on a named connection). A target that names neither is an error before
anything is read — unless its kind has a prune scope, where it may address a live object no
manifest declares (a prune); that case is settled once the plan is made.
"""

from __future__ import annotations

from reconciler.engine.load import Loaded
from reconciler.errors import UsageError
from reconciler.kinds import KINDS
from reconciler.model import Plan, address


def check_target_syntax(targets: tuple[str, ...]) -> None:
    bad = [t for t in targets if "/" not in t or not t.split("/", 1)[0] or not t.split("/", 1)[1]]
    if bad:
        raise UsageError(f"--target {bad[0]}: expected KIND/NAME")
    unknown = sorted({t.split("/", 1)[0] for t in targets} - set(KINDS))
    if unknown:
        raise UsageError(f"--target {unknown[0]}/...: unknown kind (known: {', '.join(sorted(KINDS))})")


def declared_addresses(loaded: Loaded) -> set[str]:
    """Every ``KIND/NAME`` document and ``KIND/KEY`` identity the manifests declare."""
    out: set[str] = set()
    for kind_name, resources in loaded.resources.items():
        kind = KINDS[kind_name]()
        for r in resources:
            out.add(r.ref)
            for key, _ in kind.keys(r):
                out.add(f"{kind_name}/{key}")
                out.add(address(kind_name, key, getattr(r, "connection", "default")))
    return out


def check_targets_declared(loaded: Loaded, targets: tuple[str, ...]) -> None:
    """Before any API call: every target names a document or identity, or a kind with a prune scope."""
    if not targets:
        return
    known = declared_addresses(loaded)
    missing = [t for t in targets if t not in known and not loaded.scopes.get(t.split("/", 1)[0])]
    if missing:
        raise UsageError("; ".join(f"--target {t} matches no manifest document or declared identity" for t in missing))


def check_targets_matched(plan: Plan, loaded: Loaded, targets: tuple[str, ...]) -> None:
    """After planning: a target outside the declared set must have matched a change (a prune)."""
    known = declared_addresses(loaded)
    seen = {c.address for c in plan.changes} | {c.resource for c in plan.changes}
    missing = [t for t in targets if t not in known and t not in seen]
    if missing:
        raise UsageError(
            "; ".join(f"--target {t} matches no manifest document, declared identity or pruned object" for t in missing)
        )

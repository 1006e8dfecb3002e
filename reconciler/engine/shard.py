"""Sharded runs (issue 26, DESIGN principle 13): one plan split over N workers of an engine people
already run (a CI matrix, a Kubernetes Indexed Job), merged back into one plan and one gate.

- which shard a run is: ``--shard K/N``, else the engines' own variables (:func:`resolve_shard`);
- what it plans: :func:`narrow` keeps the changes and unmanaged objects the shard owns after a
  kind planned (kinds that are not ``shard_aware`` plan in full, so prune sees every declaration)
  and refuses a delete of anything a manifest declares;
- what a shard plan records for ``plan merge``: :func:`shard_record` (the shard, the algorithm,
  per kind the declared identities it owns as a count and a digest, the kinds whose counts are its
  own, and its planned calls per connection — the shared rate budget is divided by them);
- the rate budget: :func:`scaled_rates` runs a block with each connection's
  ``requests_per_second`` multiplied by the shard's share.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from reconciler.engine.load import Loaded
from reconciler.errors import UsageError
from reconciler.kinds.base import Kind, RunContext
from reconciler.kinds.shard import ALGORITHM, Shard, owner, parse_shard
from reconciler.model import DEFAULT_CONNECTION, Action, Change, KindPlan, scope_label

# The engines' variables (documented in docs/scale-out.md):
#   RECONCILER_SHARD=K/N                       any engine (1-based)
#   JOB_COMPLETION_INDEX + RECONCILER_SHARD_TOTAL   a Kubernetes Indexed Job: the index is 0-based and
#                                              the Job exposes no count, so N comes from our variable
#   CI_NODE_INDEX + CI_NODE_TOTAL              a GitLab job with `parallel:` (1-based)
ENV_SHARD = "RECONCILER_SHARD"
ENV_TOTAL = "RECONCILER_SHARD_TOTAL"
ENV_K8S_INDEX = "JOB_COMPLETION_INDEX"
ENV_GITLAB_INDEX, ENV_GITLAB_TOTAL = "CI_NODE_INDEX", "CI_NODE_TOTAL"


def _number(environ: Mapping[str, str], name: str) -> int:
    value = environ[name].strip()
    if not value.isdigit():
        raise UsageError(f"{name}={value!r}: expected a whole number")
    return int(value)


def resolve_shard(option: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard this run is, from ``--shard K/N`` and the engines' variables; None: not sharded.
    Every source that is set must name the same shard (a matrix with a hard-coded ``--shard``
    that disagrees with its engine's index would own objects twice or not at all)."""
    env = os.environ if environ is None else environ
    found: list[tuple[str, Shard]] = []
    if option:
        found.append(("--shard", parse_shard(option)))
    if env.get(ENV_SHARD):
        found.append((ENV_SHARD, parse_shard(env[ENV_SHARD], source=ENV_SHARD)))
    if env.get(ENV_K8S_INDEX):
        if not env.get(ENV_TOTAL):
            raise UsageError(
                f"{ENV_K8S_INDEX} is set (a Kubernetes Indexed Job) but {ENV_TOTAL} is not: set it to the "
                "Job's completions (the number of shards), or RECONCILER_SHARD=K/N"
            )
        found.append((f"{ENV_K8S_INDEX}+1/{ENV_TOTAL}", Shard(_number(env, ENV_K8S_INDEX) + 1, _number(env, ENV_TOTAL))))
    if env.get(ENV_GITLAB_INDEX):
        if not env.get(ENV_GITLAB_TOTAL):
            raise UsageError(f"{ENV_GITLAB_INDEX} is set but {ENV_GITLAB_TOTAL} is not")
        found.append(
            (f"{ENV_GITLAB_INDEX}/{ENV_GITLAB_TOTAL}", Shard(_number(env, ENV_GITLAB_INDEX), _number(env, ENV_GITLAB_TOTAL)))
        )
    if not found:
        return None
    if len({s for _, s in found}) > 1:
        raise UsageError(
            "the shard is given more than once and the values disagree: " + ", ".join(f"{where} says {s}" for where, s in found)
        )
    return found[0][1]


def owner_of(kind_cls: type[Kind[Any, Any]], connection: str, key: str, n: int) -> int:
    return owner(kind_cls.kind, connection, kind_cls.shard_unit(key), n)


def owns_change(shard: Shard, c: Change) -> bool:
    from reconciler.kinds import KINDS

    return owner_of(KINDS[c.kind], c.connection, c.key, shard.n) == shard.k


def owns_saved_change(shard: Shard) -> Callable[[Mapping[str, Any]], bool]:
    """Whether shard K owns a change as a plan file holds it (``read_plan(keep=...)``). A change
    whose kind, connection or key is not readable is kept: validation then names it."""
    from reconciler.kinds import KINDS

    def keep(c: Mapping[str, Any]) -> bool:
        kind, key, connection = c.get("kind"), c.get("key"), c.get("connection", DEFAULT_CONNECTION)
        kind_cls = KINDS.get(kind) if isinstance(kind, str) else None
        if kind_cls is None or not isinstance(key, str) or not isinstance(connection, str):
            return True
        return owner_of(kind_cls, connection, key, shard.n) == shard.k

    return keep


def narrow(kp: KindPlan, kind_cls: type[Kind[Any, Any]], connection: str, shard: Shard, declared: set[str]) -> KindPlan:
    """A kind's plan cut to what ``shard`` owns. A delete of an identity some document declares
    (in any shard) is refused: deletes come only from objects nothing declares anywhere."""
    refused = [c.address for c in kp.changes if c.action is Action.DELETE and c.key in declared]
    if refused:
        raise UsageError(
            f"shard {shard}: the plan deletes object(s) a manifest declares ({', '.join(refused[:20])}); "
            "refused: nothing declared anywhere is deleted"
        )
    kp.changes = [c for c in kp.changes if owner_of(kind_cls, connection, c.key, shard.n) == shard.k]
    if not kind_cls.shard_aware:
        kp.unmanaged = [u for u in kp.unmanaged if owner_of(kind_cls, connection, u.key, shard.n) == shard.k]
    return kp


def declared_by_part(loaded: Loaded, ctx: RunContext) -> dict[str, set[str]]:
    """Per scope label (kind, and ``@connection`` when named): every identity the manifests declare."""
    out: dict[str, set[str]] = {}
    for kind_cls, conn, resources, _ in loaded.parts():
        ids = kind_cls().declared_identities(resources, ctx.bind(kind_cls.vendor, conn))
        out.setdefault(scope_label(kind_cls.kind, conn), set()).update(ids)
    return out


def _digest(items: list[str]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode("utf-8", "surrogatepass") + b"\n")
    return "sha256:" + h.hexdigest()[:32]


def ownership(loaded: Loaded, ctx: RunContext, n: int) -> dict[int, dict[str, dict[str, Any]]]:
    """Per shard 1..n, per scope label: the declared identities it owns (count and digest) — what
    ``plan merge`` checks each shard plan's record against (coverage: every declared object is
    owned by exactly one shard, as the merge computes it from the manifests)."""
    from reconciler.kinds import KINDS

    by_shard: dict[int, dict[str, list[str]]] = {k: {} for k in range(1, n + 1)}
    for label, ids in declared_by_part(loaded, ctx).items():
        kind, _, conn = label.partition("@")
        kind_cls = KINDS[kind]
        for key in sorted(ids):
            by_shard[owner_of(kind_cls, conn or "default", key, n)].setdefault(label, []).append(key)
    return {
        k: {label: {"count": len(keys), "digest": _digest(keys)} for label, keys in sorted(parts.items())}
        for k, parts in by_shard.items()
    }


def planned_calls(changes: list[Change]) -> dict[str, int]:
    """API calls the changes will make, per ``vendor/connection`` (at least one per change)."""
    out: dict[str, int] = {}
    for c in changes:
        key = f"{c.vendor}/{c.connection}"
        out[key] = out.get(key, 0) + max(1, len(c.calls))
    return dict(sorted(out.items()))


def shard_record(loaded: Loaded, ctx: RunContext, shard: Shard, changes: list[Change]) -> dict[str, Any]:
    """What a shard plan (``plan --shard K/N --out``) records for ``plan merge``."""
    from reconciler.kinds import KINDS

    return {
        "k": shard.k,
        "n": shard.n,
        "algorithm": ALGORITHM,
        "owned": ownership(loaded, ctx, shard.n)[shard.k],
        "partitioned": sorted(
            scope_label(k, conn) for kc, conn, _, _ in loaded.parts() if (k := kc.kind) and KINDS[k].shard_aware
        ),
        "calls": planned_calls(changes),
    }


def rate_shares(calls: Mapping[int, Mapping[str, int]], connections: list[str], n: int) -> dict[int, dict[str, float]]:
    """Each shard's share of every connection's ``requests_per_second`` while applying, from the
    calls each shard plans (``calls[k][connection]``): half the budget split evenly, half in
    proportion to the planned calls. Every shard's apply first re-reads the live state it writes
    (and, for kinds planned in full, all of it), so a shard that plans no write on a connection
    still needs a part of its budget; a connection nobody writes to is split evenly. The shares of
    a connection sum to 1, so the shards together stay within its budget."""
    out: dict[int, dict[str, float]] = {k: {} for k in calls}
    for conn in sorted(set(connections) | {c for per in calls.values() for c in per}):
        total = sum(per.get(conn, 0) for per in calls.values())
        for k, per in calls.items():
            share = 1.0 / n if not total else 0.5 / n + 0.5 * per.get(conn, 0) / total
            out[k][conn] = round(share, 6)
    return out


@contextlib.contextmanager
def scaled_rates(ctx: RunContext, factors: Mapping[str, float]) -> Iterator[None]:
    """Within the block, each connection (``vendor/name``) with a ``requests_per_second`` runs at
    that rate times its factor (the shard's share of the budget), so N shards together stay
    within it; restored afterwards (a plan's and a planset's digests see the configured rates).
    Clients made inside the block keep the rate they were made with."""
    changed: list[tuple[Any, float]] = []
    try:
        for item, factor in factors.items():
            vendor, _, name = item.partition("/")
            conn = ctx.config.config.connection(vendor, name)
            rps = getattr(conn, "requests_per_second", None)
            if conn is None or rps is None:
                continue
            changed.append((conn, rps))
            conn.requests_per_second = max(rps * factor, 0.01)
        yield
    finally:
        for conn, rps in changed:
            conn.requests_per_second = rps


def equal_split(ctx: RunContext, shard: Shard) -> dict[str, float]:
    """Planning: before any shard knows its calls, each takes 1/N of every connection's budget."""
    return {f"{v}/{n}": 1.0 / shard.n for v, n, _ in ctx.config.config.all_connections()}


def plan_file_data(s: Any, plan: Any, *, created_at: str) -> dict[str, Any]:
    """A saved plan of this run (as ``plan --out`` writes it), with the ``shard`` section when the
    run is a shard (``s.ctx.options.shard``), signed under the run's key."""
    from reconciler.engine.planfile import plan_to_dict, sign_plan
    from reconciler.engine.session import shown_paths

    o = s.ctx.options
    data = plan_to_dict(
        plan,
        created_at=created_at,
        paths=shown_paths(s.paths),
        config_path=str(s.config.path) if s.config.path else None,
        sandbox=s.sandbox is not None,
        targets=list(o.targets),
        digest=s.digest(),
        resources=s.resource_digests(),
        config_sections=s.config_digests(),
        force=o.force,
        allow_replace=o.allow_replace,
        approve_exposure=o.approve_exposure,
        baseline=o.baseline.to_dict() if o.baseline else None,
        connections_digest=s.connections_digest(plan.connections),
        review=s.config.review,
    )
    if o.shard is not None:
        data["shard"] = shard_record(s.loaded, s.ctx, o.shard, plan.changes)
    return sign_plan(data, s.ctx.plan_signer(list(data.get("connections") or [])))

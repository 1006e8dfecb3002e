"""``plan merge``: N shard plans -> one signed planset, one gate, one review (issue 26).

The merge refuses shard plans that could own an object twice or not at all: plans that disagree
(format, partition algorithm, N, manifest and config digests, connections and their endpoints,
options), a missing or repeated shard, an unsigned or re-signed plan, an object planned by two
shards or by a shard that does not own it, a delete of anything a manifest declares, and shard
plans whose ownership records differ from what the manifests give (coverage). It then sums the
counts, judges the safety thresholds ONCE over the whole plan (``--force`` is given here and
nowhere else), and writes one Markdown that is the unsharded plan's apart from one line naming N.

Applying the planset, shard by shard, and joining the shards' outcomes: :mod:`reconciler.engine.planset_apply`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine import exposure
from reconciler.engine.planfile import PlanFile, plan_to_dict, sign_plan, signature_matches
from reconciler.engine.render import MARKDOWN_LIMIT, render_markdown
from reconciler.engine.run import check_safety
from reconciler.engine.shard import declared_by_part, owner_of, ownership, rate_shares
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.shard import ALGORITHM
from reconciler.model import Action, Change, Gap, Plan, Unmanaged


MAX_REASONS = 50  # lines a refused merge prints; the rest are counted (an object in two shards x 100,000)


class MergeRefused(ReconcilerError):
    """The shard plans cannot be merged: one line per reason (at most ``MAX_REASONS``); nothing is written."""

    def __init__(self, lines: list[str]):
        if len(lines) > MAX_REASONS:
            lines = lines[:MAX_REASONS] + [f"... and {len(lines) - MAX_REASONS} more reason(s)"]
        self._lines = lines
        super().__init__("; ".join(lines))

    def lines(self) -> list[str]:
        return self._lines


# what every shard plan of one run must agree on (field of the plan file, what it is called)
AGREE = (
    ("format_version", "the plan format"),
    ("paths", "the manifest paths"),
    ("config_path", "the config file"),
    ("sandbox", "--sandbox"),
    ("environment", "the environment"),
    ("targets", "--target"),
    ("allow_replace", "--allow-replace"),
    ("approve_exposure", "--approve-exposure"),
    ("review", "review mode (RECONCILER_CONNECTIONS_FROM)"),
    ("digest", "the manifest and config digests"),
    ("resources", "the manifest documents"),
    ("config_sections", "the trusted config sections"),
    ("connections", "the connections"),
    ("connections_digest", "the connection settings and endpoints"),
    ("baseline", "the baseline plan"),
    ("not_restored", "the incomplete documents"),
)


@dataclass
class ShardPlan:
    path: Path
    pf: PlanFile
    plan: Plan


@dataclass
class Merged:
    plan: Plan
    data: dict[str, Any]  # the signed planset (a saved plan with a ``planset`` section)
    safety: list[str]
    markdown: str
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return str(self.data["planset"]["verdict"])


def shard_line(n: int) -> str:
    """The one line a merged Markdown adds to the unsharded one."""
    return f"_Merged from {n} shard plan(s) (`plan merge`; partition {ALGORITHM}); counts and safety thresholds are over all shards._"


def _label_kind(label: str) -> str:
    return label.split("@", 1)[0]


def _check_agreement(plans: list[ShardPlan]) -> list[str]:
    out: list[str] = []
    first = plans[0]
    for sp in plans:
        if sp.pf.shard is None:
            out.append(f"{sp.path}: not a shard plan (made without --shard K/N)")
    if out:
        return out
    fields = {name for name, _ in AGREE}  # dumped alone: dumping each plan's changes too took a second a planset
    ref = first.pf.model_dump(mode="json", include=fields)
    ref_shard = first.pf.shard
    assert ref_shard is not None
    for sp in plans[1:]:
        other = sp.pf.model_dump(mode="json", include=fields)
        assert sp.pf.shard is not None
        for name, what in AGREE:
            if ref.get(name) != other.get(name):
                out.append(f"{sp.path} and {first.path} disagree on {what}")
        if sp.pf.shard.algorithm != ref_shard.algorithm:
            out.append(
                f"{sp.path} and {first.path} disagree on the partition algorithm "
                f"({sp.pf.shard.algorithm} vs {ref_shard.algorithm})"
            )
        if sp.pf.shard.n != ref_shard.n:
            out.append(f"{sp.path} and {first.path} disagree on N ({sp.pf.shard.n} vs {ref_shard.n} shards)")
        if sorted(sp.pf.shard.partitioned) != sorted(ref_shard.partitioned):
            out.append(f"{sp.path} and {first.path} disagree on which kinds are planned per shard")
    if ref_shard.algorithm != ALGORITHM:
        out.append(f"{first.path}: partition algorithm {ref_shard.algorithm} is not this version's ({ALGORITHM})")
    return out


def _check_shards(plans: list[ShardPlan], n: int) -> list[str]:
    out = []
    seen: dict[int, Path] = {}
    for sp in plans:
        assert sp.pf.shard is not None
        k = sp.pf.shard.k
        if k in seen:
            out.append(f"shard {k}/{n} given twice ({seen[k]} and {sp.path})")
        seen.setdefault(k, sp.path)
    missing = [k for k in range(1, n + 1) if k not in seen]
    if missing:
        out.append(
            f"missing shard plan(s) {', '.join(f'{k}/{n}' for k in missing)}: every shard 1..{n} is needed "
            "(objects they own would be planned by nobody)"
        )
    return out


def merge_plans(
    plans: list[ShardPlan], *, loaded: Any, session: Any, force: bool, created_at: str, limit: int = MARKDOWN_LIMIT
) -> Merged:
    """Check and merge shard plans. ``session`` is the merge's own run (config, manifests loaded
    as ``loaded``, no API call): the shard plans must have been made from the same manifests and
    config, signed with this run's key, and must cover the manifests."""
    from reconciler.kinds import KINDS

    if not plans:
        raise UsageError("plan merge needs the shard plans (plan --shard K/N --out FILE) to merge")
    problems = _check_agreement(plans)
    if problems:
        raise MergeRefused(problems)
    first = plans[0].pf
    assert first.shard is not None
    n = first.shard.n
    problems += _check_shards(plans, n)
    ctx = session.ctx
    # signatures: each shard plan as the trusted side made it (under this run's key)
    try:
        signer = ctx.plan_signer(sorted(first.connections))
    except ReconcilerError as exc:
        raise UsageError(f"cannot check the shard plans' signatures: {exc}") from None
    for sp in plans:
        if signer is not None and not signature_matches(sp.pf, signer):
            problems.append(
                f"{sp.path}: its signature does not match (changed after it was made, or made with other "
                "credentials or fingerprint key)"
            )
    # the workspace the merge runs in: the same manifests, config and connections
    if session.digest() != first.digest.model_dump():
        problems.append("the shard plans were made from other manifests or config than this workspace's")
    if session.connections_digest(list(first.connections)) != first.connections_digest:
        problems.append("the shard plans were made for other connection settings or endpoints than this run's")
    # coverage: each shard's record of what it owns is what the manifests give
    expected = ownership(loaded, ctx, n)
    for sp in plans:
        assert sp.pf.shard is not None
        got = {label: o.model_dump() for label, o in sp.pf.shard.owned.items()}
        if 1 <= sp.pf.shard.k <= n and got != expected[sp.pf.shard.k]:
            problems.append(
                f"{sp.path}: owns other declared objects than shard {sp.pf.shard.k}/{n} of these manifests "
                "(different inputs or partition)"
            )
    # objects: each in exactly one shard, the one that owns it; no delete of a declared identity
    declared = declared_by_part(loaded, ctx)
    where: dict[str, int] = {}
    for sp in plans:
        assert sp.pf.shard is not None
        k = sp.pf.shard.k
        for c in sp.plan.changes:
            if c.kind not in KINDS:
                problems.append(f"{sp.path}: unknown kind {c.kind}")
                continue
            if c.address in where:
                problems.append(f"{c.address} is planned by two shards ({where[c.address]} and {k})")
            where.setdefault(c.address, k)
            own = owner_of(KINDS[c.kind], c.connection, c.key, n)
            if own != k:
                problems.append(f"{sp.path}: {c.address} is planned by shard {k} but shard {own} owns it")
            if c.action is Action.DELETE and c.key in declared.get(c.scope, set()):
                problems.append(f"{sp.path}: deletes {c.address}, which a manifest declares")
        if sp.plan.failed:
            problems.append(f"{sp.path}: incomplete (live state not read for {', '.join(sorted(sp.plan.failed))})")
    if problems:
        raise MergeRefused(problems)
    plan = _merged_plan(plans)
    plan.exposure = exposure.summarize(plan, ctx.config.settings, approved=bool(first.approve_exposure))
    safety = check_safety(plan, ctx)
    verdict = "safe" if not safety else ("forced" if force else "unsafe")
    connections = [f"{vendor}/{name}" for vendor, name, _ in ctx.config.config.all_connections()]
    shares = rate_shares({sp.pf.shard.k: sp.pf.shard.calls for sp in plans if sp.pf.shard}, connections, n)
    shards = []
    for sp in sorted(plans, key=lambda p: p.pf.shard.k if p.pf.shard else 0):
        assert sp.pf.shard is not None
        shards.append(
            {
                "k": sp.pf.shard.k,
                "counts": sp.plan.counts(),
                "calls": dict(sp.pf.shard.calls),
                "rate_share": shares[sp.pf.shard.k],
                "plan_signature": sp.pf.signature,
            }
        )
    data = plan_to_dict(
        plan,
        created_at=created_at,
        paths=list(first.paths),
        config_path=first.config_path,
        sandbox=first.sandbox,
        targets=list(first.targets),
        digest=first.digest.model_dump(),
        resources=dict(first.resources),
        config_sections=dict(first.config_sections),
        force=force,
        allow_replace=first.allow_replace,
        baseline=first.baseline,
        connections_digest=first.connections_digest,
        review=first.review,
        approve_exposure=first.approve_exposure,
    )
    data["planset"] = {"n": n, "algorithm": first.shard.algorithm, "verdict": verdict, "unsafe": safety, "shards": shards}
    data = sign_plan(data, signer)
    markdown = merged_markdown(plan, n, safety=safety, keys_only=first.review, limit=limit)
    return Merged(plan=plan, data=data, safety=safety, markdown=markdown)


def merged_markdown(plan: Plan, n: int, *, safety: list[str], keys_only: bool = False, limit: int = MARKDOWN_LIMIT) -> str:
    """The unsharded Markdown with one line naming N after the title (kept within ``limit``)."""
    line = shard_line(n)
    text = render_markdown(plan, safety=safety, keys_only=keys_only, limit=limit - len(line) - 2)
    title, sep, rest = text.partition("\n")  # rest starts with the blank line after the title
    return title + sep + "\n" + line + rest


def _merged_plan(plans: list[ShardPlan]) -> Plan:
    """Changes and unmanaged objects joined; counts summed for kinds planned per shard and taken once
    for the others (every shard planned those in full, so they must agree)."""
    first = plans[0]
    assert first.pf.shard is not None
    partitioned = set(first.pf.shard.partitioned)
    partitioned_kinds = {_label_kind(label) for label in partitioned}
    problems: list[str] = []
    noops: dict[str, int] = {}
    existing: dict[str, int] = {}
    for sp in plans:
        for kind, count in sp.plan.noops.items():
            if kind in partitioned_kinds:
                noops[kind] = noops.get(kind, 0) + count
            elif noops.setdefault(kind, count) != count:
                problems.append(
                    f"{sp.path}: saw {count} unchanged {kind} where {first.path} saw {noops[kind]}: live "
                    "state changed between the shard plans; make them again"
                )
        for label, count in sp.plan.existing_in_scope.items():
            if label in partitioned:
                existing[label] = existing.get(label, 0) + count
            elif existing.setdefault(label, count) != count:
                problems.append(
                    f"{sp.path}: saw {count} existing {label} in scope where {first.path} saw "
                    f"{existing[label]}: live state changed between the shard plans; make them again"
                )
    if problems:
        raise MergeRefused(problems)
    changes: list[Change] = [c for sp in plans for c in sp.plan.changes]
    unmanaged: dict[str, Unmanaged] = {}
    for sp in plans:
        for u in sp.plan.unmanaged:
            unmanaged.setdefault(u.address, u)
    gaps: dict[tuple[str, str, str, str], Gap] = {}
    for sp in plans:
        for g in sp.plan.uncompared:
            key = (g.kind, g.connection, g.field, g.why)
            if key in gaps and g.scope in partitioned:
                gaps[key].resources += g.resources
            else:
                gaps.setdefault(key, Gap(g.kind, g.why, g.field, g.resources, g.connection))
    plan = Plan(
        changes=changes,
        noops=noops,
        unmanaged=list(unmanaged.values()),
        warnings=_unique(w for sp in plans for w in sp.plan.warnings),
        existing_in_scope=existing,
        environment=first.plan.environment,
        connections=list(first.plan.connections),
        out_of_band=_unique(x for sp in plans for x in sp.plan.out_of_band),
        not_restored=list(first.plan.not_restored),
        uncompared=list(gaps.values()),
        differs=_unique(x for sp in plans for x in sp.plan.differs),
    )
    plan.sort()
    return plan


def _unique(items: Any) -> list[Any]:
    return list(dict.fromkeys(items))

"""``plan merge``: N shard plans -> one signed planset, one gate, one review (issue 26).

The merge refuses shard plans that could own an object twice or not at all: plans that disagree
(format, partition algorithm, N, manifest and config digests, connections and their endpoints,
options), a missing or repeated shard, an unsigned or re-signed plan, an object planned by two
shards or by a shard that does not own it, a delete of anything a manifest declares, and shard
plans whose ownership records differ from what the manifests give (coverage). It then sums the
counts, judges the safety thresholds ONCE over the whole plan (``--force`` is given here and
nowhere else), and writes one Markdown that is the unsharded plan's apart from one line naming N.

Applying: :func:`planset_part` gives shard K its changes and its share of the rate budget.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine import exposure
from reconciler.engine.planfile import PlanFile, plan_to_dict, sign_plan, signature_matches
from reconciler.engine.render import MARKDOWN_LIMIT, render_markdown
from reconciler.engine.run import check_safety
from reconciler.engine.shard import owner_of, ownership, declared_by_part
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.shard import ALGORITHM, Shard
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
    ref = first.pf.model_dump(mode="json")
    ref_shard = first.pf.shard
    assert ref_shard is not None
    for sp in plans[1:]:
        other = sp.pf.model_dump(mode="json")
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
    totals: dict[str, int] = {}
    for sp in plans:
        assert sp.pf.shard is not None
        for conn, calls in sp.pf.shard.calls.items():
            totals[conn] = totals.get(conn, 0) + calls
    shards = []
    for sp in sorted(plans, key=lambda p: p.pf.shard.k if p.pf.shard else 0):
        assert sp.pf.shard is not None
        shards.append(
            {
                "k": sp.pf.shard.k,
                "counts": sp.plan.counts(),
                "calls": dict(sp.pf.shard.calls),
                "rate_share": {
                    conn: round(sp.pf.shard.calls.get(conn, 0) / total, 6) for conn, total in sorted(totals.items()) if total
                },
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


def planset_part(pf: PlanFile, changes: list[Change], shard: Shard | None) -> tuple[list[Change], dict[str, float]]:
    """What ``apply PLANSET --shard K/N`` applies: the changes shard K owns and its share of each
    connection's rate budget. Refused when the planset's verdict is unsafe or N differs."""
    from reconciler.engine.shard import owns_change

    if pf.shard is not None:
        raise UsageError(
            f"a shard plan ({pf.shard.k}/{pf.shard.n}) is never applied alone: its thresholds were not "
            "judged; merge the shard plans (`reconciler plan merge ... --out PLANSET`) and apply the planset"
        )
    ps = pf.planset
    if ps is None:
        if shard is not None:
            raise UsageError(
                "--shard with a saved plan needs a planset (`plan merge`): a plan made without shards is applied whole"
            )
        return changes, {}
    if ps.verdict == "unsafe":
        raise UsageError(
            "the planset exceeds the safety thresholds (judged over all shards at `plan merge`): "
            + "; ".join(ps.unsafe[:5])
            + "; nothing was applied (merge again with --force if intended)"
        )
    if shard is None:
        return changes, {}
    if shard.n != ps.n:
        raise UsageError(f"--shard {shard}: the planset was merged from {ps.n} shards; apply it as K/{ps.n}")
    mine = [c for c in changes if owns_change(shard, c)]
    part = next((s for s in ps.shards if s.k == shard.k), None)
    return mine, dict(part.rate_share) if part is not None else {}


def planset_digest(pf: PlanFile) -> str:
    """Names one planset in shard reports (its signature, else its changes)."""
    blob = (pf.signature or "") + "|" + str(len(pf.changes))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def verify_planset(path: Path, pf: PlanFile, changes: list[Change], session: Any) -> None:
    """A planset (or any saved plan) is applied only under this run's signature and for the
    connection settings it was made for (the checks ``apply PLANFILE`` makes)."""
    covered = set(pf.connections)
    outside = sorted({f"{c.vendor}/{c.connection}" for c in changes} - covered)
    if outside:
        raise UsageError(f"{path}: changes on connections the plan does not cover ({', '.join(outside)})")
    try:
        signer = session.ctx.plan_signer(sorted(covered))
    except ReconcilerError as exc:
        raise UsageError(f"{path}: cannot check the signature: {exc}") from None
    if signer is not None and not signature_matches(pf, signer):
        raise UsageError(
            f"{path}: its signature does not match how it says it was made; it was changed after "
            "it was made, or made with other credentials or fingerprint key"
        )
    if pf.connections_digest != session.connections_digest(list(pf.connections)):
        raise UsageError(f"{path}: made for other connection settings than this run's")


def apply_part(
    session: Any, pf: PlanFile, saved: Plan, shard: Shard | None, *, path: Path, journal: Any = None, on_outcome: Any = None
) -> tuple[list[Any], Plan]:
    """Apply shard ``shard``'s part of a planset (engine level: the CLI adds confirmation, output
    and signals). A fresh plan of the shard (same manifests, digest-checked) is matched against the
    reviewed changes (``run.reconcile_saved``): only what it reproduces is written, so a retried
    shard writes only what is left. Runs within the shard's share of each rate budget.
    Returns the outcomes (stale and skipped ones included) and the fresh plan."""
    from reconciler.engine import freshness, run
    from reconciler.engine.shard import scaled_rates
    from reconciler.model import Outcome

    verify_planset(path, pf, saved.changes, session)
    mine, shares = planset_part(pf, saved.changes, shard)
    session.ctx.options.shard = shard
    loaded = session.load()
    with scaled_rates(session.ctx, shares):
        fresh = run.make_plan(loaded, session.ctx, kinds={c.kind for c in mine})
        changed = freshness.changed_dependencies(
            mine,
            planned_docs=pf.resources,
            docs_now=session.resource_digests(),
            planned_config=pf.config_sections,
            config_now=session.config_digests(),
        )
        if changed:
            raise UsageError(f"{path}: changed since this plan was made: {freshness.describe(changed)}; make a new plan")
        unread = [
            Outcome(c, "failed", f"live state could not be read: {fresh.failed[c.scope]}")
            for c in mine
            if c.scope in fresh.failed
        ]
        to_apply, stale = run.reconcile_saved([c for c in mine if c.scope not in fresh.failed], fresh)
        run.refuse_blocked(Plan(changes=to_apply))
        outcomes = run.apply_changes(to_apply, session.ctx, journal=journal, on_outcome=on_outcome)
    return unread + stale + outcomes, fresh


# -- apply merge-report: the shards' journals joined into one outcome ------------------------------
@dataclass
class ShardReport:
    path: Path
    shard: Shard
    planset: str
    at: str
    status: str  # finished | interrupted | not finished (killed: no end record)
    exit_code: int | None
    counts: dict[str, int]


def read_report(path: Path) -> ShardReport:
    """One shard's apply journal (``apply PLANSET --shard K/N --journal FILE``) as a report."""
    from reconciler.engine.journal import read_journal
    from reconciler.kinds.shard import parse_shard

    state = read_journal(path)
    run = state.last_run
    if state.empty or not run.get("shard") or not run.get("planset"):
        raise UsageError(f"{path}: not the journal of a shard's apply (apply PLANSET --shard K/N --journal FILE)")
    ended = state.ended
    counts: dict[str, int] = {}
    for status in state.outcomes.values():
        counts[status] = counts.get(status, 0) + 1
    return ShardReport(
        path=path,
        shard=parse_shard(str(run["shard"]), source=str(path)),
        planset=str(run["planset"]),
        at=str(run.get("at", "")),
        status=str(ended.get("status")) if ended else "not finished",
        exit_code=int(ended["exit_code"]) if ended and isinstance(ended.get("exit_code"), int) else None,
        counts=dict(sorted(counts.items())),
    )


def merge_reports(paths: list[Path]) -> tuple[list[str], int]:
    """Join the shards' reports into one outcome: one line per shard and a last line, and one exit
    code — 0 every shard applied all of its part; 3 some change was stale (and none failed); 4 some
    shard failed, was interrupted or never finished (retry that shard: it writes only what is
    left); 1 a shard's report is missing or the reports are of different plansets. A shard run more
    than once (a retry) counts by its latest run."""
    if not paths:
        raise UsageError("apply merge-report needs the shards' journals")
    reports = [read_report(p) for p in paths]
    lines: list[str] = []
    plansets = sorted({r.planset for r in reports})
    if len(plansets) > 1:
        raise UsageError("the reports are of different plansets (" + ", ".join(plansets) + "); give one run's reports")
    ns = sorted({r.shard.n for r in reports})
    if len(ns) > 1:
        raise UsageError(f"the reports disagree on N ({', '.join(map(str, ns))})")
    n = ns[0]
    latest: dict[int, ShardReport] = {}
    for r in sorted(reports, key=lambda r: r.at):
        if r.shard.k in latest:
            lines.append(f"shard {r.shard}: {latest[r.shard.k].path} superseded by the later run in {r.path}")
        latest[r.shard.k] = r
    code = 0
    for k in range(1, n + 1):
        found = latest.get(k)
        if found is None:
            lines.append(f"shard {k}/{n}: no report: not known whether it applied anything")
            continue
        r = found
        counts = ", ".join(f"{v} {s}" for s, v in r.counts.items()) or "nothing to do"
        if r.exit_code is None:
            lines.append(f"shard {r.shard}: {r.status} ({counts}); retry this shard: it writes only what is left")
            code = 4
        else:
            verdict = {0: "ok", 3: "stale changes", 4: "partial"}.get(r.exit_code, f"exit {r.exit_code}")
            lines.append(f"shard {r.shard}: {r.status}, {verdict} ({counts})")
            if r.exit_code not in (0, 3):
                code = 4
            elif r.exit_code == 3 and code == 0:
                code = 3
    missing = [k for k in range(1, n + 1) if k not in latest]
    total: dict[str, int] = {}
    for r in latest.values():
        for s, v in r.counts.items():
            total[s] = total.get(s, 0) + v
    summary = ", ".join(f"{v} {s}" for s, v in sorted(total.items())) or "nothing applied"
    if missing:
        lines.append(f"Apply of {n} shard(s): {summary}; {len(missing)} shard report(s) missing: the outcome is not known.")
        return lines, 4 if code == 4 else 1
    word = {0: "complete", 3: "complete but some changes were stale", 4: "partial"}[code]
    lines.append(f"Apply of {n} shard(s): {word}: {summary}.")
    return lines, code


def open_shard_journal(path: Path, pf: PlanFile, shard: Shard | None) -> tuple[Any, list[str], set[str]]:
    """The journal of a planset shard's apply. A retry of the same shard of the same planset whose
    earlier attempt did not finish (a killed pod, a failed job) continues that journal: its last
    run is what ``apply merge-report`` reads, and the notes say what the attempt left in flight
    (the fresh plan reads those back from live state: nothing is written twice). The third value:
    addresses the earlier attempts started and did not finish (see :func:`finish_started`)."""
    from reconciler.engine.journal import Journal, read_journal

    notes: list[str] = []
    if shard is not None and not path.is_symlink() and path.exists() and path.stat().st_size:
        state = read_journal(path)
        run = state.last_run
        same = run.get("shard") == str(shard) and run.get("planset") == planset_digest(pf)
        if same and not state.complete:
            notes += state.notes
            if state.intents_without_outcome:
                notes.append(
                    f"{path}: the earlier attempt of shard {shard} stopped with "
                    f"{len(state.intents_without_outcome)} change(s) in flight; they are read back from "
                    "live state before anything is written"
                )
            started = set(state.intents_without_outcome) | {
                a for a, status in state.outcomes.items() if status in ("failed", "unknown", "interrupted")
            }
            return Journal(path, append=True), notes, started
    return Journal.open_new(path), notes, set()


def finish_started(stale: list[Any], fresh: Plan, started: set[str]) -> tuple[list[Change], list[Any]]:
    """A retried shard: a reviewed change its own earlier attempt started (journaled intent, no
    outcome, or failed part-way) shows in the fresh plan as another change — an account created but
    not yet configured is an update now — and ``reconcile_saved`` calls it stale. The fresh change
    comes from the same digest-checked manifests, so it finishes what was reviewed (as ``apply
    --resume`` does): it is applied. Anything else stays as it was judged."""
    fresh_by_addr = {c.address: c for c in fresh.changes}
    finish: list[Change] = []
    rest = []
    for o in stale:
        f = fresh_by_addr.get(o.change.address)
        if o.status == "stale" and f is not None and o.change.address in started and f.action is not Action.DELETE:
            finish.append(f)
        else:
            rest.append(o)
    return finish, rest

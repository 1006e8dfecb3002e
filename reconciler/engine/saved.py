"""Saved plans: made, and checked before anything they say is used.

:func:`plan_data` is a plan in its signed, saved form (``plan --out`` writes it with
:func:`reconciler.engine.planfile.write_plan`). A saved plan is applied, or read as the baseline
of a drift report or of the fields a vendor does not return, only if its signature under this
run's key covers how it was made and it was made for the connections this run uses.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reconciler.engine.planfile import baseline_payloads, plan_to_dict, read_plan, sign_plan, signature_matches
from reconciler.engine.session import Session, shown_paths
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.base import Baseline
from reconciler.model import Plan


def verify_signature(path: Path, pf: Any, saved: Plan, s: Session, *, what: str = "plan") -> None:
    """A saved plan is used (applied, or read as a baseline) only if everything apply builds its
    fresh plan from — paths, config, environment, connections and their settings, targets, --force,
    digests, the safety baseline and the last-applied baseline — is as the trusted side signed it,
    and it was made for the connections this run uses."""
    fix = "make a new plan" if what == "plan" else "give the plan file that was applied, or none"
    covered = set(pf.connections)
    outside = sorted({f"{c.vendor}/{c.connection}" for c in saved.changes} - covered)
    if outside:
        raise UsageError(f"{path}: changes on connections the plan does not cover ({', '.join(outside)}); {fix}")
    try:
        signer = s.ctx.plan_signer(sorted(covered))
    except ReconcilerError as exc:
        raise UsageError(f"{path}: cannot check the {what}'s signature: {exc}") from None
    if signer is None and not saved.changes and pf.baseline is None and what == "plan":
        return  # a plan of no connection: nothing to key a signature with, and nothing to write
    if not signature_matches(pf, signer):
        raise UsageError(
            f"{path}: its signature does not match how it says it was made (paths, config, environment, "
            "connections, targets, --force, digests, baseline): it was changed after it was made, or "
            f"made with other credentials or fingerprint key; {fix}"
        )
    now = s.connections_digest(list(pf.connections))
    if pf.connections_digest != now:
        env = f"environment {pf.environment}" if pf.environment else "no environment"
        raise UsageError(
            f"{path}: made for other connection settings than this run's ({env}: "
            f"{', '.join(pf.connections) or 'none'}; base URL, ids, credential references or tables "
            f"differ); {fix}"
        )


def load_baseline(path: Path, s: Session) -> Baseline:
    """The last applied saved plan as a baseline: document digests, and the desired payloads of the
    resources it changed (fields a vendor does not return are compared against them). It steers the
    plan, so it is checked like a plan to apply: its signature under this run's key, and the
    connections it was made for."""
    pf, saved = read_plan(path)
    verify_signature(path, pf, saved, s, what="baseline")
    desired = baseline_payloads([c.model_dump(mode="json") for c in pf.changes])  # the signed ones
    return Baseline(resources=dict(pf.resources), desired=desired)


def plan_data(s: Session, plan: Plan) -> dict[str, Any]:
    """A plan in its saved form: how it was made (paths, config, environment, targets, options,
    baselines), the digests of every document and config section it depends on, signed with the
    key of the connections it covers."""
    data = plan_to_dict(
        plan,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        paths=shown_paths(s.paths),
        config_path=str(s.config.path) if s.config.path else None,
        sandbox=s.sandbox is not None,
        targets=list(s.ctx.options.targets),
        digest=s.digest(),
        resources=s.resource_digests(),
        config_sections=s.config_digests(),
        force=s.ctx.options.force,
        allow_replace=s.ctx.options.allow_replace,
        approve_exposure=s.ctx.options.approve_exposure,
        baseline=s.ctx.options.baseline.to_dict() if s.ctx.options.baseline else None,
        connections_digest=s.connections_digest(plan.connections),
        review=s.config.review,
    )
    if s.ctx.options.shard is not None:  # a shard plan: what `plan merge` checks (signed)
        from reconciler.engine.shard import shard_record

        assert s.loaded is not None
        data["shard"] = shard_record(s.loaded, s.ctx, s.ctx.options.shard, plan.changes)
    return sign_plan(data, s.ctx.plan_signer(list(data.get("connections") or [])))

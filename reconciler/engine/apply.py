"""The apply workflow: from manifests (optionally journaled, or resuming a journal) or from a
saved plan, to outcomes and the exit code that states them.

Everything a run decides lives here, apart from the command line: the saved plan's checks (its
signature, the connections and environment it was made for, whether its documents changed since),
which of its changes are stale, the journal (a new one, or the one a resumed run appends to), the
signals that stop a run between writes, the safety thresholds and the confirmation. The caller
(the CLI, a program, a test) passes a :class:`RunSettings`, a request, and :class:`ApplyHooks`
that receive what happens as it happens (notes, the plan, each outcome, the confirmation
question); it gets an :class:`ApplyResult` back — outcomes, what was not read or restored, and the
exit code with its :class:`ExitReason` — and renders it. Nothing here prints or knows a format.

Exit codes (DESIGN.md): 0 everything applied (or nothing to do); 3 a saved plan was stale for
some resource; 4 partial (some changes failed, could not be read or were not restored); 128 + the
signal number when a signal stopped the writes. Errors before any write raise
:class:`~reconciler.errors.ReconcilerError` (exit 1, or 128 + signal for :class:`Interrupted`).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from reconciler.engine import freshness, run
from reconciler.engine.journal import Journal, read_journal
from reconciler.engine.planfile import read_plan
from reconciler.engine.saved import verify_signature
from reconciler.engine.session import Session, shown_paths
from reconciler.engine.settings import RunSettings, open_run
from reconciler.engine.signals import ApplySignals, Interrupted
from reconciler.engine.targets import check_targets_declared, check_targets_matched
from reconciler.errors import ReconcilerError, UsageError
from reconciler.kinds.base import Baseline
from reconciler.kinds.shard import Shard
from reconciler.model import Change, Outcome, Plan

__all__ = [
    "ApplyHooks",
    "ApplyRequest",
    "ApplyResult",
    "ExitReason",
    "Interrupted",
    "ReadFailed",
    "SavedApplyRequest",
    "apply_manifests",
    "apply_saved",
    "is_saved_plan",
]


class ExitReason(Enum):
    """Why an apply exits as it does (its exit code: :attr:`ApplyResult.exit_code`)."""

    OK = "ok"  # 0: every change applied (or pending, or nothing to do)
    STALE = "stale"  # 3: a saved plan was stale for some resource, and nothing failed
    PARTIAL = "partial"  # 4: some change failed or has an unknown outcome, a kind was not read, or not restored
    INTERRUPTED = "interrupted"  # 128 + signal: a signal stopped the writes


@dataclass(frozen=True, kw_only=True)
class ApplyRequest:
    """Apply manifests (``reconciler apply [PATH...]``)."""

    paths: tuple[Path, ...] = ()
    targets: tuple[str, ...] = ()
    force: bool = False
    allow_replace: bool = False
    approve_exposure: bool = False
    auto_approve: bool = False  # no confirmation asked (the resume hint then carries --auto-approve)
    journal: Path | None = None  # a new journal
    resume: Path | None = None  # finish the run this journal recorded (appends to it)
    stop: threading.Event | None = None  # set by the caller: no new write starts (as the first SIGINT does)


@dataclass(frozen=True, kw_only=True)
class SavedApplyRequest:
    """Apply exactly a saved plan (``reconciler apply plan.json``); no confirmation is asked."""

    plan: Path
    force: bool = False
    approve_exposure: bool = False
    journal: Path | None = None
    stop: threading.Event | None = None  # set by the caller: no new write starts (as the first SIGINT does)
    shard: Shard | None = None  # a planset (issue 26): apply only this shard's part


@dataclass(kw_only=True)
class ApplyHooks:
    """What the caller hears while a run goes on. Every hook is optional."""

    on_note: Callable[[str], None] | None = None  # a remark for the user (e.g. a journal's cut tail)
    on_plan: Callable[[Plan, list[str]], None] | None = None  # the plan and its safety findings, before any write
    # asked before the first write unless auto_approve: True goes on; None (no one can confirm) refuses
    confirm: Callable[[Plan], bool] | None = None
    on_outcome: Callable[[Outcome], None] | None = None  # each outcome as it happens (stale ones first)


@dataclass(kw_only=True)
class ApplyResult:
    outcomes: list[Outcome] = field(default_factory=list)
    code: int = 0  # the writes' exit code (failed, stale, unread kinds, signal), before not_restored counts
    failed_reads: dict[str, str] = field(default_factory=dict)  # scope -> why its live state was not read
    not_restored: list[str] = field(default_factory=list)  # incomplete documents skipped (warning lines)
    signal: int | None = None  # the signal that stopped the writes
    stopped: bool = False  # the writes were stopped (a signal, or the request's stop event)
    journal: Path | None = None
    resumed: bool = False  # a journal's run was carried on
    approved: bool = False  # no confirmation was needed (--auto-approve, a saved plan)
    nothing_to_do: bool = False  # the plan held no change (and every kind was read)
    saved_plan_empty: bool = False  # the saved plan held no change

    @property
    def exit_code(self) -> int:
        """The run's exit code: a run that did everything else exits 4 (partial) for documents
        skipped as incomplete (4 wins over 3, as for failed changes)."""
        if self.not_restored and self.code in (0, 3):
            return 4
        return self.code

    @property
    def reason(self) -> ExitReason:
        if self.stopped:
            return ExitReason.INTERRUPTED
        return {0: ExitReason.OK, 3: ExitReason.STALE}.get(self.exit_code, ExitReason.PARTIAL)

    @property
    def abandoned(self) -> bool:
        """Calls still in flight after the grace period: their threads cannot be waited for (the
        process should end without joining them)."""
        return any(o.status == "unknown" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        return dict(Counter(o.status for o in self.outcomes))


class ReadFailed(ReconcilerError):
    """Live state could not be read for any kind: nothing was planned or applied."""

    def __init__(self, lines: list[str]):
        self._lines = lines
        super().__init__("; ".join(lines))

    def lines(self) -> list[str]:
        return self._lines


def is_saved_plan(paths: tuple[Path, ...]) -> bool:
    """``apply plan.json``: one argument, an existing ``.json`` file."""
    return len(paths) == 1 and paths[0].suffix == ".json" and paths[0].is_file()


def _note(hooks: ApplyHooks, line: str) -> None:
    if hooks.on_note is not None:
        hooks.on_note(line)


def _journal_run(s: Session, journal: Journal, changes: list[Change], *, existing: dict[str, int], resumed: bool) -> None:
    """The journal's ``run`` record: the plan this run carries out and how it was started, signed
    with the key of the connections it writes to (``apply --resume`` checks it: :func:`_check_resumed`)."""
    try:
        signer = s.ctx.plan_signer(sorted({f"{c.vendor}/{c.connection}" for c in changes})) if changes else None
    except ReconcilerError:  # a credential not resolvable: unsigned; a resume of it is refused, saying so
        signer = None
    journal.run(
        signer=signer,
        changes=changes,
        existing_in_scope=existing,
        resumed=resumed,
        digest=s.digest(),
        options={
            "paths": shown_paths(s.paths),
            "config_path": str(s.config.path) if s.config.path else None,
            "sandbox": s.sandbox is not None,
            "targets": list(s.ctx.options.targets),
            "force": s.ctx.options.force,
            "allow_replace": s.ctx.options.allow_replace,
            "environment": s.config.env,
            **s.extras.get("journal", {}),
        },
    )


def _check_resumed(path: Path, root: dict[str, Any], s: Session) -> None:
    """A journal's run record is resumed only as the trusted side wrote it: its options (manifest
    paths, config, environment, targets) and the changes it was allowed to make (which the resumed
    run's thresholds and exposure budgets do not count again) are under its signature. A record
    edited to approve a mass delete or a grant over budget, or to point at other manifests, is
    refused before anything is read or written. A record of no change approves nothing."""
    from reconciler.engine.journal import run_connections, run_signature_matches

    connections = run_connections(root)
    if not connections:
        return
    try:
        signer = s.ctx.plan_signer(connections)
    except ReconcilerError as exc:
        raise UsageError(f"{path}: cannot check the journal's signature: {exc}") from None
    if signer is None or not run_signature_matches(root, signer):
        why = (
            "it has no signature (written by an older version, or without the credentials)"
            if not root.get("signature")
            else "it was changed after it was written, or written with other credentials or fingerprint key"
        )
        raise UsageError(
            f"{path}: its run record does not match its signature: {why}; nothing was applied by this "
            "resume; plan and apply the manifests as a new run"
        )


def _carry_out(
    s: Session,
    changes: list[Change],
    *,
    hooks: ApplyHooks,
    signals: ApplySignals,
    journal: Journal | None,
    resumed: bool,
    existing: dict[str, int],
    failed: dict[str, str],
    done: list[Outcome],
    approved: bool,
    not_restored: list[str],
) -> ApplyResult:
    """Write ``changes``: outcomes already known (``done``: stale, unread) first, then each write's
    as it happens, all journaled; the journal's end record carries the exit code."""
    if journal is not None:
        _journal_run(s, journal, changes, existing=existing, resumed=resumed)
    for o in done:
        if hooks.on_outcome is not None:
            hooks.on_outcome(o)
        if journal is not None:
            journal.outcome(o)
    signals.journal = journal
    signals.applying = True
    outcomes = done + run.apply_changes(changes, s.ctx, on_outcome=hooks.on_outcome, journal=journal)
    code = run.exit_code_for(outcomes)
    if failed:
        code = code or 4
    if signals.exit_code is not None:
        code = signals.exit_code
    result = ApplyResult(
        outcomes=outcomes,
        code=code,
        failed_reads=failed,
        not_restored=not_restored,
        signal=signals.signum,
        stopped=s.ctx.stop.is_set(),
        journal=journal.path if journal is not None else None,
        resumed=resumed,
        approved=approved,
    )
    if journal is not None:
        journal.end(status="interrupted" if result.stopped else "finished", exit_code=code, counts=result.counts())
        journal.close()
    return result


def apply_manifests(settings: RunSettings, request: ApplyRequest, hooks: ApplyHooks | None = None) -> ApplyResult:
    """Plan the manifests against live state and apply the plan (or finish the run a journal
    recorded: ``request.resume``, judged against the plan that run was allowed to make)."""
    hooks = hooks or ApplyHooks()
    if request.resume and request.journal and request.resume != request.journal:
        raise UsageError("--resume FILE keeps journaling to FILE; do not give another --journal")
    paths, targets, allow_replace = request.paths, request.targets, request.allow_replace
    config_path = settings.config_path
    resume_path = request.resume
    state = read_journal(resume_path) if resume_path else None
    if state is not None:
        for note in state.notes:
            _note(hooks, note)
    if state is not None and state.empty:
        # killed before its run record reached the file, so before its first write: nothing of
        # it was applied; this is a new run from the manifests given (journaled to the same file)
        _note(
            hooks,
            f"{resume_path} records no run (empty, or its first line was cut): nothing was applied "
            "by it; planning from the manifests as a new run",
        )
    recorded = state is not None and not state.empty
    if state is not None and recorded:
        root = state.root
        recorded_config = root.get("config_path")
        if recorded_config and os.path.abspath(str(recorded_config)) != os.path.abspath(config_path):
            # as a saved plan: the config is the operator's, never one the journal names (the
            # record's signature is keyed from the config, so it cannot vouch for its own)
            raise UsageError(f"{resume_path} recorded a run with --config {recorded_config}; resume it with the same --config")
        if not paths:
            paths = tuple(Path(x) for x in root.get("paths", []))
            targets = targets or tuple(root.get("targets", []))
            allow_replace = allow_replace or bool(root.get("allow_replace"))
        if bool(root.get("sandbox")) != settings.sandbox:
            raise UsageError(
                f"{resume_path} recorded a run {'with' if root.get('sandbox') else 'without'} --sandbox; resume it the same way"
            )
        if settings.env is not None and settings.env != root.get("environment"):
            raise UsageError(
                f"{resume_path} recorded a run for "
                f"{'environment ' + str(root['environment']) if root.get('environment') else 'no environment'}; "
                "resume it without --env"
            )
    s = open_run(
        settings,
        paths=paths,
        config_path=config_path,
        targets=targets,
        force=request.force,
        allow_replace=allow_replace,
        recorded=recorded,
        env=state.root.get("environment") if state is not None and recorded else None,
    )
    if request.stop is not None:
        s.ctx.stop = request.stop  # before any connection's context shares it
    s.ctx.options.approve_exposure = request.approve_exposure
    try:
        if state is not None and recorded and resume_path is not None:
            _check_resumed(resume_path, state.root, s)
        with ApplySignals(s.ctx) as signals:
            s.load()
            assert s.loaded is not None
            check_targets_declared(s.loaded, targets)
            p = run.make_plan(s.loaded, s.ctx)
            check_targets_matched(p, s.loaded, targets)
            if state is not None and recorded:
                if s.digest() != state.root.get("digest"):
                    raise UsageError(
                        f"{resume_path}: the manifests or config changed since the interrupted run; "
                        "plan and apply them as a new run"
                    )
                safety = run.check_resumed_safety(p, state.approved, s.ctx)
            else:
                safety = run.check_safety(p, s.ctx)
            if hooks.on_plan is not None:
                hooks.on_plan(p, safety)
            if p.failed and not p.noops:
                # nothing could be read: an API error, nothing applied
                raise ReadFailed(list(dict.fromkeys(p.failed.values())))
            if not p.has_changes and not p.failed:
                return ApplyResult(
                    not_restored=p.not_restored,
                    resumed=recorded,
                    nothing_to_do=True,
                    journal=resume_path if recorded else None,
                    approved=request.auto_approve,
                )
            if safety and not s.ctx.options.force:
                over = [f for f in safety if f.startswith("settings.exposure_budgets")]
                raise UsageError(
                    "the plan exceeds the safety thresholds; nothing was applied (use --force)"
                    + (f"; over exposure budgets (--approve-exposure approves them): {'; '.join(over[:5])}" if over else "")
                )
            run.refuse_blocked(p)
            if p.has_changes and not request.auto_approve:
                if hooks.confirm is None:
                    raise UsageError("apply needs confirmation: run on a terminal, or pass --auto-approve")
                if not hooks.confirm(p):
                    raise UsageError("apply cancelled")
            journal = None
            if resume_path and not recorded:
                journal = Journal.open_new(resume_path)  # it holds no run: written afresh
            elif resume_path:
                journal = Journal(resume_path, append=True)
            elif request.journal:
                journal = Journal.open_new(request.journal)
            return _carry_out(
                s,
                p.changes,
                hooks=hooks,
                signals=signals,
                journal=journal,
                resumed=recorded,
                existing=p.existing_in_scope,
                failed=p.failed,
                done=[],
                approved=request.auto_approve,
                not_restored=p.not_restored,
            )
    finally:
        s.close()


def apply_saved(settings: RunSettings, request: SavedApplyRequest, hooks: ApplyHooks | None = None) -> ApplyResult:
    """Apply exactly a saved plan: only if its signature, connections, environment, config and
    documents are as it was made, and only the changes a fresh plan reproduces (the others are
    ``stale`` or ``skipped`` outcomes: exit 3 when any is stale)."""
    from reconciler.engine.planset_apply import finish_started, open_shard_journal, planset_digest, planset_part
    from reconciler.engine.shard import owns_saved_change, scaled_rates

    hooks = hooks or ApplyHooks()
    path = request.plan
    shard = request.shard
    # a shard reads (validates, builds) only the changes it owns; planset_part refuses a plan that is not a planset of N
    pf, saved = read_plan(path, keep=owns_saved_change(shard) if shard is not None else None)
    if pf.planset is not None and request.force:
        raise UsageError("--force goes to `plan merge` (the planset records it); apply a planset without --force")
    # a planset (issue 26): this shard's part and its share of each rate budget; an unsafe verdict is refused
    saved.changes, shares = planset_part(pf, saved.changes, shard)
    if pf.sandbox != settings.sandbox:
        raise UsageError(f"{path} was planned {'with' if pf.sandbox else 'without'} --sandbox; apply it the same way")
    cfg_path = Path(pf.config_path) if pf.config_path else settings.config_path
    if os.path.abspath(cfg_path) != os.path.abspath(settings.config_path):
        raise UsageError(f"{path} was planned with --config {pf.config_path}; apply it with the same --config")
    force = request.force or pf.force
    if settings.env is not None and settings.env != pf.environment:
        raise UsageError(
            f"{path} was planned for {f'environment {pf.environment}' if pf.environment else 'no environment'}; "
            "the environment is decided when planning (apply it without --env)"
        )
    s = open_run(
        settings,
        paths=tuple(Path(p) for p in pf.paths),
        config_path=cfg_path,
        targets=tuple(pf.targets),
        force=force,
        allow_replace=pf.allow_replace,
        recorded=True,
        env=pf.environment,
    )
    if request.stop is not None:
        s.ctx.stop = request.stop  # before any connection's context shares it
    if pf.baseline is not None:
        s.ctx.options.baseline = Baseline(**pf.baseline)
    s.ctx.options.approve_exposure = request.approve_exposure or pf.approve_exposure  # recorded under the signature
    s.ctx.options.shard = shard
    if pf.planset is not None:
        s.extras["journal"] = {"shard": str(shard) if shard else None, "planset": planset_digest(pf)}
    try:
        verify_signature(path, pf, saved, s)
        with scaled_rates(s.ctx, shares), ApplySignals(s.ctx) as signals:
            loaded = s.load()
            if s.ctx.options.baseline is not None:
                s.ctx.options.baseline.current = s.resource_digests()
            # kinds may track data files while planning: plan first, then compare digests
            kinds_to_replan = {c.kind for c in saved.changes}
            fresh = run.make_plan(loaded, s.ctx, kinds=kinds_to_replan)
            changed = freshness.changed_dependencies(
                saved.changes,
                planned_docs=pf.resources,
                docs_now=s.resource_digests(),
                planned_config=pf.config_sections,
                config_now=s.config_digests(),
            )
            if changed:
                raise UsageError(f"{path}: changed since this plan was made: {freshness.describe(changed)}; make a new plan")
            if not saved.changes:
                if request.journal and shard is not None:  # its report for `apply merge-report`: done, nothing to do
                    done_journal = open_shard_journal(request.journal, pf, shard)[0]()
                    _journal_run(s, done_journal, [], existing=saved.existing_in_scope, resumed=False)
                    done_journal.end(status="finished", exit_code=0, counts={})
                    done_journal.close()
                return ApplyResult(not_restored=fresh.not_restored, saved_plan_empty=True, approved=True)
            # a kind that could not be read now is not checked against the plan, so not written
            unread = [
                Outcome(c, "failed", f"live state could not be read: {fresh.failed[c.scope]}")
                for c in saved.changes
                if c.scope in fresh.failed
            ]
            to_apply, stale = run.reconcile_saved([c for c in saved.changes if c.scope not in fresh.failed], fresh)
            journal: Journal | None = None
            # a shard's journal is opened (or continued) only once the checks passed
            open_journal: Callable[[], Journal] | None = None
            if request.journal and pf.planset is not None:
                open_journal, notes, started = open_shard_journal(request.journal, pf, shard)  # a retried shard continues it
                for note in notes:
                    _note(hooks, note)
                finish, stale = finish_started(stale, fresh, started)
                to_apply += finish
            safety = run.check_safety(Plan(changes=to_apply, existing_in_scope=saved.existing_in_scope), s.ctx)
            if safety and not force:
                raise UsageError("; ".join(safety))
            run.refuse_blocked(Plan(changes=to_apply))
            if open_journal is not None:  # only now: a refused apply leaves the journal it was given as it was
                journal = open_journal()
            elif request.journal:
                journal = Journal.open_new(request.journal)
            return _carry_out(
                s,
                to_apply,
                hooks=hooks,
                signals=signals,
                journal=journal,
                resumed=False,
                existing=saved.existing_in_scope,
                failed={},
                done=unread + stale,
                approved=True,
                not_restored=fresh.not_restored,
            )
    finally:
        s.close()

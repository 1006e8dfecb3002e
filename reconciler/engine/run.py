"""Orchestration: plan from loaded manifests, safety checks, apply (live or from a saved plan).

Small functions, no god object: loading is in ``load.py``, rendering in ``render/``, the plan
file format in ``planfile.py``; kinds do the vendor work.

Why one module: planning and applying share the per-vendor concurrency, the slow-step reporter
(:class:`Waiting`) and the safety checks, and the apply workflow now moving in from the CLI (issue
25 item 4) reshapes the apply half; split it by that workflow once it has landed, not under it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from reconciler.engine import exposure
from reconciler.engine.journal import Journal
from reconciler.engine.load import Loaded
from reconciler.errors import ApiError, InputError, ReconcilerError, UsageError
from reconciler.kinds import KINDS
from reconciler.kinds.base import Kind, RunContext
from reconciler.manifest.endpoints import check_endpoint
from reconciler.model import Action, Change, KindPlan, Outcome, Plan, scope_label

log = logging.getLogger("reconciler.engine")


def vendor_concurrency(ctx: RunContext, vendor: str) -> int:
    """The configured concurrency of one vendor connection (1 when it is not configured)."""
    conn = getattr(ctx.config.providers, vendor, None)
    return conn.concurrency if conn is not None else 1


WAIT_FIRST = 5.0  # seconds a step may take before the run says what it is waiting for
WAIT_EVERY = 10.0  # then once per this many seconds while it still waits


def endpoint_of(ctx: RunContext, vendor: str, connection: str) -> str:
    """``host:port`` of a vendor connection (what a "waiting for" line names)."""
    provider = getattr(ctx.bind(vendor, connection).config.providers, vendor, None)
    url = str(getattr(provider, "base_url", "") or "")
    return urlsplit(url).netloc or url or "?"


class Waiting:
    """Says what a run waits for when a vendor is slow or never answers: a step (reading a kind,
    applying a unit) running for ``first`` seconds gets one line naming the vendor, connection,
    host and what it does, then one every ``every`` seconds while it still runs (``ctx.on_wait``;
    nothing when unset). Usable as a context manager; steps are registered with :meth:`step`."""

    def __init__(self, ctx: RunContext, *, first: float = WAIT_FIRST, every: float = WAIT_EVERY):
        self.ctx, self.first, self.every = ctx, first, every
        self._steps: dict[int, tuple[float, str]] = {}  # id -> (started, description)
        self._said: dict[int, float] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def __enter__(self) -> "Waiting":
        if self.ctx.on_wait is not None:
            self._thread = threading.Thread(target=self._watch, name="waiting", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def step(self, vendor: str, connection: str, what: str) -> "contextlib.AbstractContextManager[None]":
        where = f"{vendor}/{connection} at {endpoint_of(self.ctx, vendor, connection)}"

        @contextlib.contextmanager
        def running() -> Any:
            with self._lock:
                self._n += 1
                key = self._n
                self._steps[key] = (time.monotonic(), f"{where}: {what}")
            try:
                yield
            finally:
                with self._lock:
                    self._steps.pop(key, None)
                    self._said.pop(key, None)

        return running()

    def _watch(self) -> None:
        while not self._done.wait(0.25):
            now = time.monotonic()
            lines = []
            with self._lock:
                for key, (started, text) in self._steps.items():
                    last = self._said.get(key)
                    if now - started >= self.first and (last is None or now - last >= self.every):
                        self._said[key] = now
                        lines.append(f"waiting for {text} ({now - started:.0f} s so far, not finished)")
            for line in lines:
                if self.ctx.on_wait is not None:
                    self.ctx.on_wait(line)


def _run_per_vendor(work: dict[str, Callable[[], None]]) -> list[BaseException]:
    """Run one callable per vendor, concurrently (one worker per vendor connection)."""
    errors: list[BaseException] = []
    if len(work) <= 1:
        for fn in work.values():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                errors.append(exc)
        return errors
    with ThreadPoolExecutor(max_workers=len(work), thread_name_prefix="vendor") as pool:
        futures = [pool.submit(fn) for fn in work.values()]
        for f in futures:
            error = f.exception()
            if error is not None:
                errors.append(error)
    return errors


def make_plan(loaded: Loaded, ctx: RunContext, *, kinds: set[str] | None = None) -> Plan:
    """Read live state for every kind in use and diff it against the manifests.

    Vendor connections are read concurrently (one worker per connection; its kinds one after
    another). A kind whose live state cannot be read (an API error after the client's retries)
    fails alone: it is listed in ``plan.failed`` with no changes — nothing of it is created,
    updated or pruned — and the others are planned as usual. Invalid input still stops the plan.
    """
    plan = Plan(environment=ctx.config.env, warnings=list(ctx.config.warnings))
    parts = [p for p in loaded.parts() if kinds is None or p[0].kind in kinds]
    by_connection: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (kind_cls, conn, _, _) in enumerate(parts):
        by_connection[(kind_cls.vendor, conn)].append(i)
    check_endpoints(ctx, sorted(by_connection))
    results: dict[int, KindPlan | str] = {}

    def plan_connection(indexes: list[int]) -> None:
        for i in indexes:
            kind_cls, conn, resources, scopes = parts[i]
            try:
                with waiting.step(kind_cls.vendor, conn, f"reading {kind_cls.kind} live state"):
                    results[i] = kind_cls().plan(resources, scopes, ctx.bind(kind_cls.vendor, conn))
            except ApiError as exc:
                log.debug("reading %s failed", kind_cls.kind, exc_info=True)
                results[i] = str(exc)

    with Waiting(ctx) as waiting:
        errors = _run_per_vendor({f"{v}/{c}": functools.partial(plan_connection, ix) for (v, c), ix in by_connection.items()})
    if errors:
        raise errors[0]
    shard = ctx.options.shard
    if shard is not None:  # a sharded run (issue 26): keep what this shard owns
        from reconciler.engine.shard import declared_by_part, narrow

        declared = declared_by_part(loaded, ctx)
        for i, (kind_cls, conn, _, _) in enumerate(parts):
            kp = results[i]
            if isinstance(kp, KindPlan):
                narrow(kp, kind_cls, conn, shard, declared.get(scope_label(kind_cls.kind, conn), set()))
    for i, (kind_cls, conn, _, _) in enumerate(parts):  # deterministic order whatever finished first
        kp = results[i]
        if f"{kind_cls.vendor}/{conn}" not in plan.connections:
            plan.connections.append(f"{kind_cls.vendor}/{conn}")
        if isinstance(kp, str):
            plan.failed[scope_label(kind_cls.kind, conn)] = kp
            continue
        for c in kp.changes:
            c.connection = conn
        for u in kp.unmanaged:
            u.connection = conn
        plan.changes.extend(kp.changes)
        plan.noops[kind_cls.kind] = plan.noops.get(kind_cls.kind, 0) + kp.noops
        plan.unmanaged.extend(kp.unmanaged)
        plan.warnings.extend(kp.warnings)
        plan.existing_in_scope[scope_label(kind_cls.kind, conn)] = kp.existing_in_scope
        plan.out_of_band.extend(kp.out_of_band)
        for g in kp.uncompared:
            g.connection = conn
        plan.uncompared.extend(kp.uncompared)
        plan.differs.extend(kp.differs)
        plan.live_exposure.extend({**e, "connection": conn, "vendor": kind_cls.vendor} for e in kp.live_exposure)
    plan.connections.sort()
    plan.not_restored = list(loaded.incomplete)
    plan.warnings.extend(loaded.incomplete)
    if ctx.options.targets:
        plan = filter_targets(plan, ctx.options.targets)
    plan.sort()
    plan.exposure = exposure.summarize(plan, ctx.config.settings, approved=ctx.options.approve_exposure)
    return plan


def check_endpoints(ctx: RunContext, connections: list[tuple[str, str]]) -> None:
    """Every unapproved endpoint of the run at once (one line each), before any request: the
    clients check theirs too, but one at a time, as each is first used."""
    problems = []
    for vendor, conn in connections:
        try:
            check_endpoint(ctx.bind(vendor, conn).config, vendor, allowed=ctx.options.allowed_endpoints)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)


def failed_reads(plan: Plan) -> list[str]:
    """One line per kind that could not be read."""
    return [
        f"{kind}: live state could not be read, so it was not planned: {reason}" for kind, reason in sorted(plan.failed.items())
    ]


def _matches(change: Change, target: str) -> bool:
    return target in (change.resource, change.address)


def filter_targets(plan: Plan, targets: tuple[str, ...]) -> Plan:
    """Keep only changes addressed by ``--target KIND/NAME`` (document name or object identity)."""
    kept = [c for c in plan.changes if any(_matches(c, t) for t in targets)]
    unmatched = [t for t in targets if not any(_matches(c, t) for c in plan.changes)]
    out = Plan(
        changes=kept,
        noops=plan.noops,
        unmanaged=[],
        warnings=list(plan.warnings),
        existing_in_scope=plan.existing_in_scope,
        environment=plan.environment,
        connections=plan.connections,
        failed=plan.failed,
        out_of_band=[r for r in plan.out_of_band if r in targets],
        uncompared=plan.uncompared,
        differs=[d for d in plan.differs if d.split(": ", 1)[0] in targets],
        not_restored=plan.not_restored,
    )
    for t in unmatched:
        out.warnings.append(f"--target {t}: no change for it (already in the desired state, or no such resource)")
    return out


def check_safety(plan: Plan, ctx: RunContext) -> list[str]:
    """Threshold violations (octoDNS-style): too many updates/deletes of existing objects."""
    s = ctx.config.settings
    per_kind: dict[str, list[Change]] = defaultdict(list)  # per kind and named connection
    for c in plan.changes:
        if c.action is not Action.CREATE:
            per_kind[c.scope].append(c)
    out: list[str] = []
    for kind, changes in sorted(per_kind.items()):
        existing = plan.existing_in_scope.get(kind, 0)
        if existing < s.threshold_min_existing:
            continue
        touched = sum(c.impact for c in changes)
        ratio = touched / existing
        if ratio > s.max_change_ratio:
            out.append(
                f"{kind}: {touched} of {existing} existing objects would be updated, replaced or deleted "
                f"({ratio:.0%} > {s.max_change_ratio:.0%}); re-run with --force if this is intended"
            )
    if not ctx.options.approve_exposure:  # exposure budgets (issue 27): refused like a threshold
        out.extend(exposure.over_budget(plan.changes, s))
    return out


@dataclass
class ApplyRun:
    """One apply in progress: the changes, where outcomes go, and how to stop it.

    ``on_outcome`` is called (under a lock, from worker threads) as soon as each outcome is
    known; ``journal`` gets the intent before each unit's writes and the outcomes after.
    ``stop`` (``ctx.stop``) set: no new unit starts; units in flight finish, bounded by
    ``grace`` seconds after the stop, after which their changes are reported ``unknown``.
    """

    changes: list[Change]
    ctx: RunContext
    on_outcome: Callable[[Outcome], None] | None = None
    journal: Journal | None = None
    grace: float = 20.0
    passes: int = 8  # changes refused as busy are tried again, at most this many passes in all
    pass_wait: float = 0.2  # before pass k+1: k times this, plus up to as much again at random (``jitter``)
    jitter: Callable[[], float] = random.random  # runs refused together (shards) do not ask again together
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # by index into changes
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _progress: dict[str, int] = field(default_factory=dict)  # changes reported, per kind
    _totals: dict[str, int] = field(default_factory=dict)
    _waiting: Waiting | None = None

    def _report(self, done: list[tuple[int, Outcome]]) -> None:
        with self._lock:
            for i, o in done:
                if i in self.outcomes:
                    continue
                self.outcomes[i] = o
                if self.journal is not None:
                    self.journal.outcome(o)
                if self.on_outcome is not None:
                    self.on_outcome(o)

    def _unit(
        self, kind: Kind[Any, Any], ctx: RunContext, unit: list[tuple[int, Change]], held: list[tuple[int, Change]] | None = None
    ) -> None:
        """Apply one unit. With ``held``, changes the vendor refused as busy (definitely not
        written) are held back for another pass instead of being reported failed."""
        if self.ctx.stop.is_set():
            return
        changes = [c for _, c in unit]
        if self.journal is not None:
            for c in changes:
                self.journal.intent(c)
        try:
            with self._step(changes, f"applying {len(changes)} {kind.kind} change(s)"):
                outs = kind.apply(changes, ctx)
            if len(outs) != len(changes):
                raise AssertionError(f"{kind.kind}.apply returned {len(outs)} outcomes for {len(changes)} changes")
        except ReconcilerError as exc:
            # a unit-level failure (e.g. the listing before a batch failed): nothing of it applied
            outs = [Outcome(c, "failed", str(exc)) for c in changes]
        except Exception as exc:  # noqa: BLE001 - one broken unit must not hide the others' outcomes
            log.debug("applying %s failed", kind.kind, exc_info=True)
            outs = [Outcome(c, "failed", f"internal error: {type(exc).__name__} (run with --debug for details)") for c in changes]
        self._settled(kind, ctx, unit, outs, held)

    def _settled(
        self,
        kind: Kind[Any, Any],
        ctx: RunContext,
        unit: list[tuple[int, Change]],
        outs: list[Outcome],
        held: list[tuple[int, Change]] | None,
    ) -> None:
        """Report outcomes (journal, ``on_outcome``, progress), holding back busy refusals."""
        report = []
        for (i, c), o in zip(unit, outs, strict=True):
            if held is not None and o.status == "failed" and o.retryable:
                with self._lock:
                    held.append((i, c))
            else:
                report.append((i, o))
        self._report(report)
        if kind.progress_label and report:
            with self._lock:
                self._progress[kind.kind] = self._progress.get(kind.kind, 0) + len(report)
                done = self._progress[kind.kind]
            ctx.report(kind.progress_label, done, self._totals.get(kind.kind))

    def _stream(
        self, kind: Kind[Any, Any], ctx: RunContext, items: list[tuple[int, Change]], held: list[tuple[int, Change]] | None
    ) -> None:
        """Hand a streaming kind (``Kind.streams``) all of a pass's changes: intents journaled as
        each change starts, outcomes reported as each ends. If the kind fails as a whole, changes
        it had started are ``unknown`` (resume reads them back) and the rest ``failed``."""
        index = {id(c): i for i, c in items}
        begun: set[int] = set()
        ended: set[int] = set()

        def started(c: Change) -> None:
            begun.add(id(c))
            if self.journal is not None:
                self.journal.intent(c)

        def finished(c: Change, o: Outcome) -> None:
            ended.add(id(c))
            self._settled(kind, ctx, [(index[id(c)], c)], [o], held)

        try:
            with self._step([c for _, c in items], f"applying {len(items)} {kind.kind} change(s)"):
                kind.apply_stream([c for _, c in items], ctx, started=started, finished=finished)
            return
        except ReconcilerError as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - one broken kind must not hide the others' outcomes
            log.debug("applying %s failed", kind.kind, exc_info=True)
            message = f"internal error: {type(exc).__name__} (run with --debug for details)"
        rest = [(i, c) for i, c in items if id(c) not in ended]
        outs = [Outcome(c, "unknown" if id(c) in begun else "failed", message) for _, c in rest]
        self._settled(kind, ctx, rest, outs, None)

    def _step(self, changes: list[Change], what: str) -> "contextlib.AbstractContextManager[None]":
        if self._waiting is None or not changes:
            return contextlib.nullcontext()
        return self._waiting.step(changes[0].vendor, changes[0].connection, what)

    def _units(
        self,
        kind: Kind[Any, Any],
        ctx: RunContext,
        items: list[tuple[int, Change]],
        concurrency: int,
        held: list[tuple[int, Change]] | None,
    ) -> None:
        """A kind's units, one after another or within the connection's concurrency."""
        position = {id(c): i for i, c in items}
        units = [[(position[id(c)], c) for c in u] for u in kind.apply_units([c for _, c in items])]
        if kind.ordered_units or concurrency <= 1 or len(units) <= 1:
            for unit in units:
                self._unit(kind, ctx, unit, held)
        else:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(units)), thread_name_prefix=kind.kind) as pool:
                for f in [pool.submit(self._unit, kind, ctx, u, held) for u in units]:
                    f.result()

    def _connection(self, changes: list[tuple[int, Change]]) -> None:
        """One vendor connection's changes: kinds in their apply order, units within the
        connection's concurrency."""
        by_kind: dict[str, list[tuple[int, Change]]] = defaultdict(list)
        for item in changes:
            by_kind[item[1].kind].append(item)
        vendor, conn = changes[0][1].vendor, changes[0][1].connection
        ctx = self.ctx.bind(vendor, conn)
        concurrency = vendor_concurrency(ctx, vendor)
        for kind_name in sorted(by_kind, key=lambda k: (KINDS[k].apply_order, k)):
            kind = KINDS[kind_name]()
            items = by_kind[kind_name]
            with self._lock:
                self._totals[kind_name] = self._totals.get(kind_name, 0) + len(items)
            for attempt in range(self.passes):
                last = attempt == self.passes - 1
                held: list[tuple[int, Change]] | None = None if last else []
                if kind.streams:
                    self._stream(kind, ctx, items, held)
                else:
                    self._units(kind, ctx, items, concurrency, held)
                if not held or self.ctx.stop.is_set():
                    break
                # refused as busy: the writes did not happen; try those changes again shortly
                items = sorted(held)
                log.debug("%s: %d change(s) refused as busy; pass %d", kind_name, len(items), attempt + 2)
                self.ctx.stop.wait(self.pass_wait * (attempt + 1) * (1 + self.jitter()))

    def run(self) -> list[Outcome]:
        with Waiting(self.ctx) as self._waiting:
            return self._run()

    def _run(self) -> list[Outcome]:
        by_connection: dict[tuple[str, str], list[tuple[int, Change]]] = defaultdict(list)
        for i, c in enumerate(self.changes):
            by_connection[(c.vendor, c.connection)].append((i, c))
        threads = [
            threading.Thread(target=self._connection, args=(cs,), name=f"apply-{v}/{n}", daemon=True)
            for (v, n), cs in sorted(by_connection.items())
        ]
        for t in threads:
            t.start()
        stopped_at: float | None = None
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.05)
            if self.ctx.stop.is_set():
                stopped_at = stopped_at or time.monotonic()
                if time.monotonic() - stopped_at > self.grace:
                    break
        with self._lock:
            in_flight = any(t.is_alive() for t in threads)
            result = []
            for i, c in enumerate(self.changes):
                o = self.outcomes.get(i)
                if o is None:
                    if in_flight:
                        status, msg = "unknown", "still in flight when the run stopped; resume to settle it"
                    else:
                        status, msg = "interrupted", "not started: the run was stopped"
                    o = Outcome(c, status, msg)
                result.append(o)
            self.outcomes = dict(enumerate(result))  # late finishers are not reported any more
            return result


def apply_changes(
    changes: list[Change],
    ctx: RunContext,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    journal: Journal | None = None,
    grace: float = 20.0,
) -> list[Outcome]:
    """Apply changes: vendor connections concurrently (one worker each), each connection's kinds
    in their apply order, each kind's units within the connection's concurrency; a failing unit or kind does not stop the others.
    Returns one outcome per change, in the order given."""
    return ApplyRun(changes, ctx, on_outcome=on_outcome, journal=journal, grace=grace).run()


def exit_code_for(outcomes: list[Outcome]) -> int:
    """0 all applied (or pending: made, not yet shown by the vendor); 4 some failed (partial
    apply); 3 some stale (and none failed)."""
    statuses = {o.status for o in outcomes}
    if statuses & {"failed", "unknown", "interrupted"}:
        return 4
    if "stale" in statuses:
        return 3
    return 0


def check_resumed_safety(plan: Plan, approved: set[str], ctx: RunContext) -> list[str]:
    """Thresholds for a resumed run, judged against the original plan: changes the interrupted
    run was already allowed to make (same address) are not counted again — e.g. accounts that
    were created but not finished now show as updates. Anything new is judged as usual."""
    new = [c for c in plan.changes if c.address not in approved]
    return check_safety(Plan(changes=new, existing_in_scope=plan.existing_in_scope), ctx)


def reconcile_saved(saved: list[Change], fresh: Plan) -> tuple[list[Change], list[Outcome]]:
    """Match a saved plan's changes against a fresh plan made from the same (digest-checked)
    manifests and config — for every kind, TcaplusDB included.

    A change is written only when the fresh plan holds the very same change (action, field diffs,
    payload) with the same precondition; what is written is the *fresh* change, so a plan file
    edited after review cannot add, widen or redirect a write. Everything else is not written:

    - the fresh plan needs no change for it: ``skipped`` (the live object already is what the
      unchanged manifests ask for, e.g. the plan was applied before — or the change was never one
      the manifests ask for);
    - the object left every prune scope or became protected: ``stale``;
    - the fresh plan has no change only because the object ended out of band (a terminated
      event) or differs in a way apply cannot change: ``stale`` — its live state is not the target;
    - the live object changed since the plan (another precondition) or the change would differ:
      ``stale``.

    Kinds whose writes carry the precondition (TcaplusDB ``x-tcaplus-data-version-check``) keep
    that check as a second guard for changes made between this comparison and the write.
    """
    fresh_by_addr = {c.address: c for c in fresh.changes}
    out_of_scope = {u.address for u in fresh.unmanaged}
    ended = set(fresh.out_of_band)
    differs = {d.split(": ", 1)[0] for d in fresh.differs}
    to_apply: list[Change] = []
    stale: list[Outcome] = []
    for c in saved:
        f = fresh_by_addr.get(c.address)
        if f is None and c.address in out_of_scope:
            stale.append(Outcome(c, "stale", "the object is outside every prune scope or protected: not deleted"))
        elif f is None and c.resource and c.resource in ended:
            # no change because it ended (terminated outside the product), not because it is at
            # the plan's target: the reviewed change was not made
            stale.append(
                Outcome(
                    c,
                    "stale",
                    "terminated out of band since the plan: not changed (nothing is "
                    "re-created without an opt-in; make a new plan)",
                )
            )
        elif f is None and c.resource and c.resource in differs:
            stale.append(Outcome(c, "stale", "live object changed since the plan in a way apply cannot change; make a new plan"))
        elif f is None:
            # the live object already is what the manifests (unchanged since the plan) ask for —
            # e.g. a re-run after a complete or partial apply: nothing to write, nothing to alert on
            stale.append(Outcome(c, "skipped", "already in the desired state"))
        elif f.precondition != c.precondition:
            stale.append(Outcome(c, "stale", _changed_since(c, f)))
        elif (f.kind, f.key, f.action, f.diffs, f.data) != (c.kind, c.key, c.action, c.diffs, c.data):
            stale.append(Outcome(c, "stale", "the change would differ from the reviewed plan"))
        else:
            to_apply.append(f)
    return to_apply, stale


def _changed_since(saved: Change, fresh: Change) -> str:
    if saved.action is Action.CREATE and fresh.action is not Action.CREATE:
        return "created by another writer since the plan"
    before, now = saved.precondition.get("record_version"), fresh.precondition.get("record_version")
    if before is not None and now is not None:
        verb = "deleted" if saved.action is Action.DELETE else "overwritten"
        return f"changed since the plan (version {before} -> {now}); not {verb}"
    return "live object changed since the plan was made"


SHOWN_BLOCKED = 20  # blocked changes named one by one in the refusal; the rest are counted


def refuse_blocked(plan: Plan) -> None:
    """A change a kind marked blocked (needs an opt-in) stops the whole apply before any write."""
    blocked = [c for c in plan.changes if c.data.get("blocked")]
    if blocked:
        named = "; ".join(f"{c.address}: {c.data['blocked']}" for c in blocked[:SHOWN_BLOCKED])
        more = len(blocked) - SHOWN_BLOCKED
        raise UsageError(
            named + (f"; ... and {more} more blocked change(s) (plan --format json lists them all)" if more > 0 else "")
        )

"""Applying a planset (issue 26), shard by shard, and joining the shards' outcomes.

``apply PLANSET --shard K/N`` applies shard K's part (:func:`planset_part`: the changes shard K
owns and its share of each connection's rate budget; an unsafe verdict or another N is refused)
through :func:`reconciler.engine.apply.apply_saved`, under the checks of any saved plan. Its
journal (:func:`open_shard_journal`) names the planset and the shard; a retry of a shard whose
attempt did not finish continues that journal and finishes what the attempt started
(:func:`finish_started`). ``apply merge-report`` joins the shards' journals into one outcome and
one exit code (:func:`merge_reports`). Making the planset (``plan merge``) is
:mod:`reconciler.engine.planset`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine.planfile import PlanFile
from reconciler.errors import UsageError
from reconciler.kinds.shard import Shard
from reconciler.model import Action, Change, Plan


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
    from reconciler.engine.planfile import change_count

    blob = (pf.signature or "") + "|" + str(change_count(pf))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


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
    """What opens the journal of a planset shard's apply (called once the apply passed its checks:
    a refused apply leaves the file as it was). A retry of the same shard of the same planset whose
    earlier attempt did not finish (a killed pod, a failed job) continues that journal: its last
    run is what ``apply merge-report`` reads; the notes say what the attempt left in flight, the
    third value the addresses it started and did not finish (see :func:`finish_started`)."""
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
            return lambda: Journal(path, append=True), notes, started
    return lambda: Journal.open_new(path), notes, set()


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

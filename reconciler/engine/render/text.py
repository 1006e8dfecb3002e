"""The text renderer (terminal and CI log): counts per vendor and kind, the changes at
``--detail summary|normal|full``, what could not be read or compared, exposure totals; and the
outcomes of an apply, streamed as they come or at the end.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any, TextIO

from reconciler.engine import exposure as _exposure
from reconciler.engine.render.common import INCOMPLETE_HEAD, MAX_GAPS, SYMBOL, _no_changes, show
from reconciler.manifest.oneline import one_line
from reconciler.model import Action, Change, Outcome, Plan, scope_label

# -- text -------------------------------------------------------------------------------------
DETAILS = ("summary", "normal", "full")
NORMAL_MAX_DIFFS = 20  # per change at --detail normal; the rest are counted
NORMAL_MAX_LIST = 50  # unmanaged objects and warnings at --detail normal
# changes listed per vendor and kind at --detail normal (deletes are always listed); the rest are
# counted on one line. Apply lists as many applied outcomes per kind.
NORMAL_MAX_CHANGES = 20
_STYLES = {
    "create": "green",
    "update": "yellow",
    "replace": "magenta",
    "delete": "red",
    "head": "bold",
    "group": "bold cyan",
    "doc": "cyan",
    "dim": "dim",
    "warn": "yellow",
    "unsafe": "bold red",
}
_COLUMNS = ("create", "update", "replace", "delete", "unchanged", "unmanaged")


class _Writer:
    """Lines to a text stream, styled with ANSI colours when ``color`` (rich renders the styles)."""

    def __init__(self, out: TextIO, color: bool):
        self.out = out
        self._codes: dict[str, tuple[str, str]] = {}
        if color:
            from rich.color import ColorSystem
            from rich.style import Style

            for name, spec in _STYLES.items():
                start, _, end = Style.parse(spec).render("\0", color_system=ColorSystem.STANDARD).partition("\0")
                self._codes[name] = (start, end)

    def style(self, text: str, name: str) -> str:
        if name not in self._codes:
            return text
        start, end = self._codes[name]
        return f"{start}{text}{end}"

    def line(self, text: str = "", style: str = "", tail: str = "") -> None:
        """``text`` (in ``style``) then ``tail``, each written by :func:`one_line` first: a line
        names files, resources and vendors' values, and none may end the line, start another or
        reorder or hide the rest."""
        text = one_line(text)
        self.out.write((self.style(text, style) if style else text) + one_line(tail) + "\n")


def _counts_table(plan: Plan) -> list[list[str]]:
    """Rows ``vendor, kind, create, update, replace, delete, unchanged, unmanaged`` (kinds with
    anything to show)."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    vendor_of: dict[str, str] = {}
    for c in plan.changes:
        counts[(c.vendor, c.scope)][c.action.value] += 1
        vendor_of[c.scope] = c.vendor
    for u in plan.unmanaged:
        label = scope_label(u.kind, u.connection)
        counts[(u.vendor, label)]["unmanaged"] += 1
        vendor_of[label] = u.vendor
    for kind, n in plan.noops.items():
        if n:
            key = (vendor_of.get(kind, _vendor_of_kind(kind)), kind)
            counts[key]["unchanged"] += n
    return [[v, k, *(str(counts[(v, k)][col]) for col in _COLUMNS)] for v, k in sorted(counts)]


def _vendor_of_kind(kind: str) -> str:
    from reconciler.kinds import KINDS  # the registry (no engine import: kinds sit below)

    cls = KINDS.get(kind.split("@", 1)[0])
    return cls.vendor if cls is not None else "?"


def _table_lines(rows: list[list[str]]) -> list[str]:
    head = ["vendor", "kind", *_COLUMNS]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [r[i].rjust(widths[i]) for i in range(2, len(r))]
        return "  " + "  ".join(cells)

    return [fmt(head), *(fmt(r) for r in rows)]


def _diff_line(c: Change, d: Any) -> str:
    if c.action is Action.CREATE or d.before is None and c.action is not Action.UPDATE:
        return f"{d.path}: {show(d.after)}"
    if c.action is Action.DELETE:
        return f"{d.path}: {show(d.before)}"
    return f"{d.path}: {show(d.before)} -> {show(d.after)}"


def render_text(
    plan: Plan,
    out: TextIO,
    *,
    safety: list[str] | None = None,
    detail: str = "normal",
    color: bool = False,
    keys_only: bool = False,
) -> None:
    """The plan for people: the counts first (a ``Summary:`` line and a table by vendor and kind),
    safety findings and warnings, then the changes grouped by vendor, kind and manifest document
    (notes shared by several changes of a kind printed once with their count), and the grep-able
    ``Plan:`` summary line last (the only line matching it). ``detail``: ``summary`` (no changes
    listed), ``normal`` (per vendor and kind the first ``NORMAL_MAX_CHANGES`` changes with at most
    ``NORMAL_MAX_DIFFS`` fields each, then every delete and the rest counted),
    ``full`` (everything). ``keys_only`` (a plan of a config under review, whose log a pull
    request's author may read): deletes of undeclared objects show their key and field names only."""
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}")
    w = _Writer(out, color)
    full = detail == "full"
    if plan.header():
        w.line(plan.header(), "head")
    w.line("Summary: " + plan.summary_line().removeprefix("Plan: "), "head")
    rows = _counts_table(plan)
    if rows:
        w.line()
        table = _table_lines(rows)
        w.line(table[0], "dim")
        for row in table[1:]:
            w.line(row)
    _text_exposure(w, plan)
    if safety or plan.warnings:
        w.line()
    for s in safety or []:
        w.line(f"unsafe: {s}", "unsafe")
    limit = None if full else NORMAL_MAX_LIST
    for warning in plan.warnings[:limit]:
        w.line(f"warning: {warning}", "warn")
    if limit is not None and len(plan.warnings) > limit:
        w.line(f"warning: ... and {len(plan.warnings) - limit} more warning(s) (--detail full lists them)", "warn")
    _gaps_text(w, plan, None if full else MAX_GAPS)
    if not plan.changes:
        w.line()
        w.line(_no_changes(plan).rstrip("\n"))
    elif detail == "summary":
        w.line()
        w.line(f"{len(plan.changes)} change(s) not listed (--detail normal or full lists them).", "dim")
    else:
        _changes(w, plan, full=full, keys_only=keys_only)
    if plan.unmanaged and detail != "summary":
        w.line()
        w.line(f"Unmanaged (left alone): {len(plan.unmanaged)}", "head")
        for u in plan.unmanaged[:limit]:
            w.line(f"    ? {u.address}: {u.reason}")
        if limit is not None and len(plan.unmanaged) > limit:
            w.line(f"    ... and {len(plan.unmanaged) - limit} more (--detail full lists them)")
    w.line()
    if plan.incomplete_line():
        w.line(plan.incomplete_line(), "unsafe")
    w.line(plan.summary_line(), "head")


def _gaps_text(w: _Writer, plan: Plan, limit: int | None) -> None:
    """What could not be read or compared (kind, connection, field, why): one line each."""
    gaps = plan.gaps()
    if not gaps:
        return
    w.line()
    w.line(f"{INCOMPLETE_HEAD} ({len(gaps)}): the plan is incomplete", "unsafe")
    for g in gaps[:limit]:
        w.line(f"    ! {g.line()}")
    if limit is not None and len(gaps) > limit:
        w.line(f"    ... and {len(gaps) - limit} more (--detail full lists them)")


def _changes(w: _Writer, plan: Plan, *, full: bool, keys_only: bool = False) -> None:
    groups: dict[tuple[str, str], list[Change]] = defaultdict(list)
    for c in plan.changes:
        groups[(c.vendor, c.scope)].append(c)
    for (vendor, kind), changes in sorted(groups.items()):
        w.line()
        by_action = Counter(c.action.value for c in changes)
        counts = ", ".join(f"{by_action[a.value]} {a.value}" for a in Action if by_action[a.value])
        w.line(f"== {vendor} / {kind}  ({counts})", "group")
        # notes several changes share are printed once, with their count
        note_count = Counter(n for c in changes for n in dict.fromkeys(c.notes))
        shared = {n for n, k in note_count.items() if k > 1}
        for n in sorted(shared, key=lambda n: (-note_count[n], n)):
            w.line(f"note ({note_count[n]:,} changes): {n}")
        docs: dict[str, list[Change]] = defaultdict(list)
        for c in changes:
            docs[c.resource].append(c)
        listed = 0
        hidden: Counter[str] = Counter()
        for resource in sorted(docs, key=lambda r: (r == "", r)):
            doc_changes = docs[resource]
            header = False
            for c in doc_changes:
                # the first changes of a kind, then only deletes (never hidden); the rest counted
                if not full and listed >= NORMAL_MAX_CHANGES and c.action is not Action.DELETE:
                    hidden[c.action.value] += 1
                    continue
                if not header:
                    header = True
                    if resource:
                        src = doc_changes[0].source
                        w.line(f"# {resource}" + (f"  ({src})" if src else ""), "doc")
                    else:
                        w.line("# not declared: pruned inside a PruneScope", "doc")
                _change(w, c, shared, full=full, keys_only=keys_only)
                listed += 1
        if hidden:
            what = ", ".join(f"{hidden[a.value]:,} {a.value}" for a in Action if hidden[a.value])
            w.line(f"... and {sum(hidden.values()):,} more {kind} change(s) not listed ({what}): --detail full lists them", "dim")


def _change(w: _Writer, c: Change, shared: set[str], *, full: bool, keys_only: bool = False) -> None:
    # a change line starts at column 0 with its symbol (scripts grep "^- delete"); its details
    # are indented under it
    if keys_only and c.action is Action.DELETE:
        w.line(f"{SYMBOL[c.action]} {c.action.value}", c.action.value, tail=f" {c.address}")
        names = ", ".join(d.path for d in c.diffs[:NORMAL_MAX_DIFFS])
        more = f" and {len(c.diffs) - NORMAL_MAX_DIFFS} more" if len(c.diffs) > NORMAL_MAX_DIFFS else ""
        w.line(
            f"    {len(c.diffs)} field(s){': ' + names + more if names else ''}; live values of objects the "
            "manifests do not declare are not shown in a pull-request plan",
            "dim",
        )
        return
    head = f" {c.address}"
    if c.resource and c.resource != c.address:
        head += f"  ({c.resource})"
    if c.summary:
        head += f"  {c.summary}"
    w.line(f"{SYMBOL[c.action]} {c.action.value}", c.action.value, tail=head)
    if c.exposure:
        w.line(f"    {_exposure.change_line(c.exposure)}")
    diffs = c.diffs if full else c.diffs[:NORMAL_MAX_DIFFS]
    for d in diffs:
        w.line(f"    {_diff_line(c, d)}")
    if len(diffs) < len(c.diffs):
        w.line(f"    ... and {len(c.diffs) - len(diffs)} more field(s) (--detail full lists them)", "dim")
    for n in c.notes:
        if n not in shared:
            w.line(f"    note: {n}")
    if c.data.get("blocked"):
        w.line(f"    blocked: {c.data['blocked']}", "unsafe")


def _text_exposure(w: _Writer, plan: Plan) -> None:
    """The plan's exposure totals (issue 27), right under the counts: one line per connection and
    currency, then the budget findings a --approve-exposure (or --force) approved."""
    lines = _exposure.total_lines(plan.exposure)
    if not lines:
        return
    w.line()
    for line in lines:
        w.line(line, "head")
    if plan.exposure.get("approved"):
        over = plan.exposure.get("over_budget") or []
        for finding in over[:NORMAL_MAX_LIST]:
            w.line(f"approved over budget: {finding}", "warn")
        if len(over) > NORMAL_MAX_LIST:
            w.line(f"approved over budget: ... and {len(over) - NORMAL_MAX_LIST} more", "warn")


OUTCOME_MARK = {
    "applied": "ok",
    "failed": "FAILED",
    "stale": "STALE",
    "skipped": "skipped",
    "interrupted": "NOT RUN",
    "unknown": "UNKNOWN",
    "pending": "PENDING",
}


def render_outcome(o: Outcome, out: TextIO) -> None:
    """One outcome (printed as soon as it is known: apply streams them)."""
    line = f"{OUTCOME_MARK.get(o.status, o.status):7} {o.change.action.value} {o.change.address}"
    if o.message:
        line += f": {o.message}"
    out.write(one_line(line) + "\n")
    for d in o.details:
        out.write(f"        {one_line(d)}\n")


class OutcomeStream:
    """Apply's text output, fed each outcome as it completes (from worker threads too).

    Every outcome that is not ``applied`` is printed at once, in full. Applied ones are printed
    as they come up to ``NORMAL_MAX_CHANGES`` per vendor and kind (all with ``detail="full"``,
    none with ``"summary"``); the rest are counted and :meth:`close` prints one line per kind
    and action. ``--format json`` and the journal always carry every outcome."""

    def __init__(self, out: TextIO, detail: str = "normal"):
        if detail not in DETAILS:
            raise ValueError(f"detail must be one of {DETAILS}")
        self.out = out
        self.cap = None if detail == "full" else (0 if detail == "summary" else NORMAL_MAX_CHANGES)
        self.listed: Counter[tuple[str, str]] = Counter()
        self.unlisted: Counter[tuple[str, str, str]] = Counter()
        self.lock = threading.Lock()

    def __call__(self, o: Outcome) -> None:
        with self.lock:
            group = (o.change.vendor, o.change.kind)
            if o.status == "applied" and self.cap is not None and self.listed[group] >= self.cap:
                self.unlisted[(o.change.vendor, o.change.kind, o.change.action.value)] += 1
                return
            self.listed[group] += o.status == "applied"
            render_outcome(o, self.out)
            self.out.flush()

    def close(self) -> None:
        with self.lock:
            for (vendor, kind, action), n in sorted(self.unlisted.items()):
                self.out.write(
                    one_line(
                        f"{OUTCOME_MARK['applied']:7} {n:,} more: {action} {kind} ({vendor}), "
                        "not listed (--detail full lists every outcome)"
                    )
                    + "\n"
                )
            self.unlisted.clear()


def outcome_summary(outcomes: list[Outcome]) -> str:
    c = Counter(o.status for o in outcomes)
    line = f"Apply: {c['applied']} applied, {c['failed']} failed, {c['stale']} stale, {c['skipped']} skipped."
    if c["pending"]:
        line += f" Pending: {c['pending']} (the vendor says they exist but does not list them yet)."
    if c["interrupted"] or c["unknown"]:
        line += f" Stopped: {c['interrupted']} not started, {c['unknown']} still in flight (outcome unknown)."
    return line


def render_outcomes(outcomes: list[Outcome], out: TextIO, *, streamed: bool = False) -> None:
    """Every outcome and the summary line; with ``streamed`` only those not printed as they
    happened (a stopped run's unstarted changes, counted rather than listed) and the summary."""
    if not streamed:
        for o in outcomes:
            render_outcome(o, out)
    else:
        for o in outcomes:
            if o.status == "unknown":
                render_outcome(o, out)
    out.write(outcome_summary(outcomes) + "\n")

"""Renderers: text (terminal/CI log), Markdown (pull-request comment) and JSON read the same Plan.

Values are displayed through :func:`show`, which never sees secret values (the plan holds only
masks and keyed fingerprints). Markdown escapes every value and keeps the whole comment under
``MARKDOWN_LIMIT`` characters by summarising the tail; the full plan stays in the JSON artifact.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter, defaultdict
from typing import Any, TextIO

from reconciler.engine import exposure as _exposure
from reconciler.manifest.oneline import one_line
from reconciler.model import Action, Change, Outcome, Plan, scope_label

SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-"}
MARKDOWN_LIMIT = 60_000


def show(value: Any) -> str:
    if isinstance(value, str):
        return one_line(json.dumps(value, ensure_ascii=False))
    return one_line(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _no_changes(plan: Plan) -> str:
    """The line a plan without changes ends its body with: "matches" only when earned."""
    seen = []
    if plan.not_restored:
        seen.append(f"{len(plan.not_restored)} declared object(s) are incomplete and were not planned (see the "
                    "warnings: not restored until filled in)")
    if plan.out_of_band:
        seen.append(f"{len(plan.out_of_band)} resource(s) ended out of band (see the warnings; nothing is "
                    "re-created without an opt-in)")
    if plan.differs:
        seen.append(f"{len(plan.differs)} resource(s) differ from the manifests in ways apply cannot change "
                    "(see the warnings)")
    if seen:
        line = "No changes to apply, but " + "; ".join(seen) + "."
        return line + (" The comparison is incomplete (see above).\n" if plan.gaps() else "\n")
    if plan.gaps():
        return ("Nothing to apply in what could be read and compared, but the comparison is incomplete: "
                f"live state is not known to match the manifests (see '{INCOMPLETE_HEAD}' above).\n")
    return "No changes. Live state matches the manifests.\n"


INCOMPLETE_HEAD = "Not read or not compared"
MAX_GAPS = 50  # listed one by one in text (--detail normal) and Markdown; JSON has them all


# -- text -------------------------------------------------------------------------------------
DETAILS = ("summary", "normal", "full")
NORMAL_MAX_DIFFS = 20  # per change at --detail normal; the rest are counted
NORMAL_MAX_LIST = 50  # unmanaged objects and warnings at --detail normal
# changes listed per vendor and kind at --detail normal (deletes are always listed); the rest are
# counted on one line. Apply lists as many applied outcomes per kind.
NORMAL_MAX_CHANGES = 20
_STYLES = {
    "create": "green", "update": "yellow", "replace": "magenta", "delete": "red",
    "head": "bold", "group": "bold cyan", "doc": "cyan", "dim": "dim", "warn": "yellow", "unsafe": "bold red",
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


def render_text(plan: Plan, out: TextIO, *, safety: list[str] | None = None, detail: str = "normal",
                color: bool = False, keys_only: bool = False) -> None:
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
            w.line(f"... and {sum(hidden.values()):,} more {kind} change(s) not listed ({what}): "
                   "--detail full lists them", "dim")


def _change(w: _Writer, c: Change, shared: set[str], *, full: bool, keys_only: bool = False) -> None:
    # a change line starts at column 0 with its symbol (scripts grep "^- delete"); its details
    # are indented under it
    if keys_only and c.action is Action.DELETE:
        w.line(f"{SYMBOL[c.action]} {c.action.value}", c.action.value, tail=f" {c.address}")
        names = ", ".join(d.path for d in c.diffs[:NORMAL_MAX_DIFFS])
        more = f" and {len(c.diffs) - NORMAL_MAX_DIFFS} more" if len(c.diffs) > NORMAL_MAX_DIFFS else ""
        w.line(f"    {len(c.diffs)} field(s){': ' + names + more if names else ''}; live values of objects the "
               "manifests do not declare are not shown in a pull-request plan", "dim")
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


OUTCOME_MARK = {"applied": "ok", "failed": "FAILED", "stale": "STALE", "skipped": "skipped",
                "interrupted": "NOT RUN", "unknown": "UNKNOWN", "pending": "PENDING"}


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
                self.out.write(one_line(f"{OUTCOME_MARK['applied']:7} {n:,} more: {action} {kind} ({vendor}), "
                                        "not listed (--detail full lists every outcome)") + "\n")
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


# -- markdown ---------------------------------------------------------------------------------
# Characters that can start Markdown or HTML syntax anywhere in a line. They are written as numeric
# character references: those render as the plain character both in Markdown text and inside the
# raw-HTML blocks the comment uses (<details>/<summary>, where backslash escapes would show).
# The comment holds no fenced block: every value is escaped inline, so there is no fence to close.
_MD_ACTIVE = "&<>\\`*_{}[]|~#"
_MD_ENTITIES = str.maketrans({ch: f"&#{ord(ch)};" for ch in _MD_ACTIVE})
# inside <code> also break "scheme:" autolinks and the "!" of image syntax
_CODE_ENTITIES = str.maketrans({ch: f"&#{ord(ch)};" for ch in _MD_ACTIVE + ":!"})
MAX_DIFF_ROWS = 40  # per change; the rest are counted (the JSON plan has them all)
MAX_NOTES = 10
MAX_WARNINGS = 20
# What GitHub turns into a link or a notification after the Markdown is rendered (so a character
# reference alone does not stop it, the text is matched once decoded): "@name" mentions a user or
# a team, "://", "www." and "user@host" are linked, "#123" refers to an issue. Each is written so
# that it reads the same but matches none: "@" gets a zero-width space after it, "https[:]//x",
# "www[.]x", "#" a zero-width space after it before a digit.
_LINKY = re.compile(r"://|\bwww\.|@|#(?=\d)", re.IGNORECASE)
_ZWSP = "&#8203;"


def _defused(m: re.Match[str]) -> str:
    found = m.group()
    if found == "://":
        return "&#91;&#58;&#93;//"
    if found == "@":
        return "@" + _ZWSP
    if found == "#":
        return "&#35;" + _ZWSP
    return found[:-1] + "&#91;.&#93;"  # www.


def _md_text(text: Any, table: dict[int, str]) -> str:
    """``text`` as one line (:func:`one_line`), its Markdown characters as references and its
    links and mentions defused."""
    s = one_line(text)
    parts = []
    pos = 0
    for m in _LINKY.finditer(s):
        parts.append(s[pos:m.start()].translate(table))
        parts.append(_defused(m))
        pos = m.end()
    parts.append(s[pos:].translate(table))
    return "".join(parts)


def md_escape(text: Any) -> str:
    """Plain text that no value can turn into Markdown, HTML, a link or a mention (one line)."""
    return _md_text(text, _MD_ENTITIES)


def _clip(text: str, n: int = 500) -> str:
    return text if len(text) <= n else text[:n] + "…"


def md_code(text: Any) -> str:
    """A value inside an inline code element that nothing can break out of (one line)."""
    return "<code>" + _md_text(text, _CODE_ENTITIES) + "</code>"


def _vendor_table(plan: Plan, stale: list[Outcome] | None) -> list[str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for c in plan.changes:
        counts[c.vendor][c.action.value] += 1
    for u in plan.unmanaged:
        counts[u.vendor]["unmanaged"] += 1
    for o in stale or []:
        counts[o.change.vendor]["stale"] += 1
    if not counts:
        return []
    cols = ["create", "update", "replace", "delete", "stale", "unmanaged"]
    lines = ["| vendor | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for vendor in sorted(counts):
        lines.append(f"| {md_escape(vendor)} | " + " | ".join(str(counts[vendor][k]) for k in cols) + " |")
    return lines


def _md_title(c: Change) -> str:
    title = f"{md_escape(SYMBOL[c.action])} {c.action.value} {md_code(_clip(c.address, 200))}"
    if c.summary:
        title += f" — {md_escape(_clip(c.summary, 200))}"
    return title


def _md_change_compact(c: Change) -> str:
    """A change whose details alone would take too much of the comment."""
    return (f"<details><summary>{_md_title(c)}</summary>\n\n_{len(c.diffs)} field change(s) and "
            f"{len(c.notes)} note(s), too large to show here; the JSON plan has them all._\n\n</details>\n")


def _md_change_keys_only(c: Change) -> str:
    """A delete of an undeclared live object in a pull-request plan (``render_markdown(keys_only=
    True)``): its identity, the names of its fields and counts — never a live value (the object is
    nobody's declaration in the change; its values stay in the JSON plan of the trusted job)."""
    title = f"{md_escape(SYMBOL[c.action])} {c.action.value} {md_code(_clip(c.address, 200))}"
    names = ", ".join(md_code(_clip(d.path, 100)) for d in c.diffs[:MAX_DIFF_ROWS])
    more = f" and {len(c.diffs) - MAX_DIFF_ROWS} more" if len(c.diffs) > MAX_DIFF_ROWS else ""
    body = [f"{len(c.diffs)} field(s){': ' + names + more if names else ''}. Live values of objects the "
            "manifests do not declare are not shown in a pull-request plan."]
    if c.source:
        body.append(f"\nIn scope of: {md_code(_clip(c.source, 200))}")
    if c.notes:
        body.append(f"\n{len(c.notes)} note(s) not shown.")
    return f"<details><summary>{title}</summary>\n\n" + "\n".join(body) + "\n\n</details>\n"


def _md_change(c: Change, *, keys_only: bool = False) -> str:
    if keys_only and c.action is Action.DELETE:
        return _md_change_keys_only(c)
    title = _md_title(c) + _md_exposure_tag(c)
    body = []
    if c.resource:
        body.append(f"Resource: {md_code(_clip(c.resource, 200))}"
                    + (f" ({md_code(_clip(c.source, 200))})" if c.source else ""))
    if c.exposure:
        body.append(f"\n**{md_escape(_clip(_exposure.change_line(c.exposure), 400))}**")
    if c.diffs:
        body.append("")
        body.append("| field | before | after |")
        body.append("|---|---|---|")
        for d in c.diffs[:MAX_DIFF_ROWS]:
            before = "" if d.before is None else md_code(_clip(show(d.before), 300))
            after = "" if d.after is None else md_code(_clip(show(d.after), 300))
            body.append(f"| {md_code(_clip(d.path, 200))} | {before} | {after} |")
        if len(c.diffs) > MAX_DIFF_ROWS:
            body.append(f"\n_… and {len(c.diffs) - MAX_DIFF_ROWS} more field(s); the JSON plan has them all._")
    for n in c.notes[:MAX_NOTES]:
        body.append(f"\nNote: {md_escape(_clip(n))}")
    if len(c.notes) > MAX_NOTES:
        body.append(f"\n_… and {len(c.notes) - MAX_NOTES} more note(s)._")
    if c.data.get("blocked"):
        body.append(f"\n**Blocked:** {md_escape(_clip(str(c.data['blocked'])))}")
    return f"<details><summary>{title}</summary>\n\n" + "\n".join(body) + "\n\n</details>\n"


def _md_exposure_head(plan: Plan) -> list[str]:
    """The exposure totals first in the comment (a reviewer reads money before field diffs), and
    the budget findings an approval let through; at most 20 lines, the JSON plan has the rest."""
    lines = _exposure.total_lines(plan.exposure)
    if not lines:
        return []
    out = [f"**{md_escape(_clip(line, 400))}**  " for line in lines[:MAX_WARNINGS]]
    if len(lines) > MAX_WARNINGS:
        out.append(f"_… and {len(lines) - MAX_WARNINGS} more connection(s) or currencies; the JSON plan has them all._")
    if plan.exposure.get("approved"):
        over = plan.exposure.get("over_budget") or []
        out += [f"\n> Approved over budget: {md_escape(_clip(f))}" for f in over[:MAX_WARNINGS]]
        if len(over) > MAX_WARNINGS:
            out.append(f"\n> … and {len(over) - MAX_WARNINGS} more approved over budget")
    return out + [""]


def _md_exposure_tag(c: Change) -> str:
    """The stake a change grants, in its collapsed title (seen without opening it)."""
    e = c.exposure
    if not e:
        return ""
    at_most = "at most " if "stake_after" in (e.get("upper_bounds") or []) else ""
    unit = f" {e['currency']}" if e.get("currency") else ""
    return " — " + md_escape(_clip(f"stake {at_most}{_exposure.money(e.get('stake_after'))}{unit}", 100))


def render_markdown(plan: Plan, *, title: str = "reconciler plan", stale: list[Outcome] | None = None,
                    limit: int = MARKDOWN_LIMIT, safety: list[str] | None = None, keys_only: bool = False) -> str:
    """The plan as one pull-request comment, always shorter than ``limit`` characters: changes are
    shown in plan order (collapsed) while they fit; the tail is summarised by kind and action.
    ``keys_only`` (a plan of a config under review): deletes of undeclared objects show their
    identity and field names, not live values."""
    head = [f"### {md_escape(_clip(title, 200))}", ""]
    head += _md_exposure_head(plan)
    if plan.header():
        head += [md_escape(plan.header()), ""]
    head += [md_escape(plan.summary_line()), ""]
    if plan.incomplete_line():
        head += [f"**{md_escape(plan.incomplete_line())}**", ""]
    head += _vendor_table(plan, stale)
    # safety findings and warnings: as many as fit in a third of the comment
    notices = [f"\n> **Unsafe:** {md_escape(_clip(s))}" for s in safety or []]
    notices += [f"\n> Warning: {md_escape(_clip(w))}" for w in plan.warnings]
    budget = limit // 3 - sum(len(h) + 1 for h in head)
    for i, n in enumerate(notices):
        if i == MAX_WARNINGS or len(n) + 60 > budget:
            head.append(f"\n> … and {len(notices) - i} more warning(s); the JSON plan has them all")
            break
        head.append(n)
        budget -= len(n) + 1
    head += _gaps_markdown(plan)
    text = "\n".join(head) + "\n\n"
    if not plan.changes:
        return text + md_escape(_no_changes(plan).rstrip("\n")) + "\n"
    rest_counts = Counter(f"{c.kind} {c.action.value}" for c in plan.changes)
    # room for the tail summary, whatever is left out (one line per kind and action)
    reserve = 200 + sum(len(md_escape(k)) + 20 for k in rest_counts)
    parts = [text]
    size = len(text)
    shown = 0
    for c in plan.changes:
        block = _md_change(c, keys_only=keys_only)
        if len(block) > limit // 4:
            block = _md_change_compact(c)
        if size + len(block) + reserve >= limit:
            break
        parts.append(block)
        size += len(block)
        shown += 1
    rest = plan.changes[shown:]
    if rest:
        by = Counter(f"{c.kind} {c.action.value}" for c in rest)
        parts.append(f"\n_{len(rest)} more change(s) not shown here to keep this comment short; "
                     "the full plan is in the JSON artifact:_\n\n")
        parts.extend(f"- {md_escape(k)}: {v}\n" for k, v in sorted(by.items()))
    return "".join(parts)


def _gaps_markdown(plan: Plan) -> list[str]:
    """The Markdown list of what could not be read or compared (at most ``MAX_GAPS`` lines)."""
    gaps = plan.gaps()
    if not gaps:
        return []
    out = ["", f"**{INCOMPLETE_HEAD} ({len(gaps)}): the plan is incomplete**", ""]
    out += [f"- {md_escape(_clip(g.line()))}" for g in gaps[:MAX_GAPS]]
    if len(gaps) > MAX_GAPS:
        out.append(f"- … and {len(gaps) - MAX_GAPS} more; the JSON plan has them all")
    return out


def render_apply_markdown(outcomes: list[Outcome], *, title: str = "reconciler apply",
                          limit: int = MARKDOWN_LIMIT) -> str:
    """The result of applying a saved plan, for a pull-request comment: the per-vendor table (with
    the stale column) and one row per change while they fit under ``limit``."""
    c = Counter(o.status for o in outcomes)
    summary = f"Apply: {c['applied']} applied, {c['failed']} failed, {c['stale']} stale, {c['skipped']} skipped."
    if c["pending"]:
        summary += f" Pending: {c['pending']} (the vendor says they exist but does not list them yet)."
    written = Plan(changes=[o.change for o in outcomes if o.status != "stale"])
    head = [f"### {md_escape(_clip(title, 200))}", "", md_escape(summary), ""]
    head += _vendor_table(written, [o for o in outcomes if o.status == "stale"])
    parts = ["\n".join(head) + "\n\n"]
    if not outcomes:
        return parts[0] + "Nothing to apply.\n"
    parts.append("| result | change | message |\n|---|---|---|\n")
    size = sum(len(p) for p in parts)
    reserve = 200
    shown = 0
    for o in outcomes:
        msg = "; ".join([o.message, *o.details]) if o.details else o.message
        row = (f"| {o.status} | {o.change.action.value} {md_code(_clip(o.change.address, 200))} | "
               f"{md_escape(_clip(msg))} |\n")
        if size + len(row) + reserve >= limit:
            break
        parts.append(row)
        size += len(row)
        shown += 1
    if shown < len(outcomes):
        rest = Counter(o.status for o in outcomes[shown:])
        parts.append(f"\n_{len(outcomes) - shown} more result(s) not shown: "
                     + ", ".join(f"{v} {k}" for k, v in sorted(rest.items())) + "._\n")
    return "".join(parts)

"""The Markdown renderer (a pull-request comment) of a plan and of an apply's outcomes. Every value
is escaped inline (:func:`md_escape`, :func:`md_code`: no Markdown, HTML, link or mention can come
from a value) and the comment stays under ``MARKDOWN_LIMIT`` characters by summarising the tail;
the full plan stays in the JSON artifact.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from reconciler.engine import exposure as _exposure
from reconciler.engine.render.common import INCOMPLETE_HEAD, MARKDOWN_LIMIT, MAX_GAPS, SYMBOL, _no_changes, show
from reconciler.manifest.oneline import one_line
from reconciler.model import Action, Change, Outcome, Plan

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
        parts.append(s[pos : m.start()].translate(table))
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
    return (
        f"<details><summary>{_md_title(c)}</summary>\n\n_{len(c.diffs)} field change(s) and "
        f"{len(c.notes)} note(s), too large to show here; the JSON plan has them all._\n\n</details>\n"
    )


def _md_change_keys_only(c: Change) -> str:
    """A delete of an undeclared live object in a pull-request plan (``render_markdown(keys_only=
    True)``): its identity, the names of its fields and counts — never a live value (the object is
    nobody's declaration in the change; its values stay in the JSON plan of the trusted job)."""
    title = f"{md_escape(SYMBOL[c.action])} {c.action.value} {md_code(_clip(c.address, 200))}"
    names = ", ".join(md_code(_clip(d.path, 100)) for d in c.diffs[:MAX_DIFF_ROWS])
    more = f" and {len(c.diffs) - MAX_DIFF_ROWS} more" if len(c.diffs) > MAX_DIFF_ROWS else ""
    body = [
        f"{len(c.diffs)} field(s){': ' + names + more if names else ''}. Live values of objects the "
        "manifests do not declare are not shown in a pull-request plan."
    ]
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
        body.append(f"Resource: {md_code(_clip(c.resource, 200))}" + (f" ({md_code(_clip(c.source, 200))})" if c.source else ""))
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


def render_markdown(
    plan: Plan,
    *,
    title: str = "reconciler plan",
    stale: list[Outcome] | None = None,
    limit: int = MARKDOWN_LIMIT,
    safety: list[str] | None = None,
    keys_only: bool = False,
) -> str:
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
        parts.append(
            f"\n_{len(rest)} more change(s) not shown here to keep this comment short; "
            "the full plan is in the JSON artifact:_\n\n"
        )
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


def render_apply_markdown(outcomes: list[Outcome], *, title: str = "reconciler apply", limit: int = MARKDOWN_LIMIT) -> str:
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
        row = f"| {o.status} | {o.change.action.value} {md_code(_clip(o.change.address, 200))} | {md_escape(_clip(msg))} |\n"
        if size + len(row) + reserve >= limit:
            break
        parts.append(row)
        size += len(row)
        shown += 1
    if shown < len(outcomes):
        rest = Counter(o.status for o in outcomes[shown:])
        parts.append(
            f"\n_{len(outcomes) - shown} more result(s) not shown: "
            + ", ".join(f"{v} {k}" for k, v in sorted(rest.items()))
            + "._\n"
        )
    return "".join(parts)

"""Renderers: text (terminal/CI log), Markdown (pull-request comment) and JSON read the same Plan.

Values are displayed through :func:`show`, which never sees secret values (the plan holds only
masks and keyed fingerprints). Markdown escapes every value and keeps the whole comment under
``MARKDOWN_LIMIT`` characters by summarising the tail; the full plan stays in the JSON artifact.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, TextIO

from reconciler.engine.plan import Action, Change, Outcome, Plan

SYMBOL = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "-/+", Action.DELETE: "-"}
MARKDOWN_LIMIT = 60_000


def show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


# -- text -------------------------------------------------------------------------------------
def render_text(plan: Plan, out: TextIO, *, safety: list[str] | None = None) -> None:
    if not plan.changes:
        out.write("No changes. Live state matches the manifests.\n")
    for c in plan.changes:
        head = f"{SYMBOL[c.action]} {c.action.value} {c.address}"
        if c.resource and c.resource != c.address:
            head += f"  ({c.resource})"
        if c.summary:
            head += f"  {c.summary}"
        out.write(head + "\n")
        for d in c.diffs:
            if c.action is Action.CREATE or d.before is None and c.action is not Action.UPDATE:
                out.write(f"    {d.path}: {show(d.after)}\n")
            elif c.action is Action.DELETE:
                out.write(f"    {d.path}: {show(d.before)}\n")
            else:
                out.write(f"    {d.path}: {show(d.before)} -> {show(d.after)}\n")
        for n in c.notes:
            out.write(f"    note: {n}\n")
        if c.data.get("blocked"):
            out.write(f"    blocked: {c.data['blocked']}\n")
    if plan.unmanaged:
        out.write(f"\nUnmanaged (left alone): {len(plan.unmanaged)}\n")
        for u in plan.unmanaged[:50]:
            out.write(f"    ? {u.kind}/{u.key}: {u.reason}\n")
        if len(plan.unmanaged) > 50:
            out.write(f"    ... and {len(plan.unmanaged) - 50} more\n")
    for w in plan.warnings:
        out.write(f"warning: {w}\n")
    for s in safety or []:
        out.write(f"unsafe: {s}\n")
    out.write(plan.summary_line() + "\n")


def render_outcomes(outcomes: list[Outcome], out: TextIO) -> None:
    for o in outcomes:
        mark = {"applied": "ok", "failed": "FAILED", "stale": "STALE", "skipped": "skipped"}[o.status]
        line = f"{mark:7} {o.change.action.value} {o.change.address}"
        if o.message:
            line += f": {o.message}"
        out.write(line + "\n")
        for d in o.details:
            out.write(f"        {d}\n")
    c = Counter(o.status for o in outcomes)
    out.write(
        f"Apply: {c['applied']} applied, {c['failed']} failed, {c['stale']} stale, {c['skipped']} skipped.\n"
    )


# -- markdown ---------------------------------------------------------------------------------
_MD_SPECIAL = str.maketrans({ch: "\\" + ch for ch in "\\`*_{}[]()<>#+-.!|~"})


def md_escape(text: str) -> str:
    """Escape Markdown and HTML metacharacters so no value can format or inject anything."""
    return (
        str(text).replace("&", "&amp;").translate(_MD_SPECIAL).replace("\r", " ").replace("\n", " ")
    )


def md_code(text: str) -> str:
    """A value inside an inline code span that nothing can break out of."""
    t = str(text).replace("\r", " ").replace("\n", " ").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<code>" + t.replace("`", "&#96;").replace("|", "&#124;") + "</code>"


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


def _md_change(c: Change) -> str:
    title = f"{SYMBOL[c.action]} {c.action.value} {md_code(c.address)}"
    if c.summary:
        title += f" — {md_escape(c.summary)}"
    body = []
    if c.resource:
        body.append(f"Resource: {md_code(c.resource)}" + (f" ({md_code(c.source)})" if c.source else ""))
    if c.diffs:
        body.append("")
        body.append("| field | before | after |")
        body.append("|---|---|---|")
        for d in c.diffs:
            before = "" if d.before is None else md_code(show(d.before))
            after = "" if d.after is None else md_code(show(d.after))
            body.append(f"| {md_code(d.path)} | {before} | {after} |")
    for n in c.notes:
        body.append(f"\nNote: {md_escape(n)}")
    if c.data.get("blocked"):
        body.append(f"\n**Blocked:** {md_escape(c.data['blocked'])}")
    return f"<details><summary>{title}</summary>\n\n" + "\n".join(body) + "\n\n</details>\n"


def render_markdown(plan: Plan, *, title: str = "reconciler plan", stale: list[Outcome] | None = None,
                    limit: int = MARKDOWN_LIMIT, safety: list[str] | None = None) -> str:
    head = [f"### {md_escape(title)}", "", md_escape(plan.summary_line()), ""]
    head += _vendor_table(plan, stale)
    if safety:
        head += [""] + [f"> **Unsafe:** {md_escape(s)}" for s in safety]
    for w in plan.warnings:
        head.append(f"\n> Warning: {md_escape(w)}")
    text = "\n".join(head) + "\n\n"
    if not plan.changes:
        return text + "No changes. Live state matches the manifests.\n"
    tail_note = "\n_{n} more change(s) not shown here to keep this comment short; the full plan is in the JSON artifact._\n"
    reserve = len(tail_note) + 20
    shown = 0
    for c in plan.changes:
        block = _md_change(c)
        if len(text) + len(block) + reserve > limit:
            break
        text += block
        shown += 1
    rest = plan.changes[shown:]
    if rest:
        by = Counter(f"{c.kind} {c.action.value}" for c in rest)
        text += tail_note.format(n=len(rest))
        text += "".join(f"- {md_escape(k)}: {v}\n" for k, v in sorted(by.items()))[: max(0, limit - len(text) - 1)]
    return text

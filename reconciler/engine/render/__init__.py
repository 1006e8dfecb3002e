"""Renderers: text (terminal/CI log), Markdown (pull-request comment) and JSON read the same Plan.

Values are displayed through :func:`show`, which never sees secret values (the plan holds only
masks and keyed fingerprints). Markdown escapes every value and keeps the whole comment under
``MARKDOWN_LIMIT`` characters by summarising the tail; the full plan stays in the JSON artifact.

Modules: :mod:`.common` (what both share), :mod:`.text`, :mod:`.markdown`. The JSON form is the
plan file's own data (:func:`reconciler.engine.planfile.plan_to_dict`).
"""

from __future__ import annotations

from reconciler.engine.render.common import INCOMPLETE_HEAD, MARKDOWN_LIMIT, MAX_GAPS, SYMBOL, show
from reconciler.engine.render.markdown import md_code, md_escape, render_apply_markdown, render_markdown
from reconciler.engine.render.text import (
    DETAILS,
    NORMAL_MAX_CHANGES,
    OutcomeStream,
    outcome_summary,
    render_outcome,
    render_outcomes,
    render_text,
)

# the renderers' import path stays reconciler.engine.render (the CLI, tests)
__all__ = [
    "DETAILS",
    "INCOMPLETE_HEAD",
    "MARKDOWN_LIMIT",
    "MAX_GAPS",
    "NORMAL_MAX_CHANGES",
    "SYMBOL",
    "OutcomeStream",
    "md_code",
    "md_escape",
    "outcome_summary",
    "render_apply_markdown",
    "render_markdown",
    "render_outcome",
    "render_outcomes",
    "render_text",
    "show",
]

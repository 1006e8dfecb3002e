"""What every renderer shares: how one value is shown (:func:`show`, never a secret: the plan holds
only masks and keyed fingerprints), the change symbols, the line a plan without changes ends with
("matches" only when earned) and the limits of the listed gaps.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.manifest.oneline import one_line
from reconciler.model import Action, Plan

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
        seen.append(
            f"{len(plan.not_restored)} declared object(s) are incomplete and were not planned (see the "
            "warnings: not restored until filled in)"
        )
    if plan.out_of_band:
        seen.append(
            f"{len(plan.out_of_band)} resource(s) ended out of band (see the warnings; nothing is re-created without an opt-in)"
        )
    if plan.differs:
        seen.append(f"{len(plan.differs)} resource(s) differ from the manifests in ways apply cannot change (see the warnings)")
    if seen:
        line = "No changes to apply, but " + "; ".join(seen) + "."
        return line + (" The comparison is incomplete (see above).\n" if plan.gaps() else "\n")
    if plan.gaps():
        return (
            "Nothing to apply in what could be read and compared, but the comparison is incomplete: "
            f"live state is not known to match the manifests (see '{INCOMPLETE_HEAD}' above).\n"
        )
    return "No changes. Live state matches the manifests.\n"


INCOMPLETE_HEAD = "Not read or not compared"
MAX_GAPS = 50  # listed one by one in text (--detail normal) and Markdown; JSON has them all

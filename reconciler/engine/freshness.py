"""Is a saved plan still the plan? Freshness judged per document, not per tree.

A saved plan is refused only when something one of its changes depends on changed since planning:

- the manifest document that declares the change (with the data files it names);
- for a prune (a change no document declares): every document of that kind and every
  ``PruneScope`` — adding, removing or editing any of them changes what is pruned;
- the config section of the change's vendor (``providers.<vendor>``, TcaplusDB table schemas
  included) and ``settings`` (thresholds).

So two pull requests over disjoint documents can be planned side by side and their plans applied
in either order after both merged. What the live objects did in the meantime is the second guard:
every change is re-planned and must reproduce exactly (``run.reconcile_saved``).
"""

from __future__ import annotations

from reconciler.model import Change

SCOPE_PREFIX = "PruneScope/"


def _kind_of(ref: str) -> str:
    return ref.split("/", 1)[0]


def changed_dependencies(
    changes: list[Change],
    *,
    planned_docs: dict[str, str],
    docs_now: dict[str, str],
    planned_config: dict[str, str],
    config_now: dict[str, str],
) -> list[str]:
    """What the saved ``changes`` depend on that differs now: document refs (``KIND/NAME``) and
    config sections (``providers.jdb``, ``settings``), sorted; empty when the plan is fresh."""

    def doc_changed(ref: str) -> bool:
        return planned_docs.get(ref) != docs_now.get(ref)

    all_refs = set(planned_docs) | set(docs_now)
    out: set[str] = set()
    for c in changes:
        if c.resource:
            deps = {c.resource}
        else:
            deps = {r for r in all_refs if _kind_of(r) == c.kind or r.startswith(SCOPE_PREFIX)}
        out.update(r for r in deps if doc_changed(r))
        for section in (f"providers.{c.vendor}", "settings"):
            if planned_config.get(section) != config_now.get(section):
                out.add(section)
    return sorted(out)


def describe(changed: list[str], *, limit: int = 20) -> str:
    """``A, B, C`` — at most ``limit`` names, then a count (a refusal must fit on one line)."""
    shown = ", ".join(changed[:limit])
    return shown + (f" and {len(changed) - limit} more" if len(changed) > limit else "")

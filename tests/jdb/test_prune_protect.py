"""FreeSpinEvent prune through the shared decision (reconciler.kinds.prune): inside a PruneScope an
undeclared event named by the scope's ``protect`` (by display name or by eventId) is listed as
protected and never terminated, while the scope's other undeclared events are."""

from __future__ import annotations

from .conftest import AGENT, JdbWorkspace
from .test_free_spin_event import apply, event_doc


def test_prune_spares_events_the_scope_protects_by_name_or_event_id(ws: JdbWorkspace) -> None:
    ws.write("manifests/events.yaml", "---\n".join(event_doc(ws, n, name=f"promo-{n}") for n in ("a", "b", "c", "d")))
    apply(ws)
    ids = {e["name"]: e["eventId"] for e in ws.live()}
    ws.write("manifests/events.yaml", event_doc(ws, "a", name="promo-a"))
    ws.write(
        "manifests/scope.yaml",
        f"""
    apiVersion: reconciler/v1
    kind: PruneScope
    metadata: {{name: promos}}
    spec:
      target: FreeSpinEvent
      match: {{agent: {AGENT}, namePrefix: promo-}}
      protect: [promo-b, "{ids["promo-c"]}"]
    """,
    )
    plan = ws.cli("plan")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "'promo-b': protected by PruneScope/promos" in plan.stdout
    assert "'promo-c': protected by PruneScope/promos" in plan.stdout
    assert plan.stdout.count("- delete FreeSpinEvent/") == 1 and f"FreeSpinEvent/{AGENT}/{ids['promo-d']}" in plan.stdout
    apply(ws)
    assert sorted(e["name"] for e in ws.live()) == ["promo-a", "promo-b", "promo-c"]
    assert [e["name"] for e in ws.events() if e["status"] == "TERMINATED"] == ["promo-d"]

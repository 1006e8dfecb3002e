"""Progress of the JDB player reads (Action 71 per player) in a plan (issue #12)."""

from __future__ import annotations

import pytest

from .conftest import JdbWorkspace
from .test_free_spin_event import event_doc


def test_player_reads_report_progress(ws: JdbWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.cli.progress

    players = [f"player{i:05d}" for i in range(1, 41)]
    ws.write("manifests/events.yaml", event_doc(ws, players=players))
    assert ws.cli("apply", "--auto-approve").exit_code == 0
    monkeypatch.setattr(reconciler.cli.progress, "PROGRESS_INTERVAL", 0.0)
    res = ws.cli("plan")
    assert res.exit_code == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("progress: JDB players: reading: ")]
    assert "progress: JDB players: reading: 40/40" in lines, res.stderr

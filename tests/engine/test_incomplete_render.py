"""The "incomplete" parts of a plan at scale: 2 and 2,000 entries, text and Markdown read the
same Plan data (model.Gap), the list is bounded and says how many more there are."""

from __future__ import annotations

import io

import pytest

from reconciler.engine.render import MARKDOWN_LIMIT, MAX_GAPS, render_markdown, render_text
from reconciler.model import Gap, Plan


def _plan(n: int) -> Plan:
    gaps = [
        Gap(kind="FreeSpinEvent", field=f"field{i:04d}", why="not returned by the vendor", resources=1, connection=f"c{i % 3}")
        for i in range(n - 1)
    ]
    return Plan(noops={"FreeSpinEvent": n}, uncompared=gaps, failed={"TcaplusRecords@c1": "tcaplus: busy"})


@pytest.mark.parametrize("n", [2, 2000])
def test_text_lists_what_was_not_read_or_compared_bounded(n: int) -> None:
    out = io.StringIO()
    render_text(_plan(n), out)
    text = out.getvalue()
    listed = [line for line in text.splitlines() if line.startswith("    ! ")]
    assert len(listed) == min(n, MAX_GAPS)
    assert f"Not read or not compared ({n}): the plan is incomplete" in text
    assert "! TcaplusRecords@c1: live state not read: tcaplus: busy" in text  # kinds not read come first
    assert ("... and" in text) == (n > MAX_GAPS)
    assert f"Incomplete: 1 kind(s) not read, {n - 1} field(s) not compared." in text
    assert "No changes" not in text and "matches" not in text
    full = io.StringIO()
    render_text(_plan(n), full, detail="full")
    assert sum(line.startswith("    ! ") for line in full.getvalue().splitlines()) == n


@pytest.mark.parametrize("n", [2, 2000])
def test_markdown_lists_them_within_the_comment_limit(n: int) -> None:
    md = render_markdown(_plan(n))
    assert len(md) < MARKDOWN_LIMIT
    assert f"**Not read or not compared ({n}): the plan is incomplete**" in md
    assert sum(line.startswith("- ") and " not " in line for line in md.splitlines()) == min(n, MAX_GAPS)
    assert ("the JSON plan has them all" in md) == (n > MAX_GAPS)
    assert "No changes" not in md and "matches" not in md


def test_a_complete_plan_still_says_no_changes() -> None:
    out = io.StringIO()
    render_text(Plan(noops={"ProxyAccount": 2}), out)
    assert "No changes. Live state matches the manifests." in out.getvalue()
    assert "Incomplete" not in out.getvalue()
    assert "No changes. Live state matches the manifests." in render_markdown(Plan(noops={"ProxyAccount": 2}))

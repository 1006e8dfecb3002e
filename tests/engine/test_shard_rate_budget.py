"""The shared rate budget holds across shard processes (issue 26 item 4): N processes of the real
CLI plan, then apply, a TcaplusDB restore at once against one served emulator whose connection has
``requests_per_second: RPS``; the emulator's arrival observer (``Emulator.on_arrival``) records
when every request of every shard reached it, and in every sliding window of W seconds all shards
together sent at most ``RPS * W + N * (1 + C)`` requests.

The allowance, ``N * (1 + C)`` with C the connection's ``concurrency`` (requests in flight per
process), holds whatever the delays on the way (a loaded machine, an emulator that stalls):
a process takes a budget slot only with a connection in hand, and its slots are at least 1/rate
apart. A request arriving in a window ``[t, t + W]`` either took its slot within the window (it
cannot arrive before it is sent): at most ``rate * W + 1`` of those; or took it before ``t`` and
was not yet answered at ``t``, so held one of the C connections then: at most C. The shards' rates
sum to RPS (1/N each while planning, while applying half an even share plus half their share of the planned calls), so all
shards together send at most ``RPS * W + N * (1 + C)`` in any window. It is an upper bound only:
a slow machine makes the runs longer, never the windows fuller, so nothing here depends on speed
and no lower bound is asserted. Without the shares (each shard at the full budget) the windows
hold about N times RPS * W.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.sandbox.base import Request
from reconciler.sandbox.serve import Sandbox
from tests.engine.test_shard_processes import _env, _journal, _run_all
from tests.support import CliWorkspace

ROOT = Path(__file__).resolve().parents[2]
N = 3
RPS = 40.0
C = 2  # the connection's concurrency
RECORDS = 150
WINDOWS = (0.5, 1.0, 2.0)  # seconds


class Restore(CliWorkspace):
    """A TcaplusDB restore of RECORDS records into an empty table, on a sandbox served in this
    process whose emulator records the arrival time of every vendor request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self.write("tables/item_catalog.proto", (ROOT / "tables" / "item_catalog.proto").read_text(encoding="utf-8"))
        self.sbx = Sandbox(root / "state", tcaplus_tables={"item_catalog": root / "tables" / "item_catalog.proto"}).start()
        self.sbx.servers["tcaplus"].emulator.on_arrival.append(self._arrived)
        tcaplus = self.sbx.providers()["tcaplus"]
        tcaplus.update(
            {
                "retry_wait_initial": 0.01,
                "timeout": 20,
                "concurrency": C,
                "requests_per_second": RPS,
                "tables": {"item_catalog": {"proto": "tables/item_catalog.proto"}},
            }
        )
        self.write(
            "reconciler.yaml",
            yaml.safe_dump({"apiVersion": "reconciler/v1", "kind": "Config", "providers": {"tcaplus": tcaplus}}, sort_keys=False),
        )
        lines = [
            json.dumps({"region": 100 + i, "item_id": 5000 + i, "name": f"item {i}", "price": 10 + i}) for i in range(RECORDS)
        ]
        self.write("data/items.jsonl", "\n".join(lines) + "\n")
        self.write(
            "manifests/records.yaml",
            yaml.safe_dump(
                {
                    "apiVersion": "reconciler/v1",
                    "kind": "TcaplusRecords",
                    "metadata": {"name": "items"},
                    # no prune scope, and each record in a region of its own (more index keys than a plan
                    # reads by index): each shard reads the records it owns one by one (GetRecord), so the
                    # plans too make enough requests to fill the windows
                    "spec": {"table": "item_catalog", "mode": "whole", "file": "../data/items.jsonl"},
                },
                sort_keys=False,
            ),
        )

    def _arrived(self, req: Request, at: float) -> None:
        with self._lock:
            self.arrivals.append(at)

    def take(self) -> list[float]:
        """The arrival times recorded since the last call, sorted."""
        with self._lock:
            out, self.arrivals = sorted(self.arrivals), []
        return out


@pytest.fixture
def budget_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Restore]:
    monkeypatch.chdir(tmp_path)
    r = Restore(tmp_path)
    yield r
    r.sbx.stop()


def fullest_window(times: list[float], width: float) -> int:
    """The most arrivals in any window ``[t, t + width]`` (sorted ``times``; a window that holds
    any starts, at its fullest, at an arrival)."""
    best = end = 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] <= t + width:
            end += 1
        best = max(best, end - start)
    return best


def test_fullest_window_counts_both_ends() -> None:
    assert fullest_window([], 1.0) == 0
    assert fullest_window([0.0, 0.5, 1.0, 1.5], 1.0) == 3
    assert fullest_window([0.0, 0.1, 5.0], 1.0) == 2


def _within_budget(times: list[float]) -> dict[float, tuple[int, float]]:
    """Per window width: the fullest window seen and the bound (see the module's docstring)."""
    return {w: (fullest_window(times, w), RPS * w + N * (1 + C)) for w in WINDOWS}


def test_n_shard_processes_together_stay_within_the_connections_rate_budget(budget_restore: Restore) -> None:
    # plan: N processes at once (GitLab's variables), each at 1/N of the budget
    plans = _run_all(
        budget_restore.root,
        [(["plan", "--out", f"plan-{k}.json"], _env(CI_NODE_INDEX=str(k), CI_NODE_TOTAL=str(N))) for k in range(1, N + 1)],
    )
    assert [r.returncode for r in plans] == [0] * N, [r.stderr for r in plans]
    planned = budget_restore.take()
    assert len(planned) >= RECORDS  # every shard read its records: enough requests to fill the windows
    plan_windows = _within_budget(planned)
    assert all(seen <= bound for seen, bound in plan_windows.values()), plan_windows

    merged = _run_all(
        budget_restore.root, [(["plan", "merge", *(f"plan-{k}.json" for k in range(1, N + 1)), "--out", "planset.json"], _env())]
    )[0]
    assert merged.returncode == 0, merged.stderr
    shards = json.loads((budget_restore.root / "planset.json").read_text())["planset"]["shards"]
    shares = [s["rate_share"]["tcaplus/default"] for s in shards]
    assert all(0 < s < 1 for s in shares) and abs(sum(shares) - 1) < 1e-3, shares
    budget_restore.take()

    # apply: N processes at once (a Kubernetes Indexed Job's variables), each at its share
    applies = _run_all(
        budget_restore.root,
        [
            (
                ["apply", "planset.json", "--journal", f"shard-{k}.jsonl"],
                _env(JOB_COMPLETION_INDEX=str(k - 1), RECONCILER_SHARD_TOTAL=str(N)),
            )
            for k in range(1, N + 1)
        ],
    )
    assert [r.returncode for r in applies] == [0] * N, [r.stderr for r in applies]
    applied = budget_restore.take()
    written = [
        sum(rec["type"] == "outcome" and rec["status"] == "applied" for rec in _journal(budget_restore.root / f"shard-{k}.jsonl"))
        for k in range(1, N + 1)
    ]
    assert all(written) and sum(written) == RECORDS, written  # every shard wrote its part, together all records
    assert len(applied) >= RECORDS
    apply_windows = _within_budget(applied)
    assert all(seen <= bound for seen, bound in apply_windows.values()), apply_windows

"""Smoke test of ``bench/fleet.py`` at a tiny scale, so the script cannot rot.

It checks that the bench runs every scenario through the real CLI against ``reconciler sandbox
serve`` and prints its figures and targets — never what the figures are (no timing is asserted).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# bench scripts run for seconds each: left out of the quick loop (CONTRIBUTING.md), run by .ci/run
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fleet.py"
SCENARIOS = ("cold apply", "no-op plan", "drift plan 1%", "naive loop")
TARGETS = (
    "no-op plan <= 1.5x its lower bound",
    "cold apply <= 1.5x its lower bound",
    "no-op plan >= 10x faster than the naive loop",
    "client CPU <= 0.3 ms per request",
    "peak RSS <= 250 MB at 1x",
)


def test_fleet_bench_runs_every_scenario_and_prints_the_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--scale",
            "0.005",
            "--latency-ms",
            "1",
            "--region-size",
            "30",
            "--players-per-event",
            "5",
            "--timeout",
            "120",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "scale 0.005x: 10 proxy accounts, 10-IP allowlist, 1 free-spin events x 5 players" in out
    for scenario in SCENARIOS:
        row = re.search(rf"^{re.escape(scenario)}\s+(\d+)\s+([\d,]+) / ([\d,]+) / ([\d,]+)\s", out, re.M)
        assert row, f"no row for {scenario}:\n{out}"
        exit_code, *requests = row.groups()
        assert exit_code == "0", f"{scenario} failed:\n{out}"
        assert all(int(n.replace(",", "")) > 0 for n in requests), row.group(0)
    for target in TARGETS:
        assert re.search(rf"\[\s*(met|NOT MET|-)\s*\] {re.escape(target)}", out), f"target missing: {target}\n{out}"
    assert "speed-up of the no-op plan over the naive loop" in out
    for scenario in SCENARIOS:  # each vendor's busy time against its own bound
        assert re.search(rf"^  {re.escape(scenario)}\s+BP\s+[\d.]+ / +[\d.]+ s .*JDB .*TC ", out, re.M), out
    # the generated fleet and each CLI run's output stay in the workspace for inspection
    assert (tmp_path / "scale-0.005" / "cold-apply.out").is_file()


def test_emulator_scale_bench_prints_a_row_per_size() -> None:
    script = BENCH.parent / "tcaplus_emulator_scale.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--sizes", "1000", "2000", "--pages", "2", "--gets", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^\s*([\d,]+)\s+[\d.]+\s+[\d.]+\s+page cost x[\d.]+ for x(\d+) records$", proc.stdout, re.M)
    assert rows == [("1,000", "1"), ("2,000", "2")], proc.stdout


def test_http_floor_bench_prints_a_row_per_way_and_thread_count() -> None:
    script = BENCH.parent / "http_floor.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--requests", "50", "--latency-ms", "0", "--threads", "1", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = re.findall(r"^(product|http\.client|raw socket)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+$", proc.stdout, re.M)
    assert rows == [(w, t) for t in ("1", "2") for w in ("product", "http.client", "raw socket")], proc.stdout


def test_request_cost_bench_prints_the_cost_per_request() -> None:
    script = BENCH.parent / "request_cost.py"
    proc = subprocess.run([sys.executable, str(script), "--requests", "20", "--cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^  per request: [\d.]+ ms of CPU \(user \+ system, start-up not counted\)$", proc.stdout, re.M), (
        proc.stdout
    )

"""Smoke test of bench/shards.py (issue 26): run small, it prints the figures docs/scale-out.md
quotes — the union and Markdown equivalence, objects written twice, the restore speed-up lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_shard_bench_runs_small_and_prints_its_figures() -> None:
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "shards.py"),
            "--records",
            "40",
            "--latency-ms",
            "0",
            "--shards",
            "1",
            "2",
            "--fleet-scale",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for n in (1, 2):
        assert re.search(
            rf"^N={n}: \d+ changes; union of shard plans == N=1 plan: True; Markdown == N=1 apart from "
            rf"the shard line: True; objects written by two shards: 0; Apply of {n} shard\(s\): complete: ",
            out,
            re.M,
        ), out
        assert re.search(
            rf"^N={n}: T= *[\d.]+ s  floors: wait +[\d.]+ s, CPU +[\d.]+ s / \d+ = +[\d.]+ s \([\d,]+ TcaplusDB "
            rf"requests\) .* Apply of {n} shard\(s\): complete: 40 applied\.$",
            out,
            re.M,
        ), out
        for topology in ("one-machine", "runners"):
            assert re.search(rf"^{topology}: N={n}: S\(N\) = +[\d.]+  S\(N\)/N = +[\d.]+$", out, re.M), out
    # the N runners topology: each shard alone, T(N) = slowest plan + merge + slowest apply
    assert re.search(
        r"^N=2: T= *[\d.]+ s  floor: wait +[\d.]+ s \([\d,]+ TcaplusDB requests\) .* Apply of 2 shard\(s\): complete: 40 applied\.$",
        out,
        re.M,
    ), out
    assert re.search(r"^N=1: as above", out, re.M), out

"""Benchmark: JDB calls, wall time, CPU and memory of planning free-spin events as the declared
player lists grow, against the JDB emulator on loopback (documented Action 76 answers).

The lower bound of a plan's JDB calls is one Action 76 per agent; the product adds at most
PLAYER_READ_BUDGET Action 71 calls per run, however many players are declared.

    python bench/jdb_plan_reads.py --events 20 --players 10 1000 50000
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.vendors.jdb.free_spin_event import PLAYER_READ_BUDGET
from reconciler.sandbox.wire import EmulatorServer
from reconciler.vendors.jdb.emulator import JdbEmulator

KEY, IV = "benchOnlyKey0001", "benchOnlyIv00001"  # bench-only values


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--players", type=int, nargs="+", default=[10, 1000, 20000])
    args = ap.parse_args()
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
    for players in args.players:
        emulator = JdbEmulator(dc="bench", key=KEY, iv=IV, agents=["benchag"])
        with tempfile.TemporaryDirectory() as tmp, EmulatorServer(emulator) as srv:
            root = Path(tmp)
            (root / "key").write_text(KEY)
            (root / "iv").write_text(IV)
            (root / "reconciler.yaml").write_text(
                f"apiVersion: reconciler/v1\nkind: Config\nproviders:\n  jdb:\n    base_url: {srv.url}\n"
                "    dc: bench\n    key: file:key\n    iv: file:iv\n"
            )
            per_event = max(1, players // args.events)
            (root / "players.txt").write_text("\n".join(f"player{i % 99999 + 1:05d}" for i in range(per_event)) + "\n")
            docs = [
                f"apiVersion: reconciler/v1\nkind: FreeSpinEvent\nmetadata: {{name: e{i}}}\n"
                f"spec: {{name: 'Bench {i}', agent: benchag, startTime: '{start.isoformat()}', "
                f"endTime: '{(start + timedelta(days=7)).isoformat()}', machineTypes: [14077], bet: '1', type: NORMAL, "
                f"times: 5, playersFile: players.txt}}\n"
                for i in range(args.events)
            ]
            (root / "m.yaml").write_text("---\n".join(docs))
            runner = CliRunner()
            cwd = os.getcwd()
            os.chdir(root)
            try:
                for step, argv in (("apply", ["apply", "m.yaml", "--auto-approve"]), ("plan", ["plan", "m.yaml"])):
                    httpx.post(srv.url + "/_sandbox/stats/reset")
                    emulator.action_counts.clear()
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    res = runner.invoke(cli, [*argv, "--config", "reconciler.yaml"])
                    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                    calls = dict(sorted(emulator.action_counts.items()))
                    print(
                        f"players/event={per_event:6d} {step:6} exit={res.exit_code} JDB calls={sum(calls.values()):4d} "
                        f"{calls} wall={wall:6.2f}s cpu={cpu:6.2f}s (emulator included)"
                    )
            finally:
                os.chdir(cwd)
    print(f"plan lower bound: 1 Action 76 per agent; Action 71 budget per run: {PLAYER_READ_BUDGET}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

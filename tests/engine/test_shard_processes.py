"""Sharded runs as the engines run them (issue 26): N local processes of the real CLI, each told its
shard only by its engine's own variables (GitLab ``CI_NODE_INDEX``/``CI_NODE_TOTAL`` for the plans,
a Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` + ``RECONCILER_SHARD_TOTAL`` for the applies),
against one set of emulators served on loopback; then one shard killed and retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.test_kill_recovery import EXE, Fleet, duplicates

N = 3


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    monkeypatch.chdir(tmp_path)
    f = Fleet(tmp_path).start()
    f.manifests()
    yield f
    f.sbx.stop()


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RECONCILER_SHARD", "RECONCILER_SHARD_TOTAL", "JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL")
    }
    return {**env, **extra}


def _run_all(root: Path, argvs: list[tuple[list[str], dict[str, str]]]) -> list[subprocess.CompletedProcess[str]]:
    """Start every process at once (as a matrix does), wait for all (bounded)."""
    procs = [
        subprocess.Popen([EXE, *argv], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv, env in argvs
    ]
    done = []
    for (argv, _), p in zip(argvs, procs, strict=True):
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(argv, p.returncode, out, err))
    return done


def _cli(root: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *argv], cwd=root, env=env or _env(), capture_output=True, text=True, timeout=300)


def _journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _plan_and_merge(fleet: Fleet) -> subprocess.CompletedProcess[str]:
    plans = _run_all(
        fleet.root,
        [(["plan", "--out", f"plan-{k}.json"], _env(CI_NODE_INDEX=str(k), CI_NODE_TOTAL=str(N))) for k in range(1, N + 1)],
    )
    for r in plans:
        assert r.returncode == 0, r.stderr
        assert "safety thresholds are judged once over all shards" in r.stderr
    merged = _cli(
        fleet.root, "plan", "merge", *(f"plan-{k}.json" for k in range(1, N + 1)), "--out", "planset.json", "--format", "markdown"
    )
    assert merged.returncode == 0, merged.stderr
    return merged


def test_shards_as_processes_with_the_engines_variables(fleet: Fleet) -> None:
    unsharded = _cli(fleet.root, "plan", "--format", "markdown")
    assert unsharded.returncode == 0, unsharded.stderr
    merged = _plan_and_merge(fleet)
    line = next(x for x in merged.stdout.splitlines() if x.startswith("_Merged from 3 shard plan(s)"))
    assert merged.stdout.replace(line + "\n", "", 1) == unsharded.stdout
    # apply: a Kubernetes Indexed Job (0-based index, N from RECONCILER_SHARD_TOTAL)
    applies = _run_all(
        fleet.root,
        [
            (
                ["apply", "planset.json", "--journal", f"shard-{k}.jsonl"],
                _env(JOB_COMPLETION_INDEX=str(k - 1), RECONCILER_SHARD_TOTAL=str(N)),
            )
            for k in range(1, N + 1)
        ],
    )
    for r in applies:
        assert r.returncode == 0, r.stderr
    written = [
        {
            rec["address"]
            for rec in _journal(fleet.root / f"shard-{k}.jsonl")
            if rec["type"] == "outcome" and rec["status"] == "applied"
        }
        for k in range(1, N + 1)
    ]
    assert all(written)  # every shard wrote its part
    assert sum(len(w) for w in written) == len(set().union(*written))  # 0 objects written by two shards
    planned = {c["kind"] + "/" + c["key"] for c in json.loads((fleet.root / "planset.json").read_text())["changes"]}
    assert set().union(*written) == planned
    report = _cli(fleet.root, "apply", "merge-report", *(f"shard-{k}.jsonl" for k in range(1, N + 1)))
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.splitlines()[-1] == f"Apply of {N} shard(s): complete: {len(planned)} applied."
    assert duplicates(fleet.state()) == {}
    after = _cli(fleet.root, "plan", "--detailed-exitcode")
    assert after.returncode == 0, after.stdout


def test_a_shard_killed_mid_apply_is_retried_and_writes_only_what_is_left(fleet: Fleet) -> None:
    _plan_and_merge(fleet)
    others = _run_all(
        fleet.root, [(["apply", "planset.json", "--shard", f"{k}/{N}", "--journal", f"shard-{k}.jsonl"], _env()) for k in (2, 3)]
    )
    assert [r.returncode for r in others] == [0, 0], [r.stderr for r in others]
    # shard 1 is killed (SIGKILL, as a pod evicted) once some of its writes have their outcome
    fleet.faults(latency_ms=40)
    journal = fleet.root / "shard-1.jsonl"
    proc = subprocess.Popen(
        [EXE, "apply", "planset.json", "--journal", "shard-1.jsonl"],
        cwd=fleet.root,
        env=_env(RECONCILER_SHARD=f"1/{N}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if journal.exists() and sum(r["type"] == "outcome" for r in _journal(journal)) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "shard 1 finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    fleet.faults(latency_ms=0)
    first = {r["address"] for r in _journal(journal) if r["type"] == "outcome" and r["status"] == "applied"}
    shard_total = len(_journal(journal)[0]["changes"])
    assert 3 <= len(first) < shard_total
    # the outcome is not complete: shard 1 never finished
    report = _cli(fleet.root, "apply", "merge-report", *(f"shard-{k}.jsonl" for k in range(1, N + 1)))
    assert report.returncode == 4, report.stdout
    assert f"shard 1/{N}: not finished" in report.stdout and "retry this shard" in report.stdout
    # the retry (the Job's next pod for index 0) continues the journal and writes only what is left
    retry = _cli(
        fleet.root,
        "apply",
        "planset.json",
        "--journal",
        "shard-1.jsonl",
        env=_env(JOB_COMPLETION_INDEX="0", RECONCILER_SHARD_TOTAL=str(N)),
    )
    assert retry.returncode == 0, retry.stderr
    records = _journal(journal)
    runs = [i for i, r in enumerate(records) if r["type"] == "run"]
    assert len(runs) == 2  # one journal, two attempts
    second = [r for r in records[runs[1] :] if r["type"] == "outcome"]
    assert {r["status"] for r in second} <= {"applied", "skipped"}
    applied_again = {r["address"] for r in second if r["status"] == "applied"}
    assert not applied_again & first  # nothing the killed attempt wrote is written again
    assert len(second) == shard_total
    report = _cli(fleet.root, "apply", "merge-report", *(f"shard-{k}.jsonl" for k in range(1, N + 1)))
    assert report.returncode == 0, report.stdout
    assert duplicates(fleet.state()) == {}
    assert _cli(fleet.root, "plan", "--detailed-exitcode").returncode == 0


def test_the_cli_refuses_what_would_split_the_gate(fleet: Fleet) -> None:
    r = _cli(fleet.root, "apply", "--auto-approve", "--shard", "1/2")
    assert r.returncode == 1 and "applies a merged planset" in r.stderr
    r = _cli(fleet.root, "plan", "--shard", "1/2", "--force")
    assert r.returncode == 1 and "--force goes to `plan merge`" in r.stderr
    r = _cli(fleet.root, "plan", env=_env(JOB_COMPLETION_INDEX="0"))
    assert r.returncode == 1 and "RECONCILER_SHARD_TOTAL" in r.stderr
    r = _cli(fleet.root, "plan", "--shard", "2/2", env=_env(CI_NODE_INDEX="1", CI_NODE_TOTAL="2"))
    assert r.returncode == 1 and "disagree" in r.stderr
    _cli(fleet.root, "plan", "--shard", "1/2", "--out", "p1.json")
    r = _cli(fleet.root, "plan", "merge", "p1.json", "--out", "planset.json")
    assert r.returncode == 1 and "missing shard plan(s) 2/2" in r.stderr and not (fleet.root / "planset.json").exists()
    r = _cli(fleet.root, "apply", "merge-report", "p1.json")
    assert r.returncode == 1

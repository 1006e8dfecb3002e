"""The journal reaches the disk without an fsync per line: fsynced at the run record, the end record,
on close and when interrupted, otherwise grouped (at most every SYNC_INTERVAL seconds).

``os.fsync`` is counted (only the calls on the journal file itself, told by its inode); the rest
runs for real: a real file, and a real ``reconciler apply`` against the BestProxy emulator."""

from __future__ import annotations

import json
import signal
import threading
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.engine import journal as journal_module
from reconciler.engine.journal import SYNC_INTERVAL, Journal
from reconciler.model import Action, Change, Outcome
from tests.engine.conftest import Workspace, accounts_file


class FsyncCounter:
    """Counts ``os.fsync`` calls per inode, then does the real fsync."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.inodes: list[int] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            self.inodes.append(os.fstat(fd).st_ino)
            real(fd)

        monkeypatch.setattr(journal_module.os, "fsync", fsync)

    def of(self, path: Path) -> int:
        return self.inodes.count(path.stat().st_ino)


def change(i: int) -> Change:
    return Change(kind="ProxyAccount", vendor="bestproxy", key=f"game{i:04d}", action=Action.CREATE)


def test_lines_are_flushed_at_once_and_fsynced_at_the_run_and_end_records_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = FsyncCounter(monkeypatch)
    path = tmp_path / "run.jsonl"
    j = Journal.open_new(path)
    j.sync_interval = 3600.0  # no grouped fsync during this test: only the records that demand one
    j.run(changes=[], existing_in_scope={}, resumed=False, options={}, digest={})
    assert counter.of(path) == 1  # the run record is on disk before any write is sent
    for i in range(500):
        c = change(i)
        j.intent(c)
        j.outcome(Outcome(c, "applied"))
    assert counter.of(path) == 1  # 1,000 lines, no fsync per line ...
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1001  # ... yet each one is flushed
    j.end(status="finished", exit_code=0, counts={"applied": 500})
    assert counter.of(path) == 2
    j.close()
    assert counter.of(path) == 2  # nothing written since the end record's fsync
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[-1])["type"] == "end"


def test_close_fsyncs_what_was_written_since_the_last_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = FsyncCounter(monkeypatch)
    path = tmp_path / "run.jsonl"
    j = Journal(path, append=False, sync_interval=3600.0)
    j.run(changes=[], existing_in_scope={}, resumed=False, options={}, digest={})
    j.intent(change(1))
    j.close()
    assert counter.of(path) == 2


def test_a_line_is_fsynced_within_the_interval_without_a_later_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = FsyncCounter(monkeypatch)
    path = tmp_path / "run.jsonl"
    j = Journal(path, append=False, sync_interval=0.05)
    j.run(changes=[], existing_in_scope={}, resumed=False, options={}, digest={})
    j.intent(change(1))  # within the interval: not fsynced now, but a timer will
    deadline = time.monotonic() + 5
    while counter.of(path) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counter.of(path) == 2
    j.close()
    assert counter.of(path) == 2


def test_an_interrupted_run_fsyncs_at_once_and_a_closed_journal_does_not_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = FsyncCounter(monkeypatch)
    path = tmp_path / "run.jsonl"
    j = Journal(path, append=False, sync_interval=3600.0)
    j.run(changes=[], existing_in_scope={}, resumed=False, options={}, digest={})
    j.intent(change(1))
    j.sync_now()  # what the first SIGINT/SIGTERM does
    assert counter.of(path) == 2
    j.close()
    j.sync_now()  # a signal after the end: nothing to do, no error


def test_an_apply_with_many_writes_does_not_fsync_per_line(bp: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = FsyncCounter(monkeypatch)
    names = [f"game{i:03d}" for i in range(150)]
    accounts_file(bp, names, trafficLimitGb=3)  # create + follow-up change for every account
    started = time.monotonic()
    res = bp.cli("apply", "--auto-approve", "--journal", "run.jsonl")
    elapsed = time.monotonic() - started
    assert res.exit_code == 0, res.stdout + res.stderr
    path = bp.root / "run.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 + 2 * len(names)  # run, an intent and an outcome per account, end
    fsyncs = counter.of(path)
    # the run and end records, and at most one grouped fsync per interval of the run's duration
    assert 2 <= fsyncs <= 2 + elapsed / SYNC_INTERVAL + 1, (fsyncs, elapsed)
    assert fsyncs < len(lines) / 10


def test_the_first_signal_during_the_writes_fsyncs_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.engine.signals import ApplySignals

    counter = FsyncCounter(monkeypatch)
    path = tmp_path / "run.jsonl"
    j = Journal(path, append=False, sync_interval=3600.0)
    j.run(changes=[], existing_in_scope={}, resumed=False, options={}, digest={})
    j.intent(change(1))
    signals = ApplySignals(SimpleNamespace(stop=threading.Event()))
    signals.journal, signals.applying = j, True
    signals._handle(signal.SIGTERM, None)  # what the handler does when SIGTERM arrives mid-apply
    assert signals.ctx.stop.is_set() and counter.of(path) == 2
    j.close()

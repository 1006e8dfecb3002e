"""The apply journal: JSON Lines that record a run as it happens, so a crash loses nothing.

Records (one JSON object per line, each flushed to the operating system as soon as it is written):

- ``{"type": "run", ...}`` — a run starts: the options it was started with, the digest of its
  manifests and config, and the plan it is carrying out (``changes``, ``existing_in_scope``) —
  the plan a resumed run is judged against. ``resumed`` is true for ``apply --resume``;
- ``{"type": "intent", ...}`` — a change is about to be written (before its first call);
- ``{"type": "outcome", ...}`` — what happened to it (the same object ``apply --format json``
  prints);
- ``{"type": "end", ...}`` — the run ended: ``finished`` or ``interrupted``, and its exit code.

The journal holds what a plan holds — identities, field diffs with secrets masked, keyed
fingerprints and secret *references* — and never a secret value.

Tails. A line cut short (a power loss in the middle of a write) is ignored when the journal is
read back, with a note (:attr:`JournalState.notes`); a resumed run starts its first record on a
new line, so the cut line cannot swallow it. A journal that holds no complete ``run`` record (0
bytes, or its first line cut: the process died before its first write was sent, since the ``run``
record is on disk before that) records a run that applied nothing (:attr:`JournalState.empty`).

Durability. Every line is flushed when written, so a killed process (``kill -9``, a crash) loses
nothing it wrote: the operating system has it. Reaching the disk (``fsync``) is what a power loss
or an OS crash needs, and it costs milliseconds per call — too much per line for a run of 30,000
writes. So the journal is fsynced (group commit, :data:`SYNC_INTERVAL`):

- at the ``run`` record (the first line: on disk, with its directory entry for a new file,
  before the first write is sent), at the ``end`` record and at :meth:`Journal.close`;
- when the run is interrupted (:meth:`Journal.sync_now`, from the first signal, and again before a
  second Ctrl-C exits at once);
- otherwise at most every :data:`SYNC_INTERVAL` seconds: a line written when the last fsync is
  older than that fsyncs; a line written sooner arms a timer that fsyncs it when the interval is
  up. No line waits for the disk longer than about :data:`SYNC_INTERVAL`.

A power loss can therefore lose the ``intent``/``outcome``/``end`` lines of about the last
:data:`SYNC_INTERVAL` seconds, never the ``run`` record. ``apply --resume`` needs only that record
(the plan, options and digests): it plans again from live state, so changes whose outcome lines
were lost show as already done, and the rest are applied.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Final

from reconciler import safeio
from reconciler.errors import UsageError
from reconciler.model import DEFAULT_CONNECTION, Change, Outcome, address

FORMAT_VERSION = 1
SYNC_INTERVAL = 0.5
"""Seconds a written line may wait before it is fsynced (group commit; see the module docstring)."""


def outcome_record(o: Outcome) -> dict[str, Any]:
    """An outcome as one JSON object (journal lines and ``apply --format json`` share it)."""
    return {
        "type": "outcome",
        "address": o.change.address,
        "kind": o.change.kind,
        "vendor": o.change.vendor,
        "action": o.change.action.value,
        "status": o.status,
        "message": o.message,
        "details": list(o.details),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class JournalState:
    """What a journal file says about the runs it recorded."""

    root: dict[str, Any]  # the "run" record of the run that made the plan (not a resume); {} when empty
    last_run: dict[str, Any]
    ended: dict[str, Any] | None  # the "end" record of the last run, if it got that far
    outcomes: dict[str, str] = field(default_factory=dict)  # address -> last status
    intents_without_outcome: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines that were cut short and ignored

    @property
    def empty(self) -> bool:
        """No complete ``run`` record: the run sent no write (the record is on disk before the
        first one), so nothing was applied and there is nothing of it to finish."""
        return not self.root

    @property
    def complete(self) -> bool:
        """The last run ended and every change of it was applied (exit 0)."""
        return self.ended is not None and self.ended.get("exit_code") == 0

    @property
    def approved(self) -> set[str]:
        """Addresses of the changes the original run was allowed to make (under the run record's
        signature, :func:`run_signature_matches`)."""
        return approved_addresses(self.root)

    @property
    def root_changes(self) -> list[Change]:
        return [Change.from_dict(c) for c in self.root.get("changes", [])]


RUN_SIGNED: Final = ("paths", "config_path", "sandbox", "targets", "force", "allow_replace", "environment", "digest")
"""What ``apply --resume`` takes from a journal's run record, besides the addresses of its changes
(which a resumed run's safety thresholds and exposure budgets do not count again): signed."""


def approved_addresses(root: dict[str, Any]) -> set[str]:
    """The addresses of a run record's changes (``KIND/KEY``, ``@CONNECTION`` on a named one)."""
    changes = root.get("changes")
    return {
        address(str(c.get("kind")), str(c.get("key")), str(c.get("connection", DEFAULT_CONNECTION)))
        for c in (changes if isinstance(changes, list) else [])
        if isinstance(c, dict)
    }


def run_connections(root: dict[str, Any]) -> list[str]:
    """``vendor/connection`` of every change a run record holds: what its signature is keyed with."""
    changes = root.get("changes")
    return sorted(
        {
            f"{c.get('vendor')}/{c.get('connection', DEFAULT_CONNECTION)}"
            for c in (changes if isinstance(changes, list) else [])
            if isinstance(c, dict)
        }
    )


def _run_signed_content(root: dict[str, Any]) -> bytes:
    signed = {k: root.get(k) for k in RUN_SIGNED}
    signed["approved"] = sorted(approved_addresses(root))
    plain = json.loads(json.dumps(signed, ensure_ascii=False, default=str))  # as it reads back
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def run_signature_matches(root: dict[str, Any], signer: Callable[[bytes], str]) -> bool:
    """Whether a run record is as the trusted side wrote it (its options and the changes it was
    allowed to make), under the keyed MAC saved plans are signed with."""
    signature = root.get("signature")
    return isinstance(signature, str) and hmac.compare_digest(signer(_run_signed_content(root)), signature)


MAX_JOURNAL = 256 * 1024 * 1024
"""Bytes a journal may hold when read back (the size limit of a saved plan)."""


def read_journal(path: Path) -> JournalState:
    try:  # never through a symlink (safeio): the journal is written without following one either
        data = safeio.read_bytes(path, limit=MAX_JOURNAL)
        text = (data or b"").decode("utf-8", errors="replace")
    except safeio.UnsafePathError as exc:
        raise UsageError(f"{path}: cannot read the journal ({exc.reason})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the journal ({exc.__class__.__name__})") from None
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    lines = text.split("\n")
    junk = 0  # whole lines (newline-terminated) that are not records: not a journal without a run
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            # a line cut short by a power loss in the middle of a write (a resumed run's first
            # record then starts on the next line), or nested too deep to be one of ours
            where = "its last line" if n >= len(lines) - 1 else f"line {n}"
            notes.append(f"{path}: {where} was cut short (the process or the machine stopped while writing it); it is ignored")
            junk += n < len(lines)
            continue
        if isinstance(rec, dict) and isinstance(rec.get("type"), str):
            records.append(rec)
        else:
            notes.append(f"{path}: line {n} is not a journal record; it is ignored")
            junk += 1
    runs = [i for i, r in enumerate(records) if r["type"] == "run"]
    if not runs:
        if records or junk:
            raise UsageError(f"{path}: not an apply journal (no run record)")
        # 0 bytes, or only a cut first line: killed before the run record reached the file,
        # which happens before any write is sent
        return JournalState(root={}, last_run={}, ended=None, notes=notes)
    if records[runs[0]].get("format_version") != FORMAT_VERSION:
        raise UsageError(f"{path}: journal format {records[runs[0]].get('format_version')} is not supported")
    root_i = max((i for i in runs if not records[i].get("resumed")), default=runs[0])
    last_i = runs[-1]
    state = JournalState(root=records[root_i], last_run=records[last_i], ended=None, notes=notes)
    pending: dict[str, None] = {}
    for rec in records[root_i:]:
        if rec["type"] == "intent":
            pending[rec["address"]] = None
        elif rec["type"] == "outcome":
            state.outcomes[rec["address"]] = rec["status"]
            pending.pop(rec["address"], None)
    for rec in records[last_i:]:
        if rec["type"] == "end":
            state.ended = rec
    state.intents_without_outcome = list(pending)
    return state


class Journal:
    """Appends records to a journal file; thread-safe; every line is flushed when written and
    fsynced within about ``sync_interval`` seconds (see the module docstring)."""

    def __init__(self, path: Path, *, append: bool, sync_interval: float = SYNC_INTERVAL):
        self.path = path
        self.sync_interval = sync_interval
        self._lock = threading.Lock()
        # safeio: a new journal is a new file renamed into place (a symlink at its name is replaced,
        # never followed); one resumed is opened O_APPEND|O_NOFOLLOW, a regular file with one link
        self._fh: IO[str] = safeio.open_stream(path, append=append)
        self._new_file = not append
        self._cut = append and _ends_cut(path)  # the last line was cut short: start on a new line
        self._synced_at = -math.inf  # the first line is fsynced when written
        self._dirty = False  # lines written since the last fsync
        self._timer: threading.Timer | None = None

    @classmethod
    def open_new(cls, path: Path) -> "Journal":
        """A fresh journal; refuses to overwrite one whose run did not finish."""
        if not path.is_symlink() and path.exists() and path.stat().st_size:  # a symlink is replaced, never read
            state = read_journal(path)
            if not state.complete and not state.empty:
                raise UsageError(
                    f"{path} records a run that did not finish: finish it with "
                    f"`reconciler apply --resume {path}`, or remove the file"
                )
        return cls(path, append=False)

    def _write(self, rec: dict[str, Any], *, sync: bool = False) -> None:
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            if self._cut:
                line = "\n" + line
                self._cut = False
            self._fh.write(line + "\n")
            self._fh.flush()
            self._dirty = True
            now = time.monotonic()
            wait = self.sync_interval - (now - self._synced_at)
            if sync or wait <= 0:
                self._sync_locked(now)
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._deferred_sync)
                self._timer.daemon = True
                self._timer.start()

    def _sync_locked(self, now: float) -> None:
        os.fsync(self._fh.fileno())
        self._synced_at = now
        self._dirty = False
        if self._new_file:  # the file's directory entry too, once: a power loss must not lose the file
            self._new_file = False
            safeio.fsync_dir(self.path.parent)

    def _deferred_sync(self) -> None:
        with self._lock:
            self._timer = None
            if self._dirty and not self._fh.closed:
                self._sync_locked(time.monotonic())

    def sync_now(self) -> None:
        """fsync what was written, without waiting for the lock: the run is being interrupted.
        Safe in a signal handler (which may run while this thread holds the lock); lines are
        already flushed to the operating system when written."""
        try:
            os.fsync(self._fh.fileno())
        except (OSError, ValueError):  # closed meanwhile: close() synced it
            pass

    def run(
        self,
        *,
        changes: list[Change],
        existing_in_scope: dict[str, int],
        resumed: bool,
        options: dict[str, Any],
        digest: dict[str, str],
        signer: Callable[[bytes], str] | None = None,
    ) -> None:
        """The run record; with ``signer``, signed (:func:`run_signature_matches`): ``apply --resume``
        takes its options and the changes it was allowed to make only from a record that matches."""
        rec = {
            "type": "run",
            "format_version": FORMAT_VERSION,
            "at": _now(),
            "pid": os.getpid(),
            "resumed": resumed,
            **options,
            "digest": digest,
            "existing_in_scope": existing_in_scope,
            "changes": [c.as_record() for c in changes],
        }
        if signer is not None:
            rec["signature"] = signer(_run_signed_content(rec))
        self._write(rec, sync=True)

    def intent(self, change: Change) -> None:
        self._write(
            {"type": "intent", "at": _now(), "address": change.address, "action": change.action.value, "calls": change.calls}
        )

    def outcome(self, o: Outcome) -> None:
        self._write({**outcome_record(o), "at": _now()})

    def end(self, *, status: str, exit_code: int, counts: dict[str, int]) -> None:
        self._write({"type": "end", "at": _now(), "status": status, "exit_code": exit_code, "counts": counts}, sync=True)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._fh.closed:
                if self._dirty:
                    self._sync_locked(time.monotonic())
                self._fh.close()


def _ends_cut(path: Path) -> bool:
    """Whether the file's last line has no line end (was cut short)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False

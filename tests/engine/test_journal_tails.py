"""Journals survive their own tails: a power cut in the middle of a line leaves a cut last line,
which ``--resume`` ignores with a note and never writes onto; a 0-byte or header-only journal
resumes as "nothing was applied" (docs/resilient-apply.md, "Finishing an interrupted or crashed run")."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from reconciler.engine.journal import read_journal
from tests.engine.conftest import Workspace, accounts_file

NAMES = [f"game{i:02d}" for i in range(6)]


def records(path: Path) -> list[dict]:
    """Every line of the journal that parses (a cut line does not)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def delete_out_of_band(ws: Workspace, names: list[str]) -> None:
    if names:
        ws.api("/gateway/whitelist-account/delete", accounts=",".join(names))


@pytest.mark.parametrize("seed", range(12))
def test_a_power_cut_in_the_middle_of_a_line_is_ignored_and_resume_writes_on_a_new_line(bp: Workspace, seed: int) -> None:
    rng = random.Random(seed)
    accounts_file(bp, NAMES, remark="t")
    first = bp.cli("apply", "--auto-approve", "--journal", "run.jsonl")
    assert first.exit_code == 0, first.stdout + first.stderr
    path = bp.root / "run.jsonl"
    raw = path.read_bytes()
    lines = raw.split(b"\n")[:-1]
    # the power cut: the file ends inside line k (the end record is never among what is kept)
    k = rng.randrange(len(lines) - 1)
    cut = rng.randrange(1, len(lines[k]))
    path.write_bytes(b"\n".join(lines[:k] + [lines[k][:cut]]))
    kept = [json.loads(line) for line in lines[:k]]
    done = {r["address"].split("/", 1)[1] for r in kept if r["type"] == "outcome" and r["status"] == "applied"}
    # what the cut lost never happened: those accounts are not there
    delete_out_of_band(bp, [n for n in NAMES if n not in done])

    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "was cut short" in res.stderr
    if k == 0:  # the run record itself was cut: that run sent no write
        assert "nothing was applied" in res.stderr
    assert sorted(bp.accounts()) == NAMES
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0

    text = path.read_text(encoding="utf-8").split("\n")
    assert text[-1] == ""  # every record ends its line
    if k:
        assert text[k] == lines[k][:cut].decode()  # the cut line is left as it was, alone on its line
    state = read_journal(path)
    assert state.ended is not None and state.ended["exit_code"] == 0
    runs = [r for r in records(path) if r["type"] == "run"]
    # the resumed run's own records were all kept: its run record, an outcome per account it
    # created, its end
    assert len(runs) == (2 if k else 1)
    resumed_outcomes = {r["address"] for r in records(path)[len(kept) :] if r["type"] == "outcome"}
    assert resumed_outcomes == {f"ProxyAccount/{n}" for n in NAMES if n not in done}
    if k:
        assert runs[-1]["resumed"] is True
        assert [n for n in state.notes if "cut short" in n]


@pytest.mark.parametrize("content", ["", '{"type":"run","format_version":1,"at":"2026-'])
def test_an_empty_or_header_cut_journal_resumes_as_nothing_applied(bp: Workspace, content: str) -> None:
    accounts_file(bp, NAMES[:3])
    (bp.root / "run.jsonl").write_text(content, encoding="utf-8")
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "nothing was applied" in res.stderr and "not an apply journal" not in res.stderr
    assert sorted(bp.accounts()) == NAMES[:3]
    recs = records(bp.root / "run.jsonl")
    assert [r["type"] for r in recs][0] == "run" and recs[-1]["type"] == "end" and recs[-1]["exit_code"] == 0
    # nothing left: resuming again says so
    again = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert again.exit_code == 0 and "Nothing left to do" in again.stdout


def test_a_journal_with_only_its_run_record_resumes_the_whole_plan(bp: Workspace) -> None:
    accounts_file(bp, NAMES[:3])
    first = bp.cli("apply", "--auto-approve", "--journal", "run.jsonl")
    assert first.exit_code == 0
    path = bp.root / "run.jsonl"
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    delete_out_of_band(bp, NAMES[:3])  # killed after the run record, before the first write
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert sorted(bp.accounts()) == NAMES[:3]
    assert [r.get("resumed") for r in records(path) if r["type"] == "run"] == [False, True]


def test_a_journal_of_other_records_only_is_still_refused(bp: Workspace) -> None:
    accounts_file(bp, NAMES[:1])
    (bp.root / "run.jsonl").write_text('{"type":"outcome","address":"ProxyAccount/x"}\n', encoding="utf-8")
    res = bp.cli("apply", "--resume", "run.jsonl", "--auto-approve")
    assert res.exit_code == 1 and "not an apply journal" in res.stderr
    assert bp.accounts() == {}

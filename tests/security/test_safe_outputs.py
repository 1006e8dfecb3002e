"""Safe outputs (issue #21 item 1), attacked through the real CLI.

A pull request commits symlinks in its checkout: ``plan.json`` pointing at a script the CI job is
running, a folder pointing outside the workspace, files of the sandbox state folder. Every file the
CLI writes must land as a new regular file renamed over the name (a symlink there is replaced, its
target byte for byte untouched), and a symlinked folder on the way is refused with one line, exit 1.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.security.conftest import AGENT, TCAPLUS_PROTOS, Emulators, Repo, Run, account, config_text

VICTIM = b"#!/bin/sh\n# the job's own script: overwritten, a remark in the plan would run\necho building\n"


@pytest.fixture
def outputs_repo(repo: Repo, emulators: Emulators) -> Repo:
    repo.write("tables/game_players.proto", (TCAPLUS_PROTOS / "game_players.proto").read_text(encoding="utf-8"))
    repo.write("reconciler.yaml", config_text(emulators))
    repo.write("manifests/a.yaml", account())
    return repo


def _victim(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(VICTIM)
    path.chmod(0o755)
    return path


def _link(outputs_repo: Repo, rel: str, target: Path) -> Path:
    link = outputs_repo.root / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


def _regular(path: Path) -> None:
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1, f"{path} is not a regular file"


def _refused(r: Run, pattern: str) -> None:
    assert r.code == 1, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(pattern, lines[0]), r.stderr
    assert "Traceback" not in r.output


@pytest.fixture(params=["outside", "inside"])
def victim(request: pytest.FixtureRequest, outputs_repo: Repo) -> Path:
    """The script a symlink points at: outside the checkout (the installed console script) or a
    file of the checkout itself (the composite action's ``scripts/github-action.sh``)."""
    if request.param == "outside":
        return _victim(outputs_repo.root.parent / "bin" / "reconciler")
    return _victim(outputs_repo.root / "scripts" / "github-action.sh")


# -- plan --out ------------------------------------------------------------------------------------
def test_plan_out_replaces_a_symlink_and_leaves_its_target_alone(outputs_repo: Repo, victim: Path) -> None:
    link = _link(outputs_repo, "plan.json", victim)
    r = outputs_repo.run("plan", "--out", "plan.json")
    assert r.code == 0, r.output
    assert victim.read_bytes() == VICTIM
    _regular(link)
    assert json.loads(link.read_text(encoding="utf-8"))["format_version"]
    assert [p.name for p in link.parent.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind


def test_plan_out_with_the_sandbox_replaces_a_symlink(repo: Repo) -> None:
    """The command the issue names: ``reconciler plan --sandbox --out plan.json``, in a subprocess."""
    victim = _victim(repo.root.parent / "bin" / "reconciler")
    repo.write("manifests/a.yaml", account())
    link = _link(repo, "plan.json", victim)
    r = repo.run_process("plan", "--sandbox", "--out", "plan.json")
    assert r.code == 0, r.output
    assert victim.read_bytes() == VICTIM
    _regular(link)
    assert json.loads(link.read_text(encoding="utf-8"))["sandbox"] is True


def test_plan_out_through_a_symlinked_folder_is_refused_before_any_work(outputs_repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(outputs_repo, "out", elsewhere)
    r = outputs_repo.run("plan", "--out", "out/plan.json")
    _refused(r, r"^error: out/plan\.json: cannot write: out is a symlink; files are never written through a symlink")
    assert list(elsewhere.iterdir()) == []


def test_plan_out_through_a_symlinked_folder_deeper_in_an_absolute_path_is_refused(outputs_repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    _link(outputs_repo, "reports", elsewhere)
    target = outputs_repo.root / "reports" / "sub" / "plan.json"
    r = outputs_repo.run("plan", "--out", str(target))
    _refused(r, rf"cannot write: {re.escape(str(outputs_repo.root / 'reports'))} is a symlink")
    assert list((elsewhere / "sub").iterdir()) == []


def test_plan_out_dot_dot_after_a_symlink_is_refused(outputs_repo: Repo, tmp_path: Path) -> None:
    """``link/../plan.json``: the operating system would resolve ``..`` from the link's target."""
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    _link(outputs_repo, "link", tmp_path / "elsewhere" / "deep")
    r = outputs_repo.run("plan", "--out", "link/../plan.json")
    _refused(r, r"cannot write: link is a symlink")
    assert not (tmp_path / "elsewhere" / "plan.json").exists()


# -- apply --journal / --resume -----------------------------------------------------------------------
def test_apply_journal_replaces_a_symlink_and_leaves_its_target_alone(outputs_repo: Repo, victim: Path) -> None:
    link = _link(outputs_repo, "run.jsonl", victim)
    r = outputs_repo.run("apply", "--auto-approve", "--journal", "run.jsonl")
    assert r.code == 0, r.output
    assert victim.read_bytes() == VICTIM
    _regular(link)
    records = [json.loads(line) for line in link.read_text(encoding="utf-8").splitlines()]
    assert records[0]["type"] == "run" and records[-1]["type"] == "end"


def test_apply_saved_plan_journal_replaces_a_symlink(outputs_repo: Repo, victim: Path) -> None:
    assert outputs_repo.run("plan", "--out", "plan.json").code == 0
    link = _link(outputs_repo, "run.jsonl", victim)
    r = outputs_repo.run("apply", "--auto-approve", "--journal", "run.jsonl", "plan.json")
    assert r.code == 0, r.output
    assert victim.read_bytes() == VICTIM
    _regular(link)


def test_apply_journal_in_a_symlinked_folder_is_refused(outputs_repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(outputs_repo, "logs", elsewhere)
    r = outputs_repo.run("apply", "--auto-approve", "--journal", "logs/run.jsonl")
    assert r.code == 1, r.output
    assert re.search(r"^error: logs/run\.jsonl: cannot write: logs is a symlink", r.stderr, re.M), r.stderr
    assert "Traceback" not in r.output
    assert list(elsewhere.iterdir()) == []


def test_apply_resume_never_appends_through_a_symlink(outputs_repo: Repo, tmp_path: Path) -> None:
    # an interrupted run's journal, kept outside; the checkout commits a symlink to it
    real = tmp_path / "elsewhere" / "run.jsonl"
    real.parent.mkdir()
    real.write_text(
        json.dumps({"type": "run", "format_version": 1, "paths": ["manifests"], "changes": [], "digest": {}}) + "\n",
        encoding="utf-8",
    )
    before = real.read_bytes()
    _link(outputs_repo, "run.jsonl", real)
    r = outputs_repo.run("apply", "--auto-approve", "--resume", "run.jsonl")
    _refused(r, r"^error: run\.jsonl: cannot read the journal \(is a symlink")
    assert real.read_bytes() == before


def test_apply_resume_refuses_a_journal_with_a_second_hard_link(outputs_repo: Repo, tmp_path: Path) -> None:
    assert outputs_repo.run("apply", "--auto-approve", "--journal", "run.jsonl").code == 0
    other = tmp_path / "hardlink.jsonl"
    os.link(outputs_repo.root / "run.jsonl", other)
    r = outputs_repo.run("apply", "--auto-approve", "--resume", "run.jsonl")
    _refused(r, r"run\.jsonl: cannot read the journal \(not a regular file with one link\)")


# -- export manifests / transactions ------------------------------------------------------------------
def test_export_manifests_into_a_symlinked_folder_is_refused(outputs_repo: Repo, tmp_path: Path) -> None:
    assert outputs_repo.run("apply", "--auto-approve").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(outputs_repo, "dr", elsewhere)
    r = outputs_repo.run("export", "manifests", "--out", "dr/export")
    _refused(r, r"^error: dr/export: cannot write: dr is a symlink")
    assert list(elsewhere.iterdir()) == []


def test_export_manifests_secrets_dir_through_a_symlink_is_refused(outputs_repo: Repo, tmp_path: Path) -> None:
    assert outputs_repo.run("apply", "--auto-approve").code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(outputs_repo, "sec", elsewhere)
    r = outputs_repo.run("export", "manifests", "--out", "export", "--secrets-dir", "sec/new")
    _refused(r, r"^error: sec/new: cannot write: sec is a symlink")
    assert list(elsewhere.iterdir()) == []
    assert not (outputs_repo.root / "export").exists()


def test_export_manifests_writes_regular_files_and_private_secrets(outputs_repo: Repo) -> None:
    assert outputs_repo.run("apply", "--auto-approve").code == 0
    r = outputs_repo.run("export", "manifests", "--out", "export/live", "--secrets-dir", "live-secrets")
    assert r.code == 0, r.output
    files = [p for p in (outputs_repo.root / "export").rglob("*") if not p.is_dir()]
    assert files
    for p in files:
        _regular(p)
    secrets = list((outputs_repo.root / "live-secrets").iterdir())
    assert secrets and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    assert stat.S_IMODE((outputs_repo.root / "live-secrets").stat().st_mode) == 0o700


def test_export_transactions_replaces_a_symlink(outputs_repo: Repo, victim: Path) -> None:
    link = _link(outputs_repo, "tx.jsonl", victim)
    start = (datetime.now(timezone.utc) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    r = outputs_repo.run("export", "transactions", "--agent", AGENT, "--from", start.isoformat(), "--out", "tx.jsonl")
    assert r.code == 0, r.output
    assert victim.read_bytes() == VICTIM
    _regular(link)


# -- the sandbox: serve --config-out and the state folder ----------------------------------------------
def _serve(repo: Repo, *args: str) -> tuple[int, str]:
    """``reconciler sandbox serve`` until it says it serves (or exits); stopped with SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "sandbox", "serve", *args],
        cwd=repo.root,
        env=repo.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = []
    try:
        assert proc.stdout is not None
        for _ in range(50):  # bounded: a handful of lines before "Serving"
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("Serving"):
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, "".join(out)


def test_sandbox_serve_config_out_replaces_a_symlink(repo: Repo) -> None:
    victim = _victim(repo.root / "scripts" / "github-action.sh")
    link = _link(repo, "reconciler.yaml", victim)
    code, out = _serve(repo, "--config", "none.yaml", "--config-out", "reconciler.yaml")
    assert "wrote reconciler.yaml" in out, out
    assert victim.read_bytes() == VICTIM
    _regular(link)
    assert "providers:" in link.read_text(encoding="utf-8")


def test_sandbox_state_folder_through_a_symlink_is_refused(repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(repo, ".reconciler", elsewhere)
    repo.write("manifests/a.yaml", account())
    r = repo.run_process("plan", "--sandbox")
    _refused(r, r"^error: .*\.reconciler/sandbox: cannot write: .*\.reconciler is a symlink")
    assert list(elsewhere.iterdir()) == []


def test_sandbox_serve_state_through_a_symlink_is_refused(repo: Repo, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _link(repo, "state", elsewhere)
    code, out = _serve(repo, "--config", "none.yaml", "--state", "state/sbx")
    assert code == 1 and re.search(r"^error: .*state/sbx: cannot write: .*state is a symlink", out, re.M), out
    assert "Traceback" not in out
    assert list(elsewhere.iterdir()) == []


def test_sandbox_database_symlink_is_refused(repo: Repo) -> None:
    victim = _victim(repo.root / "scripts" / "github-action.sh")
    _link(repo, ".reconciler/sandbox/bestproxy.sqlite-wal", victim)
    repo.write("manifests/a.yaml", account())
    r = repo.run_process("plan", "--sandbox")
    _refused(r, r"bestproxy\.sqlite-wal: cannot write: is a symlink")
    assert victim.read_bytes() == VICTIM


def test_sandbox_credential_symlink_is_replaced_never_read_or_written_through(repo: Repo) -> None:
    outside = repo.root.parent / "outside.txt"
    before = outside.read_bytes()
    victim = _victim(repo.root / "scripts" / "github-action.sh")
    _link(repo, ".reconciler/sandbox/credentials/jdb_key", outside)  # read: a file outside the workspace
    _link(repo, ".reconciler/sandbox/credentials/jdb_iv", victim)  # written: the job's script
    os.symlink(repo.root.parent / "missing", repo.root / ".reconciler/sandbox/credentials/tcaplus_password")
    repo.write("manifests/a.yaml", account())
    r = repo.run_process("plan", "--sandbox")
    assert r.code == 0, r.output
    assert outside.read_bytes() == before and victim.read_bytes() == VICTIM
    assert not (repo.root.parent / "missing").exists()
    creds = repo.root / ".reconciler" / "sandbox" / "credentials"
    for name in ("jdb_key", "jdb_iv", "tcaplus_password"):
        _regular(creds / name)
        assert stat.S_IMODE((creds / name).stat().st_mode) == 0o600
    repo.assert_no_secret(r)

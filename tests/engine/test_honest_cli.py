"""Issue 23 item 7 against the BestProxy emulator: a slow API is named while it is waited for,
a live Markdown apply is Markdown, the resume hint works as printed in CI, options a command
does not use are errors, and an explicit --config that names no file is never silent."""

from __future__ import annotations

import json
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.engine.conftest import Workspace, account_doc, accounts_file
from tests.engine.test_resilience import EXE, faults, journal, start, wait_for_calls


# -- a slow API says what is being waited for ----------------------------------------------------
def _lines(stream: object) -> "queue.Queue[str]":
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_line(proc: subprocess.Popen[str], deadline: float = 40) -> str:
    """The first "waiting for" line on stderr, read while the process runs (bounded)."""
    q = _lines(proc.stderr)
    end = time.monotonic() + deadline
    seen = []
    while time.monotonic() < end:
        try:
            line = q.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith("waiting for "):
            return line
    raise AssertionError(f"no 'waiting for' line within {deadline} s: {seen}")


def test_a_plan_against_an_api_that_never_answers_says_what_it_waits_for(bp: Workspace) -> None:
    accounts_file(bp, ["game01"])
    faults(bp, latency_ms=600_000)  # answers held back for 10 minutes: the client's timeout is longer than the test
    proc = start(bp, "plan")
    try:
        line = _wait_line(proc)
        assert proc.poll() is None  # the line came while the request was still unanswered
        port = bp.url.rsplit(":", 1)[1]
        assert line.startswith(f"waiting for bestproxy/default at 127.0.0.1:{port}: reading ")
        assert "live state" in line and "s so far, not finished)" in line
    finally:
        proc.kill()
        proc.communicate(timeout=30)
        faults(bp, latency_ms=0)


def test_an_apply_whose_write_is_never_answered_says_what_it_waits_for(bp: Workspace, monkeypatch) -> None:
    """The reads answer at once; the write (an account ``add``) is held until the test ends: the
    line names the write being waited for."""
    accounts_file(bp, ["game01"])
    gate = threading.Event()
    handle = bp.emulator.handle

    def held(req):  # type: ignore[no-untyped-def]
        if bp.emulator.is_write(req):
            gate.wait(120)  # bounded: released below as soon as the line was seen
        return handle(req)

    monkeypatch.setattr(bp.emulator, "handle", held)
    proc = start(bp, "apply", "--auto-approve")
    try:
        line = _wait_line(proc)
        assert proc.poll() is None
        port = bp.url.rsplit(":", 1)[1]
        assert line.startswith(f"waiting for bestproxy/default at 127.0.0.1:{port}: applying 1 ProxyAccount change(s) ")
    finally:
        proc.kill()
        gate.set()
        proc.communicate(timeout=30)


# -- apply --format markdown -----------------------------------------------------------------
def test_a_live_apply_in_markdown_prints_markdown(bp: Workspace) -> None:
    accounts_file(bp, ["game01", "game02"])
    r = bp.cli("apply", "--auto-approve", "--format", "markdown")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.startswith("### reconciler plan")
    assert "### reconciler apply" in r.stdout and "| result | change | message |" in r.stdout
    assert "| applied | create <code>ProxyAccount/game01</code> |" in r.stdout
    assert not re.search(r"^ok +create", r.stdout, re.M)  # no text outcome lines in the Markdown
    assert "Apply: 2 applied, 0 failed, 0 stale, 0 skipped." in r.stdout


# -- the resume hint works as printed in CI --------------------------------------------------
def test_the_resume_hint_works_as_printed_without_a_terminal(bp: Workspace) -> None:
    names = [f"game{i:02d}" for i in range(16)]
    accounts_file(bp, names[:4])
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    bp.write(
        "manifests/accounts.yaml",
        "---\n".join(account_doc(n, remark="new" if i < 4 else "", trafficLimitGb=2) for i, n in enumerate(names)),
    )
    faults(bp, latency_ms=200)
    proc = start(bp, "apply", "--auto-approve", "--force", "--journal", "run.jsonl")
    wait_for_calls(bp, "POST /gateway/proxy-account/change", 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    faults(bp, latency_ms=0)
    m = re.search(r"finish with: (.+)$", err, re.M)
    assert m, err
    args = shlex.split(m.group(1))
    assert args[:3] == ["reconciler", "apply", "--resume"] and "--auto-approve" in args
    # as CI runs it: no terminal on stdin, the command exactly as printed
    done = subprocess.run([EXE, *args[1:]], cwd=bp.root, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.get("resumed") for r in journal(bp.root / "run.jsonl") if r["type"] == "run"] == [False, True]
    assert bp.cli("plan", "--detailed-exitcode").exit_code == 0


# -- options a command does not use ----------------------------------------------------------
def test_show_and_schema_refuse_a_target(bp: Workspace) -> None:
    accounts_file(bp, ["game01"])
    assert bp.cli("plan", "--out", "plan.json").exit_code == 0
    for args in (
        ["show", "plan.json", "--target", "Nope/x"],
        ["--target", "ProxyAccount/game01", "show", "plan.json"],
        ["schema", "--target", "Nope/x"],
        ["schema", "plan", "--target", "ProxyAccount/game01"],
        ["sandbox", "serve", "--target", "Nope/x"],
        ["export", "transactions", "--target", "Nope/x", "--agent", "a", "--from", "2025-01-01T00:00:00Z", "--out", "t.jsonl"],
    ):
        r = bp.cli(*args)
        assert r.exit_code == 1, (args, r.stdout + r.stderr)
        assert "takes no --target" in r.stderr and r.stdout == ""
    assert bp.cli("show", "plan.json").exit_code == 0  # positive controls
    assert json.loads(bp.cli("schema", "plan").stdout)["title"] == "PlanFile"


# -- --sandbox with a --config that names no file -----------------------------------------------
def test_sandbox_with_a_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "manifests" / "secrets").mkdir(parents=True)
    (tmp_path / "manifests" / "secrets" / "pw").write_text("SandboxPw123")
    (tmp_path / "manifests" / "a.yaml").write_text(account_doc("game01"))
    for args in (
        ["plan", "--sandbox", "--config", "nosuch.yaml"],
        ["--config", "nosuch.yaml", "--sandbox", "apply"],
        ["validate", "--sandbox", "--config", "nosuch.yaml"],
    ):
        done = subprocess.run([EXE, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, (args, done.stdout + done.stderr)
        assert "error: --config nosuch.yaml: no such file" in done.stderr, done.stderr
    assert not (tmp_path / ".reconciler").exists()  # no sandbox was set up on a default config
    # without --config the sandbox runs on its own defaults (the quickstart)
    done = subprocess.run([EXE, "plan", "--sandbox"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "+ create ProxyAccount/game01" in done.stdout, done.stdout + done.stderr


# -- write-only fields are listed as not compared ------------------------------------------------
def test_a_write_only_field_changed_out_of_band_is_not_reported_as_no_drift(bp: Workspace) -> None:
    bp.write("manifests/a.yaml", account_doc("static01", product_type=14, dailyLimitGb=5, udp=True))
    assert bp.cli("apply", "--auto-approve").exit_code == 0
    bp.api("/gateway/proxy-account/change", account="static01", udp=0, daily_limit=50)  # by hand
    drift = bp.cli("plan", "--drift")
    assert drift.exit_code == 5, drift.stdout + drift.stderr
    assert "! ProxyAccount: dailyLimitGb not compared (1 resource(s)): the account list does not return it" in drift.stdout
    assert "! ProxyAccount: udp not compared (1 resource(s))" in drift.stdout
    assert "Drift: none." not in drift.stderr and "matches" not in drift.stdout
    # an account declaring neither is compared in full
    bp.write("manifests/a.yaml", account_doc("static01", product_type=14))
    plan = bp.cli("plan", "--drift")
    assert plan.exit_code == 0 and "Drift: none." in plan.stderr, plan.stdout + plan.stderr

"""Plans for people (issue #12): counts first, changes grouped by vendor, kind and document, notes
shared by many changes folded once, a detail level, colour only on a terminal (checked through a
pseudo-terminal), ``show`` for a saved plan, and progress on long plans — each with 2 and with
2,000 objects."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.engine.planfile import plan_to_dict, write_plan
from reconciler.engine.render import render_text
from reconciler.model import Action, Change, FieldDiff, Plan
from tests.support import CliWorkspace
from tests.tcaplus.conftest import Workspace as TcaplusWorkspace
from tests.tcaplus.test_records_cli import write_seed

EXE = str(Path(sys.executable).with_name("reconciler"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY = re.compile(r"^Plan: \d+ to create, \d+ to update, \d+ to replace, \d+ to delete, \d+ unchanged, \d+ unmanaged\.$", re.M)
NOTE = "declared mode: undeclared fields of the live record are kept"


def big_plan(n: int) -> Plan:
    """``n`` TcaplusDB updates sharing one note, over two documents, plus two account creates."""
    changes = [
        Change(
            kind="TcaplusRecords",
            vendor="tcaplus",
            key=f"items|{i}",
            action=Action.UPDATE,
            resource=f"TcaplusRecords/items-{i % 2}",
            source=f"manifests/items-{i % 2}.yaml:1",
            diffs=[FieldDiff("price", i, i + 1)] + [FieldDiff(f"f{j}", 0, 1) for j in range(30 if i == 0 else 0)],
            notes=[NOTE] + (["only this one"] if i == 0 else []),
        )
        for i in range(n)
    ]
    changes += [
        Change(
            kind="ProxyAccount",
            vendor="bestproxy",
            key=f"acct{i}",
            action=Action.CREATE,
            resource=f"ProxyAccount/acct{i}",
            source="manifests/a.yaml:1",
            diffs=[FieldDiff("remark", None, "r")],
        )
        for i in range(2)
    ]
    plan = Plan(changes=changes, noops={"TcaplusRecords": 5})
    plan.sort()
    return plan


def text(plan: Plan, **kw: object) -> str:
    out = io.StringIO()
    render_text(plan, out, **kw)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("n", [2, 2000])
def test_counts_first_grouped_and_shared_notes_folded(n: int) -> None:
    out = text(big_plan(n))
    lines = out.splitlines()
    # the first screen (24 lines) holds the counts and the table by vendor and kind
    first = "\n".join(lines[:24])
    assert lines[0] == f"Summary: 2 to create, {n} to update, 0 to replace, 0 to delete, 5 unchanged, 0 unmanaged."
    assert re.search(rf"tcaplus\s+TcaplusRecords\s+0\s+{n}\s+0\s+0\s+5\s+0", first), first
    assert re.search(r"bestproxy\s+ProxyAccount\s+2\s+0\s+0\s+0\s+0\s+0", first), first
    # the grep-able summary line: once, last
    assert SUMMARY.findall(out) == [lines[-1]]
    # grouped: vendor/kind header, then per document
    assert lines.index("== bestproxy / ProxyAccount  (2 create)") < lines.index(f"== tcaplus / TcaplusRecords  ({n} update)")
    assert "# TcaplusRecords/items-0  (manifests/items-0.yaml:1)" in lines
    assert "~ update TcaplusRecords/items|0  (TcaplusRecords/items-0)" in lines
    assert ("~ update TcaplusRecords/items|1  (TcaplusRecords/items-1)" in lines) == (n <= 20)  # the first 20 of a kind
    # the shared note once, with its count; a note of one change stays with it
    assert out.count(NOTE) == 1 and f"note ({n:,} changes): {NOTE}" in out
    assert out.count("note: only this one") == 1
    # normal detail cuts long diffs; full shows them
    assert "... and 11 more field(s)" in out
    assert "f29: 0 -> 1" in text(big_plan(n), detail="full")
    # bounded: about two lines per change
    assert len(lines) < 3 * (n + 2) + 40


def test_summary_detail_lists_no_change_and_no_colour_unless_asked() -> None:
    out = text(big_plan(2000), detail="summary")
    assert len(out.splitlines()) < 15, out
    assert "2002 change(s) not listed" in out
    assert not ANSI.search(out)
    coloured = text(big_plan(2), color=True)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == text(big_plan(2))


def _saved(tmp_path: Path, n: int) -> Path:
    plan = big_plan(n)
    data = plan_to_dict(
        plan,
        created_at="2026-01-01T00:00:00+00:00",
        paths=["manifests"],
        config_path="reconciler.yaml",
        sandbox=True,
        targets=[],
        digest={"manifests": "sha256:x", "config": "sha256:y"},
    )
    path = tmp_path / "plan.json"
    write_plan(data, path)
    return path


def _run_on_pty(
    args: list[str], cwd: Path, env: dict[str, str], *, stdout_on_pty: bool = True, rows: int = 24
) -> tuple[int, str, str]:
    """Run the installed command with stdout (or only stderr) on a pseudo-terminal."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 120, 0, 0))
    proc = subprocess.Popen(
        [EXE, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave if stdout_on_pty else subprocess.PIPE,
        stderr=subprocess.PIPE if stdout_on_pty else slave,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    other = (proc.stderr if stdout_on_pty else proc.stdout).read().decode()  # type: ignore[union-attr]
    code = proc.wait(timeout=60)
    os.close(master)
    return code, b"".join(chunks).decode(errors="replace"), other


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def test_show_on_a_terminal_has_colour_and_the_summary_on_the_first_screen(tmp_path: Path) -> None:
    path = _saved(tmp_path, 2000)
    code, screen, err = _run_on_pty(["show", str(path)], tmp_path, _env())
    assert code == 0, err
    assert ANSI.search(screen), "colour on a terminal"
    first = ANSI.sub("", screen).replace("\r\n", "\n").splitlines()[:24]
    assert first[0].startswith("Summary: 2 to create, 2000 to update"), first
    assert any(re.search(r"tcaplus\s+TcaplusRecords\s+0\s+2000", line) for line in first), first
    # NO_COLOR or --no-color: none
    for env, args in (
        (_env(NO_COLOR="1"), ["show", str(path)]),
        (_env(), ["show", str(path), "--no-color"]),
        (_env(), ["--no-color", "show", str(path)]),
    ):
        code, screen, err = _run_on_pty(args, tmp_path, env)
        assert code == 0, err
        assert not ANSI.search(screen), args
        assert "Summary: 2 to create" in screen
    # a pipe: none
    r = subprocess.run([EXE, "show", str(path)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not ANSI.search(r.stdout)


@pytest.mark.parametrize("n", [2, 2000])
def test_show_renders_a_saved_plan_in_every_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    path = _saved(tmp_path, n)
    monkeypatch.chdir(tmp_path)
    w = CliWorkspace(tmp_path)
    t = w.cli("show", "plan.json")
    assert t.exit_code == 0, t.output
    assert t.stdout.splitlines()[0].startswith(f"Summary: 2 to create, {n} to update")
    assert "Apply it with: reconciler apply plan.json --sandbox" in t.stderr
    assert json.loads(w.cli("show", "plan.json", "--format", "json").stdout) == json.loads(path.read_text())
    md = w.cli("show", "plan.json", "--format", "markdown").stdout
    assert md.startswith("### reconciler plan") and SUMMARY.search(md) and len(md) < 65_000
    s = w.cli("show", "plan.json", "--detail", "summary")
    assert len(s.stdout.splitlines()) < 15
    bad = w.cli("show", "missing.json")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: missing.json: not a readable plan file")


# -- progress ------------------------------------------------------------------------------------
def test_progress_lines_when_stderr_is_not_a_terminal(tcaplus_ws: TcaplusWorkspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.cli.progress

    write_seed(tcaplus_ws, 200, 2)
    monkeypatch.setattr(reconciler.cli.progress, "PROGRESS_INTERVAL", 0.0)
    r = tcaplus_ws.cli("plan")
    assert r.exit_code == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("progress: ")]
    assert "progress: TcaplusDB tb_example: reading: 200/200" in lines
    assert len(lines) >= 200
    r = tcaplus_ws.cli("apply", "--auto-approve")
    assert "progress: TcaplusDB: writing: 202/202" in r.stderr
    # the default interval keeps a short run quiet
    monkeypatch.setattr(reconciler.cli.progress, "PROGRESS_INTERVAL", 5.0)
    assert [x for x in tcaplus_ws.cli("plan").stderr.splitlines() if x.startswith("progress")] == []


def test_a_progress_display_on_a_terminal(tcaplus_ws: TcaplusWorkspace) -> None:
    write_seed(tcaplus_ws, 300, 2)
    tcaplus_ws.emulator.set_faults({"latency_ms": 15.0})
    code, screen, out = _run_on_pty(["plan"], tcaplus_ws.root, _env(), stdout_on_pty=False)
    assert code == 0, screen
    assert "TcaplusDB tb_example: reading" in screen
    assert re.search(r"\d+/300", screen), screen
    assert "Plan: 302 to create" in out and "TcaplusDB tb_example: reading" not in out


def test_a_long_plan_into_head_ends_quietly_with_the_sigpipe_status(tmp_path: Path) -> None:
    # --detail full: ~170 KB of text, more than a pipe holds, so the pipe closes while show is writing
    # (the default detail is ~3 KB: it fits the pipe and show may finish before head exits: exit 0)
    path = _saved(tmp_path, 2000)
    r = subprocess.run(
        ["bash", "-c", f'{EXE} show {path} --detail full | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout.startswith("Summary: 2 to create, 2000 to update") and len(r.stdout.splitlines()) == 1
    assert r.stderr == "status=141\n", r.stderr


# -- output at scale: the first changes per kind, every delete, the rest counted ----------------
def deletes_and_updates(n: int) -> Plan:
    """``n`` updates in one document and ``n`` deletes, plus ``n`` creates, one document each."""
    changes = [
        Change(
            kind="TcaplusRecords",
            vendor="tcaplus",
            key=f"items|{i}",
            action=Action.UPDATE,
            resource="TcaplusRecords/items",
            source="manifests/items.yaml:1",
            diffs=[FieldDiff("price", i, i + 1)],
        )
        for i in range(n)
    ]
    changes += [
        Change(
            kind="TcaplusRecords",
            vendor="tcaplus",
            key=f"items|old{i}",
            action=Action.DELETE,
            resource="TcaplusRecords/items",
            source="manifests/items.yaml:1",
            diffs=[FieldDiff("price", i, None)],
        )
        for i in range(n)
    ]
    changes += [
        Change(
            kind="ProxyAccount",
            vendor="bestproxy",
            key=f"acct{i:05d}",
            action=Action.CREATE,
            resource=f"ProxyAccount/acct{i:05d}",
            source=f"manifests/a.yaml:{4 * i + 1}",
            diffs=[FieldDiff("remark", None, "r"), FieldDiff("enabled", None, True)],
        )
        for i in range(n)
    ]
    plan = Plan(changes=changes)
    plan.sort()
    return plan


@pytest.mark.parametrize("n", [2, 2000])
def test_a_kind_lists_its_first_changes_every_delete_and_counts_the_rest(n: int) -> None:
    from reconciler.engine.render import NORMAL_MAX_CHANGES

    out = text(deletes_and_updates(n))
    lines = out.splitlines()
    updates = [x for x in lines if x.startswith("~ update ")]
    deletes = [x for x in lines if x.startswith("- delete ")]
    creates = [x for x in lines if x.startswith("+ create ")]
    assert len(deletes) == n  # a delete is never hidden
    if n > NORMAL_MAX_CHANGES:
        assert len(creates) == NORMAL_MAX_CHANGES
        assert (
            f"... and {n - NORMAL_MAX_CHANGES:,} more ProxyAccount change(s) not listed "
            f"({n - NORMAL_MAX_CHANGES:,} create): --detail full lists them" in lines
        )
        assert len(updates) < NORMAL_MAX_CHANGES
        assert (
            f"... and {n - len(updates):,} more TcaplusRecords change(s) not listed ({n - len(updates):,} update): "
            "--detail full lists them" in lines
        )
        # bounded: the deletes (two lines each) and a few dozen lines per kind, not n per kind
        assert len(lines) < 2 * n + 8 * NORMAL_MAX_CHANGES + 40
        assert lines.count("# ProxyAccount/acct00000  (manifests/a.yaml:1)") == 1
        assert "# ProxyAccount/acct01999  (manifests/a.yaml:7997)" not in lines  # no header without a change
    else:
        assert len(updates) == n and len(creates) == n and "not listed" not in out
    full = text(deletes_and_updates(n), detail="full").splitlines()
    assert len([x for x in full if x.startswith("~ update ")]) == n
    assert len([x for x in full if x.startswith("+ create ")]) == n


@pytest.mark.parametrize("n", [2, 2000])
def test_apply_streams_every_outcome_but_counts_applied_ones_past_the_first_per_kind(
    tcaplus_ws: TcaplusWorkspace, n: int
) -> None:
    from reconciler.engine.render import NORMAL_MAX_CHANGES
    from tests.tcaplus.test_records_cli import example

    write_seed(tcaplus_ws, n, 2)  # n records in one document, 2 in another: one kind
    r = tcaplus_ws.cli("apply", "--auto-approve")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    listed = [x for x in lines if x.startswith("ok      create ")]
    assert len(listed) == min(n + 2, NORMAL_MAX_CHANGES)
    assert f"Apply: {n + 2} applied, 0 failed, 0 stale, 0 skipped." in lines
    counted = f"ok      {n + 2 - NORMAL_MAX_CHANGES:,} more: create TcaplusRecords (tcaplus), not listed (--detail full lists every outcome)"
    if n + 2 > NORMAL_MAX_CHANGES:
        assert counted in lines
        assert len(lines) < 300  # the plan's first 20 changes with their fields, 20 outcomes; was over 6,000 lines
    else:
        assert "more:" not in r.stdout
    # --detail full: every outcome, as it completes
    tcaplus_ws.write("manifests/data/examples.jsonl", "\n".join(json.dumps(example(i, logintime=6)) for i in range(n)) + "\n")
    r = tcaplus_ws.cli("--force", "apply", "--auto-approve", "--detail", "full")  # updating every record is a mass update
    assert r.exit_code == 0, r.stderr
    assert len([x for x in r.stdout.splitlines() if x.startswith("ok      update ")]) == n
    assert "more:" not in r.stdout


def test_a_change_as_a_dict_is_a_deep_copy_as_asdict_makes_it() -> None:
    # Change.to_dict is written by hand for speed (saving a plan of 100,000 changes): it must stay
    # what dataclasses.asdict gives, in the same key order, sharing nothing mutable with the change
    from dataclasses import asdict
    from decimal import Decimal

    from reconciler.model import Action, Change, FieldDiff

    c = Change(
        kind="K",
        vendor="v",
        key="k",
        action=Action.UPDATE,
        diffs=[FieldDiff("a", {"x": [1, (2, 3)]}, None, True)],
        precondition={"record_version": 3},
        calls=["GET"],
        notes=["n"],
        exposure={"stake": "1"},
        data={"record": {"a": [1, {"b": 2.5}], "t": (1, 2)}, "d": Decimal("1.5")},
    )
    want = asdict(c)
    want["action"] = "update"
    got = c.to_dict()
    assert got == want and list(got) == list(want)
    got["data"]["record"]["a"][1]["b"] = 0
    got["diffs"][0]["before"]["x"].append(9)
    got["precondition"]["record_version"] = 4
    assert (
        c.data["record"]["a"][1]["b"] == 2.5
        and c.diffs[0].before == {"x": [1, (2, 3)]}
        and c.precondition == {"record_version": 3}
    )


def test_a_plan_file_is_its_json_with_one_change_per_line() -> None:
    # written with the C JSON encoder (a plan of 100,000 changes): the same data, each change and
    # unmanaged object one line, values with line breaks escaped in them
    from reconciler.engine.planfile import plan_text

    data = {
        "format_version": 1,
        "changes": [{"key": f"a{i}", "data": {"note": "two\nlines", "v": [i, None]}} for i in range(3)],
        "unmanaged": [{"key": "u"}],
        "warnings": [],
        "connections": {"tcaplus": {"default": "x"}},
    }
    text = plan_text(data)
    assert json.loads(text) == data
    lines = text.splitlines()
    assert [x for x in lines if '"key": "a' in x] == [
        f"    {json.dumps(c)}" + ("," if i < 2 else "") for i, c in enumerate(data["changes"])
    ]
    assert '    {"key": "u"}' in lines and '  "warnings": [],' in lines

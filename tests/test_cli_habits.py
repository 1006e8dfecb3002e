"""CLI habits (issue #12): usage errors exit 1, a closed pipe ends quietly, files the CLI writes fail
with one clean line, global options before or after the subcommand, hints that work as printed,
``--target`` matching nothing is an error before any call, and an offline ``validate``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bestproxy.conftest import Workspace, account_doc
from tests.environments.support import Fleet, write_estate

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("reconciler"))


def _bare_env() -> dict[str, str]:
    """No vendor credential, no colour setting: only what a process needs to start."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


# -- usage errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["plan", "--bogus"],
        ["plan", "--format", "yaml"],
        ["nosuchcommand"],
        ["export", "transactions"],
        ["schema", "nosuch"],
    ],
)
def test_usage_errors_exit_1_never_2(bestproxy_ws: Workspace, args: list[str]) -> None:
    r = bestproxy_ws.cli(*args)
    assert r.exit_code == 1, (args, r.output)
    assert "Error:" in r.stderr and "Traceback" not in r.stderr


def test_the_installed_command_leaves_with_its_output_whole(tmp_path: Path) -> None:
    """``main`` ends the process without tearing the interpreter down (os._exit): what is still in
    the stdout buffer (the end of an 18 KB document here) is flushed first."""
    import json

    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = subprocess.run([EXE, "schema", "manifest"], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=buffered)
    assert r.returncode == 0 and r.stderr == ""
    assert len(r.stdout) > 16_384 and json.loads(r.stdout)["$schema"]
    target = tmp_path / "schema.json"
    with open(target, "w") as fh:
        assert subprocess.run([EXE, "schema", "manifest"], cwd=tmp_path, stdout=fh, timeout=60, env=buffered).returncode == 0
    assert target.read_text() == r.stdout


@pytest.mark.parametrize("code,status,err", [("3", 3, ""), ("None", 0, ""), ("'bad thing'", 1, "bad thing\n")])
def test_leaving_flushes_what_is_buffered_and_keeps_the_status(code: str, status: int, err: str) -> None:
    script = (
        "import sys; from reconciler.cli import _leave; [sys.stdout.write('x' * 10) for _ in range(2000)]; "
        f"sys.stderr.write(''); _leave({code})"
    )
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=buffered)
    assert (r.returncode, r.stdout, r.stderr) == (status, "x" * 20000, err)


def test_usage_error_exits_1_from_the_installed_command(tmp_path: Path) -> None:
    r = subprocess.run([EXE, "plan", "--no-such-flag"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr


# -- global options ------------------------------------------------------------------------------
def test_global_options_are_accepted_before_or_after_the_subcommand(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    shutil.move(bestproxy_ws.root / "reconciler.yaml", bestproxy_ws.root / "other.yaml")
    before = bestproxy_ws.cli("--config", "other.yaml", "--no-color", "validate")
    after = bestproxy_ws.cli("validate", "--config", "other.yaml", "--no-color")
    assert before.exit_code == after.exit_code == 0, before.output + after.output
    assert before.stdout == after.stdout
    # --debug after the subcommand shows the traceback of an error, like before it
    for args in (["--debug", "validate"], ["validate", "--debug"]):
        r = bestproxy_ws.cli(*args, "--config", "missing.yaml")
        assert r.exit_code == 1
        assert "Traceback" in r.stderr and "error: missing.yaml:1:1" in r.stderr
    r = bestproxy_ws.cli("validate", "--config", "missing.yaml")
    assert "Traceback" not in r.stderr
    # --target given on both sides adds up
    bestproxy_ws.write("manifests/b.yaml", account_doc("game02"))
    r = bestproxy_ws.cli("--config", "other.yaml", "--target", "ProxyAccount/game01", "plan", "--target", "ProxyAccount/game02")
    assert r.exit_code == 0, r.output
    assert "ProxyAccount/game01" in r.stdout and "ProxyAccount/game02" in r.stdout


# -- --target ------------------------------------------------------------------------------------
def test_target_of_an_unknown_kind_or_undeclared_name_fails_before_any_call(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    r = bestproxy_ws.cli("plan", "--target", "ProxyAcount/game01")
    assert r.exit_code == 1 and "unknown kind" in r.stderr
    r = bestproxy_ws.cli("plan", "--target", "IpAllowlist/14")
    assert r.exit_code == 1 and "matches no manifest document" in r.stderr
    assert bestproxy_ws.stats() == {}


# -- files the CLI writes ------------------------------------------------------------------------
def test_unwritable_outputs_fail_with_one_clean_line_before_any_call(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    r = bestproxy_ws.cli("plan", "--out", "missing/plan.json")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == ["error: missing/plan.json: cannot write: folder missing does not exist"]
    (bestproxy_ws.root / "adir").mkdir()
    r = bestproxy_ws.cli("plan", "--out", "adir")
    assert r.exit_code == 1 and r.stderr.splitlines() == ["error: adir: is a folder, expected a file to write"]
    r = bestproxy_ws.cli(
        "export", "transactions", "--agent", "a", "--from", "2026-01-01T00:00:00+00:00", "--out", "missing/tx.jsonl"
    )
    assert r.exit_code == 1 and r.stderr.splitlines() == ["error: missing/tx.jsonl: cannot write: folder missing does not exist"]
    r = bestproxy_ws.cli("sandbox", "serve", "--config-out", "missing/r.yaml")
    assert r.exit_code == 1 and r.stderr.splitlines() == ["error: missing/r.yaml: cannot write: folder missing does not exist"]
    assert bestproxy_ws.stats() == {}


def test_an_os_error_while_writing_is_one_line_not_an_internal_error(bestproxy_ws: Workspace) -> None:
    bestproxy_ws.write("manifests/a.yaml", account_doc("game01"))
    ro = bestproxy_ws.root / "ro"
    ro.mkdir()
    (ro / "plan.json").mkdir()  # a folder where the file should go, inside a writable parent
    r = bestproxy_ws.cli("plan", "--out", "ro/plan.json")
    assert r.exit_code == 1 and "internal error" not in r.stderr and len(r.stderr.splitlines()) == 1


# -- a closed pipe -------------------------------------------------------------------------------
def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen([EXE, "schema"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write (like `| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == "", err


def test_plan_into_head_ends_quietly(tmp_path: Path) -> None:
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    r = subprocess.run(
        ["bash", "-c", f"{shlex.quote(EXE)} plan --sandbox --detail full | head -1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0
    assert len(r.stdout.splitlines()) == 1
    assert "Error" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


# -- hints ---------------------------------------------------------------------------------------
def test_the_apply_hint_works_as_printed_with_sandbox_and_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import CliWorkspace

    ws = CliWorkspace(tmp_path)
    shutil.copytree(ROOT / "manifests" / "bestproxy", tmp_path / "manifests" / "bestproxy")
    shutil.copytree(ROOT / "manifests" / "secrets", tmp_path / "manifests" / "secrets")
    ws.write("settings.yaml", "apiVersion: reconciler/v1\nkind: Config\n")
    monkeypatch.chdir(tmp_path)
    r = ws.cli("--sandbox", "plan", "--config", "settings.yaml", "--sandbox-state", "state", "--out", "p.json")
    assert r.exit_code == 0, r.output
    m = re.search(r"Apply it with: (.+)$", r.stderr, re.M)
    assert m, r.stderr
    args = shlex.split(m.group(1))
    assert args[0] == "reconciler" and "--sandbox" in args and "settings.yaml" in args
    r2 = ws.cli(*args[1:], "--auto-approve")
    assert r2.exit_code == 0, r2.output
    assert "Apply:" in r2.stdout


# -- offline validate ----------------------------------------------------------------------------
def test_validate_is_offline_needs_no_credential_and_writes_nothing(tmp_path: Path) -> None:
    for folder in ("manifests", "tables", "data"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for args in (["validate"], ["validate", "--sandbox"], ["--sandbox", "validate", "manifests/tcaplus"]):
        r = subprocess.run([EXE, *args], cwd=tmp_path, env=_bare_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert r.stdout.startswith("Valid: "), r.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "validate wrote something"
    assert not (tmp_path / ".reconciler").exists()
    # opting in resolves the references: without the variables it names each one
    r = subprocess.run(
        [EXE, "validate", "--resolve-secrets"], cwd=tmp_path, env=_bare_env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1
    assert "environment variable BESTPROXY_APP_KEY is not set" in r.stderr
    assert "Traceback" not in r.stderr


def test_offline_validate_still_rejects_bad_references_and_bad_manifests(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "manifests" / "bestproxy", tmp_path / "manifests" / "bestproxy")
    shutil.copytree(ROOT / "manifests" / "secrets", tmp_path / "manifests" / "secrets")
    (tmp_path / "manifests" / "bestproxy" / "x.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {name: lit}\n"
        "spec: {username: lit01, password: Literal123, productType: 9}\n",
        encoding="utf-8",
    )
    r = subprocess.run([EXE, "validate", "--sandbox"], cwd=tmp_path, env=_bare_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "spec.password: secret fields take a reference" in r.stderr
    assert "Literal123" not in r.stdout + r.stderr
    assert not (tmp_path / ".reconciler").exists()


def test_shell_completion_completes_commands_and_options(tmp_path: Path) -> None:
    env = dict(_bare_env(), _RECONCILER_COMPLETE="bash_complete", COMP_WORDS="reconciler pl", COMP_CWORD="1")
    r = subprocess.run([EXE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "plain,plan" in r.stdout.splitlines(), r.stdout
    env.update(COMP_WORDS="reconciler show p.json --format ", COMP_CWORD="4")
    r = subprocess.run([EXE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert {"plain,text", "plain,markdown", "plain,json"} <= set(r.stdout.splitlines()), r.stdout


def test_offline_validate_with_named_connections_and_environments(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "environments", tmp_path / "estate")
    work = tmp_path / "estate"
    before = sorted(work.rglob("*"))
    for args in (["validate", "--env", "production"], ["--env", "staging", "--sandbox", "validate"]):
        r = subprocess.run([EXE, *args], cwd=work, env=_bare_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (args, r.stderr)
    assert sorted(work.rglob("*")) == before
    r = subprocess.run(
        [EXE, "validate", "--env", "production", "--resolve-secrets"],
        cwd=work,
        env=_bare_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "PRODUCTION_BESTPROXY_APP_KEY is not set" in r.stderr, r.stderr


def test_target_names_an_identity_on_a_named_connection(fleet: Fleet) -> None:
    write_estate(fleet)
    r = fleet.cli("plan", "--target", "ProxyAccount/ops01@brand-b")
    assert r.exit_code == 0, r.output
    assert "+ create ProxyAccount/ops01@brand-b" in r.stdout and "Plan: 1 to create" in r.stdout
    r = fleet.cli("plan", "--target", "ProxyAccount/ops01@brand-c")
    assert r.exit_code == 1 and "matches no manifest document or declared identity" in r.stderr


def test_offline_validate_checks_the_scope_of_secret_references(tmp_path: Path) -> None:
    """Without reading any value: a manifest secret that is a provider credential, or a secret file
    outside the workspace, is refused."""
    shutil.copytree(ROOT / "manifests" / "bestproxy", tmp_path / "manifests" / "bestproxy")
    shutil.copytree(ROOT / "manifests" / "secrets", tmp_path / "manifests" / "secrets")
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    shutil.copytree(ROOT / "tables", tmp_path / "tables")
    (tmp_path / "manifests" / "bestproxy" / "x.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {name: steal}\n"
        "spec: {username: steal01, password: env:TCAPLUS_APP_KEY, productType: 9}\n",
        encoding="utf-8",
    )
    r = subprocess.run([EXE, "validate"], cwd=tmp_path, env=_bare_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "error: manifests/bestproxy/x.yaml:4:37: ProxyAccount/steal spec.password: "
        "secret reference env:TCAPLUS_APP_KEY: TCAPLUS_APP_KEY holds a provider "
        "credential or a setting of the tool; manifests cannot use it"
    ], r.stderr
    (tmp_path / "manifests" / "bestproxy" / "x.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ProxyAccount\nmetadata: {name: out}\n"
        "spec: {username: out01, password: file:../../../elsewhere/pw, productType: 9}\n",
        encoding="utf-8",
    )
    r = subprocess.run([EXE, "validate"], cwd=tmp_path, env=_bare_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "resolves outside the workspace root" in r.stderr, r.stderr
